package luahooks

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	lua "github.com/yuin/gopher-lua"

	"switchyard/routing"
)

// Bounds on what hooks may attach to a request.
const (
	// MaxTags is how many tags one request may carry.
	MaxTags = 8
	// MaxTagKeyLen and MaxTagValueLen bound a tag's key ([a-z0-9_]) and value.
	MaxTagKeyLen   = 32
	MaxTagValueLen = 64
	// maxHeaderValueLen bounds a header value set by a hook.
	maxHeaderValueLen = 8 << 10
	// maxRejectMessageLen bounds a reject message (longer ones are cut).
	maxRejectMessageLen = 1 << 10
	// maxModelLen bounds a model name set by a hook.
	maxModelLen = 256
	// maxChangeValueLen bounds how much of a value a Change records.
	maxChangeValueLen = 256
)

// headerState is a view of headers: the original ones, changes committed by
// earlier scripts, and the current script's staged changes (the tail of
// changes from stageStart on).
type headerState struct {
	base       map[string]string
	set        map[string]string
	removed    map[string]bool
	changes    *[]Change
	stageStart int
}

func (h *headerState) get(name string) (string, bool) {
	staged := (*h.changes)[h.stageStart:]
	for i := len(staged) - 1; i >= 0; i-- {
		c := &staged[i]
		if c.Key != name {
			continue
		}
		switch c.Op {
		case "set_header":
			return c.Value, true
		case "remove_header":
			return "", false
		}
	}
	if h.removed[name] {
		return "", false
	}
	if v, ok := h.set[name]; ok {
		return v, true
	}
	v, ok := h.base[name]
	return v, ok
}

// all returns the current headers without credentials.
func (h *headerState) all() map[string]string {
	out := make(map[string]string, len(h.base)+len(h.set))
	for k := range h.base {
		if v, ok := h.get(k); ok && !credentialHeaders[k] {
			out[k] = v
		}
	}
	for k := range h.set {
		if v, ok := h.get(k); ok {
			out[k] = v
		}
	}
	for _, c := range (*h.changes)[h.stageStart:] {
		if c.Op == "set_header" {
			if v, ok := h.get(c.Key); ok {
				out[c.Key] = v
			}
		}
	}
	return out
}

func (h *headerState) commit() {
	for _, c := range (*h.changes)[h.stageStart:] {
		switch c.Op {
		case "set_header":
			if h.set == nil {
				h.set = make(map[string]string)
			}
			h.set[c.Key] = c.Value
			delete(h.removed, c.Key)
		case "remove_header":
			if h.removed == nil {
				h.removed = make(map[string]bool)
			}
			h.removed[c.Key] = true
			delete(h.set, c.Key)
		}
	}
}

func (h *headerState) removedList() []string {
	if len(h.removed) == 0 {
		return nil
	}
	out := make([]string, 0, len(h.removed))
	for k := range h.removed {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// reqScalars are the request values a script changes directly; they are
// saved before each script and restored if it fails.
type reqScalars struct {
	model    string
	modelSet bool
	body     []byte
	bodySet  bool
	provider string
	route    string
	reject   *Reject
	// session is the session key; sessionSet once a script set it.
	session    string
	sessionSet bool
}

// reqCall is the state of one OnRequest call.
type reqCall struct {
	req    *Request
	res    *Result
	hdr    headerState
	script string
	cur    reqScalars
	saved  reqScalars
	tags   map[string]string
	// bodyUD is req.body as the state bodyVM made it. After a failure the
	// chain goes on in a new state, whose scripts need their own.
	bodyUD *lua.LUserData
	bodyVM *vm
	// needsBody: a hook read the body of a request whose body stayed in
	// Envoy (Request.BodyKept).
	needsBody bool
}

func newReqCall(req *Request, res *Result) *reqCall {
	c := &reqCall{req: req, res: res}
	c.hdr = headerState{base: req.Headers, changes: &res.Changes}
	c.cur.model = req.Model
	c.cur.session = req.Session
	return c
}

func (c *reqCall) begin(script string) {
	c.script = script
	c.hdr.stageStart = len(c.res.Changes)
	c.saved = c.cur
}

func (c *reqCall) commit() {
	c.hdr.commit()
	for _, ch := range c.res.Changes[c.hdr.stageStart:] {
		if ch.Op == "tag" {
			if c.tags == nil {
				c.tags = make(map[string]string)
			}
			c.tags[ch.Key] = ch.Value
		}
	}
	c.hdr.stageStart = len(c.res.Changes)
}

// rollback drops the current script's changes and records its failure.
func (c *reqCall) rollback(err error) {
	c.res.Changes = c.res.Changes[:c.hdr.stageStart]
	c.cur = c.saved
	c.res.Changes = append(c.res.Changes, Change{Script: c.script, Op: "error", Value: err.Error()})
	c.hdr.stageStart = len(c.res.Changes)
}

func (c *reqCall) finish() {
	c.res.SetHeaders = c.hdr.set
	c.res.RemoveHeaders = c.hdr.removedList()
	if c.cur.modelSet {
		c.res.Model = c.cur.model
	}
	if c.cur.bodySet {
		c.res.Body = c.cur.body
	}
	c.res.Provider = c.cur.provider
	c.res.Route = c.cur.route
	if c.cur.sessionSet {
		c.res.Session, c.res.SessionSet = c.cur.session, true
	}
	c.res.Tags = c.tags
	c.res.Reject = c.cur.reject
}

// body is the request body as the hooks have left it so far. When the
// body stayed in Envoy (Request.BodyKept) there is none: the call ends with
// ErrNeedsBody, whatever the script does with the error.
func (c *reqCall) body(L *lua.LState) []byte {
	if c.cur.bodySet {
		return c.cur.body
	}
	if c.req.BodyKept {
		c.needsBody = true
		L.RaiseError("the request body stayed in Envoy; the gateway runs the hooks again with it")
	}
	return c.req.Body
}

func (c *reqCall) record(op, key, value string) {
	c.res.Changes = append(c.res.Changes, Change{Script: c.script, Op: op, Key: key, Value: clip(value, maxChangeValueLen)})
}

// stagedTags counts tag keys the current script adds that are not yet set.
func (c *reqCall) tagCount(newKey string) int {
	keys := make(map[string]bool, len(c.tags)+1)
	for k := range c.tags {
		keys[k] = true
	}
	for _, ch := range c.res.Changes[c.hdr.stageStart:] {
		if ch.Op == "tag" {
			keys[ch.Key] = true
		}
	}
	keys[newKey] = true
	return len(keys)
}

// resCall is the state of one OnResponse call.
type resCall struct {
	res    *Response
	out    *ResponseResult
	hdr    headerState
	script string
}

func (c *resCall) begin(script string) {
	c.script = script
	c.hdr.stageStart = len(c.out.Changes)
}

func (c *resCall) commit() {
	c.hdr.commit()
	c.hdr.stageStart = len(c.out.Changes)
}

func (c *resCall) rollback(err error) {
	c.out.Changes = append(c.out.Changes[:c.hdr.stageStart], Change{Script: c.script, Op: "error", Value: err.Error()})
	c.hdr.stageStart = len(c.out.Changes)
}

func (c *resCall) record(op, key, value string) {
	c.out.Changes = append(c.out.Changes, Change{Script: c.script, Op: op, Key: key, Value: clip(value, maxChangeValueLen)})
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s[len(s)-min(len(s), utf8.UTFMax):]) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

type rejectMarker struct{}

// setupAPI creates the metatables and method functions of req, req.body and
// res in this state.
func (v *vm) setupAPI() {
	L := v.L
	v.rejectMarker = L.NewUserData()
	v.rejectMarker.Value = rejectMarker{}

	methods := func(fns map[string]lua.LGFunction) map[string]lua.LValue {
		out := make(map[string]lua.LValue, len(fns))
		for name, f := range fns {
			out[name] = L.NewFunction(f)
		}
		return out
	}
	reqFns := methods(map[string]lua.LGFunction{
		"header":        v.reqHeader,
		"headers":       v.reqHeaders,
		"set_header":    v.reqSetHeader,
		"remove_header": v.reqRemoveHeader,
		"set_model":     v.reqSetModel,
		"provider":      v.reqProvider,
		"route":         v.reqRoute,
		"upstream_api":  v.reqUpstreamAPI,
		"set_session":   v.reqSetSession,
		"tag":           v.reqTag,
		"reject":        v.reqReject,
	})
	bodyFns := methods(map[string]lua.LGFunction{
		"get":    v.bodyGet,
		"set":    v.bodySet,
		"decode": v.bodyDecode,
		"raw":    v.bodyRaw,
	})
	resFns := methods(map[string]lua.LGFunction{
		"header":        v.resHeader,
		"headers":       v.resHeaders,
		"set_header":    v.resSetHeader,
		"remove_header": v.resRemoveHeader,
	})
	readOnly := L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s is read-only; use its methods to change the request or response", L.CheckString(2))
		return 0
	})
	mt := func(index lua.LGFunction) *lua.LTable {
		t := L.NewTable()
		t.RawSetString("__index", L.NewFunction(index))
		t.RawSetString("__newindex", readOnly)
		t.RawSetString("__metatable", lua.LFalse)
		return t
	}
	v.reqMT = mt(func(L *lua.LState) int {
		c := v.selfReq(L)
		switch key := L.CheckString(2); key {
		case "method":
			L.Push(lua.LString(c.req.Method))
		case "path":
			L.Push(lua.LString(c.req.Path))
		case "model":
			L.Push(lua.LString(c.cur.model))
		case "key_name":
			L.Push(lua.LString(c.req.KeyName))
		case "request_id":
			L.Push(lua.LString(c.req.RequestID))
		case "session":
			L.Push(lua.LString(c.cur.session))
		case "api":
			L.Push(lua.LString(c.req.API))
		case "body":
			if c.bodyVM != v {
				c.bodyUD, c.bodyVM = L.NewUserData(), v
				c.bodyUD.Value = c
				c.bodyUD.Metatable = v.bodyMT
			}
			L.Push(c.bodyUD)
		default:
			L.Push(lookup(reqFns, key))
		}
		return 1
	})
	v.bodyMT = mt(func(L *lua.LState) int {
		v.selfReq(L)
		L.Push(lookup(bodyFns, L.CheckString(2)))
		return 1
	})
	v.resMT = mt(func(L *lua.LState) int {
		c := v.selfRes(L)
		switch key := L.CheckString(2); key {
		case "status":
			L.Push(lua.LNumber(c.res.Status))
		case "request_id":
			L.Push(lua.LString(c.res.RequestID))
		case "api":
			L.Push(lua.LString(c.res.API))
		case "upstream_api":
			L.Push(lua.LString(c.res.UpstreamAPI))
		case "tags":
			t, _ := v.conv.fromGo(c.res.Tags, 0)
			if c.res.Tags == nil {
				t = L.NewTable()
			}
			L.Push(t)
		default:
			L.Push(lookup(resFns, key))
		}
		return 1
	})
}

func lookup(m map[string]lua.LValue, key string) lua.LValue {
	if f, ok := m[key]; ok {
		return f
	}
	return lua.LNil
}

func (v *vm) newReqUD(c *reqCall) *lua.LUserData {
	ud := v.L.NewUserData()
	ud.Value = c
	ud.Metatable = v.reqMT
	return ud
}

func (v *vm) newResUD(c *resCall) *lua.LUserData {
	ud := v.L.NewUserData()
	ud.Value = c
	ud.Metatable = v.resMT
	return ud
}

// selfReq returns the request a req or req.body method was called on; it
// refuses a req kept from an earlier call.
func (v *vm) selfReq(L *lua.LState) *reqCall {
	ud, ok := L.Get(1).(*lua.LUserData)
	if !ok || v.req == nil || ud.Value != any(v.req) {
		L.RaiseError("call req methods with a colon (req:header(...)) and only on the req passed to on_request")
	}
	return v.req
}

func (v *vm) selfRes(L *lua.LState) *resCall {
	ud, ok := L.Get(1).(*lua.LUserData)
	if !ok || v.res == nil || ud.Value != any(v.res) {
		L.RaiseError("call res methods with a colon (res:header(...)) and only on the res passed to on_response")
	}
	return v.res
}

// validHeaderName reports whether s is a non-empty HTTP token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func checkHeaderValue(L *lua.LState, fn string, value string) {
	if len(value) > maxHeaderValueLen {
		L.RaiseError("%s: header value of %d bytes is over the limit of %d", fn, len(value), maxHeaderValueLen)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '\r' || c == '\n' || c == 0 {
			L.RaiseError("%s: header value contains a CR, LF or NUL byte", fn)
		}
	}
}

// headerArg reads a header name argument for a changing method.
func headerArg(L *lua.LState, fn string) string {
	name := strings.ToLower(L.CheckString(2))
	if !validHeaderName(name) && !strings.HasPrefix(name, ":") {
		L.RaiseError("%s: %q is not a valid header name", fn, name)
	}
	if routing.ProtectedHeader(name) {
		L.RaiseError("%s: header %q is protected: hooks may not set or remove it", fn, name)
	}
	return name
}

func pushHeader(L *lua.LState, h *headerState, hideCredentials bool) int {
	name := strings.ToLower(L.CheckString(2))
	if hideCredentials && credentialHeaders[name] {
		L.Push(lua.LNil)
		return 1
	}
	if v, ok := h.get(name); ok {
		L.Push(lua.LString(v))
	} else {
		L.Push(lua.LNil)
	}
	return 1
}

func (v *vm) reqHeader(L *lua.LState) int {
	return pushHeader(L, &v.selfReq(L).hdr, true)
}

func (v *vm) reqHeaders(L *lua.LState) int {
	t, _ := v.conv.fromGo(v.selfReq(L).hdr.all(), 0)
	L.Push(t)
	return 1
}

func (v *vm) reqSetHeader(L *lua.LState) int {
	c := v.selfReq(L)
	return stageSetHeader(L, &c.hdr, c.script)
}

// stageSetHeader records set_header(name, value) among the current
// script's staged changes, after checking both arguments.
func stageSetHeader(L *lua.LState, h *headerState, script string) int {
	name := headerArg(L, "set_header")
	value := L.CheckString(3)
	checkHeaderValue(L, "set_header", value)
	*h.changes = append(*h.changes, Change{Script: script, Op: "set_header", Key: name, Value: value})
	return 0
}

func (v *vm) reqRemoveHeader(L *lua.LState) int {
	c := v.selfReq(L)
	name := headerArg(L, "remove_header")
	c.record("remove_header", name, "")
	return 0
}

func (v *vm) reqSetModel(L *lua.LState) int {
	c := v.selfReq(L)
	model := L.CheckString(2)
	if model == "" || len(model) > maxModelLen || !utf8.ValidString(model) {
		L.RaiseError("set_model: model must be a UTF-8 string of 1 to %d bytes", maxModelLen)
	}
	c.cur.model = model
	c.cur.modelSet = true
	if body := c.body(L); gjson.ValidBytes(body) && gjson.ParseBytes(body).IsObject() {
		nb, err := sjson.SetBytes(body, "model", model)
		if err != nil {
			L.RaiseError("set_model: rewriting the body: %s", err.Error())
		}
		c.cur.body, c.cur.bodySet = nb, true
	}
	c.record("set_model", "", model)
	return 0
}

func (v *vm) reqProvider(L *lua.LState) int {
	c := v.selfReq(L)
	name := L.CheckString(2)
	if name == "" || (c.req.IsProvider != nil && !c.req.IsProvider(name)) {
		L.RaiseError("provider: unknown provider %q", name)
	}
	c.cur.provider = name
	c.record("provider", "", name)
	return 0
}

// reqUpstreamAPI answers the API of the provider the request would reach as
// it stands (its model, or the provider or route a hook chose): "openai",
// "anthropic", or nil when none would serve it. When it is not req.api the
// gateway translates.
func (v *vm) reqUpstreamAPI(L *lua.LState) int {
	c := v.selfReq(L)
	api := ""
	if c.req.UpstreamAPI != nil {
		api = c.req.UpstreamAPI(c.cur.model, c.cur.provider, c.cur.route)
	}
	if api == "" {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(api))
	}
	return 1
}

// maxSessionLen bounds a session key set by a hook.
const maxSessionLen = 256

func (v *vm) reqSetSession(L *lua.LState) int {
	c := v.selfReq(L)
	s := L.CheckString(2)
	if len(s) > maxSessionLen || !utf8.ValidString(s) {
		L.RaiseError("set_session: session must be a UTF-8 string of at most %d bytes", maxSessionLen)
	}
	c.cur.session, c.cur.sessionSet = s, true
	c.record("set_session", "", s)
	return 0
}

func (v *vm) reqRoute(L *lua.LState) int {
	c := v.selfReq(L)
	name := L.CheckString(2)
	if name == "" || (c.req.IsRoute != nil && !c.req.IsRoute(name)) {
		L.RaiseError("route: unknown route %q", name)
	}
	c.cur.route = name
	c.record("route", "", name)
	return 0
}

func validTagKey(k string) bool {
	if k == "" || len(k) > MaxTagKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (v *vm) reqTag(L *lua.LState) int {
	c := v.selfReq(L)
	key := L.CheckString(2)
	value := L.CheckString(3)
	if !validTagKey(key) {
		L.RaiseError("tag: key %q must be 1 to %d characters of a-z, 0-9 and _", key, MaxTagKeyLen)
	}
	if len(value) > MaxTagValueLen || !utf8.ValidString(value) || strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		L.RaiseError("tag: value for %q must be printable UTF-8 of at most %d bytes", key, MaxTagValueLen)
	}
	if c.tagCount(key) > MaxTags {
		L.RaiseError("tag: a request may carry at most %d tags", MaxTags)
	}
	c.record("tag", key, value)
	return 0
}

func (v *vm) reqReject(L *lua.LState) int {
	c := v.selfReq(L)
	status := L.CheckInt(2)
	if status < 400 || status > 599 {
		L.RaiseError("reject: status %d is not an HTTP error status (400-599)", status)
	}
	msg := L.OptString(3, http.StatusText(status))
	msg = clip(strings.ToValidUTF8(msg, "\uFFFD"), maxRejectMessageLen)
	c.cur.reject = &Reject{Status: status, Message: msg}
	c.record("reject", strconv.Itoa(status), msg)
	L.Push(v.rejectMarker)
	return 1
}

func (v *vm) bodyGet(L *lua.LState) int {
	c := v.selfReq(L)
	path := L.CheckString(2)
	r := gjson.GetBytes(c.body(L), path)
	if !r.Exists() {
		L.Push(lua.LNil)
		return 1
	}
	lv, err := v.conv.fromJSON(r, 0)
	if err != nil {
		L.RaiseError("body:get(%q): %s", path, err.Error())
	}
	L.Push(lv)
	return 1
}

func (v *vm) bodySet(L *lua.LState) int {
	c := v.selfReq(L)
	path := L.CheckString(2)
	value := L.Get(3)
	body := c.body(L)
	if !gjson.ValidBytes(body) {
		L.RaiseError("body:set: the request body is not valid JSON")
	}
	var (
		nb  []byte
		err error
		raw []byte
	)
	if value == lua.LNil {
		nb, err = sjson.DeleteBytes(body, path)
	} else {
		// A value read from the body keeps the text of its numbers.
		raw, err = v.conv.appendJSONOver(nil, value, gjson.GetBytes(body, path), 0)
		if err != nil {
			L.RaiseError("body:set(%q): %s", path, err.Error())
		}
		nb, err = sjson.SetRawBytes(body, path, raw)
	}
	if err != nil {
		L.RaiseError("body:set(%q): %s", path, err.Error())
	}
	c.cur.body, c.cur.bodySet = nb, true
	if raw == nil {
		c.record("delete_body", path, "")
		return 0
	}
	if s, ok := value.(lua.LString); ok && path == "model" {
		c.cur.model, c.cur.modelSet = string(s), true
	}
	c.record("set_body", path, string(raw))
	return 0
}

func (v *vm) bodyDecode(L *lua.LState) int {
	c := v.selfReq(L)
	body := c.body(L)
	if !gjson.ValidBytes(body) {
		L.RaiseError("body:decode: the request body is not valid JSON")
	}
	lv, err := v.conv.fromJSON(gjson.ParseBytes(body), 0)
	if err != nil {
		L.RaiseError("body:decode: %s", err.Error())
	}
	L.Push(lv)
	return 1
}

func (v *vm) bodyRaw(L *lua.LState) int {
	L.Push(lua.LString(v.selfReq(L).body(L)))
	return 1
}

func (v *vm) resHeader(L *lua.LState) int {
	return pushHeader(L, &v.selfRes(L).hdr, false)
}

func (v *vm) resHeaders(L *lua.LState) int {
	t, _ := v.conv.fromGo(v.selfRes(L).hdr.all(), 0)
	L.Push(t)
	return 1
}

func (v *vm) resSetHeader(L *lua.LState) int {
	c := v.selfRes(L)
	return stageSetHeader(L, &c.hdr, c.script)
}

func (v *vm) resRemoveHeader(L *lua.LState) int {
	c := v.selfRes(L)
	name := headerArg(L, "remove_header")
	c.record("remove_header", name, "")
	return 0
}
