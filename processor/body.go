package processor

import (
	"encoding/json"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/bodyscan"
	"switchyard/routing"
)

// maxModelLen bounds the model name a client may send; real names are far
// shorter, and the bound keeps logs and error bodies small.
const maxModelLen = 256

// maxNesting bounds how deep arrays and objects may nest. gjson validates
// recursively, and a body of ten million '[' would exhaust the goroutine
// stack, which no recover can catch; real requests (tool schemas included)
// stay far below this.
const maxNesting = bodyscan.MaxNesting

// extractModel validates the body as a JSON object and returns its top-level
// "model" string without decoding the rest (readBody). A body that names the model
// twice is refused: JSON parsers disagree on which copy wins, so the model the
// gateway checked could differ from the one the upstream uses.
func extractModel(body []byte) (string, *apiError) {
	f, err := readBody(body)
	return f.model, err
}

// bodyFields are the top-level fields of a request body the gateway reads,
// found in the one pass that validates the model: the model, and where
// present the fields sessions and the loop guard need (raw, undecoded).
// The raw values point into the body, which nothing changes while the
// request lives (a rewrite makes a new slice); the model is copied out.
type bodyFields struct {
	model          string
	metadata       gjson.Result // Messages API: metadata.user_id is a session key
	promptCacheKey gjson.Result // OpenAI APIs: a session key
	messages       gjson.Result // chat and Messages APIs: the conversation
	input          gjson.Result // Responses API: the conversation
	// messagesLast and inputLast are the raw last item of messages and
	// input when they are arrays ("" when empty or not arrays),
	// messagesPrev and inputPrev the item before it.
	messagesLast, inputLast string
	messagesPrev, inputPrev string
	stream                  bool // the client asked for a stream
	includeUsage            bool // chat: stream_options.include_usage is true
	background              bool // Responses API: the answer comes later, by id
}

// readBody validates the body and reads its model and the other fields of
// bodyFields in one pass over it (bodyscan.Scan); see extractModel.
func readBody(body []byte) (bodyFields, *apiError) {
	var f bodyFields
	if len(body) == 0 {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is required")
	}
	s := bodyscan.Scan(body)
	switch s.Verdict {
	case bodyscan.Deep:
		return f, tooDeep()
	case bodyscan.Syntax:
		// Not JSON; a body that also nests too deep is refused for that,
		// as before the scan was one pass. Only refused bodies pay this.
		if bodyscan.NestsDeeperThan(body, maxNesting) {
			return f, tooDeep()
		}
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is not valid JSON")
	}
	// Parsers that check encoding would read other strings (U+FFFD) than
	// the ones the gateway checked, or refuse the body.
	if s.BadUTF8 {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is not valid UTF-8")
	}
	if !s.Object {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body must be a JSON object")
	}
	raw := func(v bodyscan.Span) string {
		if !v.OK() {
			return ""
		}
		return unsafe.String(&body[v.Start], v.End-v.Start)
	}
	value := func(v bodyscan.Span) gjson.Result {
		if !v.OK() {
			return gjson.Result{}
		}
		return gjson.Parse(raw(v)) // an object or array is not walked, only framed
	}
	model := value(s.Model)
	if k := s.Ambiguous(); k != "" && s.Models <= 1 {
		return f, ambiguousKey(k)
	}
	switch {
	case s.Models == 0:
		return f, newAPIError(routing.KindInvalidRequest, "missing_model", `request body has no "model" field`)
	case s.Models > 1:
		return f, newAPIError(routing.KindInvalidRequest, "duplicate_model", `request body names "model" more than once`)
	case model.Type != gjson.String:
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" must be a string`)
	case model.Str == "":
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" must not be empty`)
	case len(model.Str) > maxModelLen:
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" is longer than `+strconv.Itoa(maxModelLen)+` bytes`)
	case s.StreamNotBool:
		// A lenient provider streams for "true" or 1; the gateway would
		// not ask for that stream's usage, and would count none.
		return f, streamNotBool()
	}
	f.model = strings.Clone(model.Str)
	f.metadata, f.promptCacheKey = value(s.Metadata), value(s.PromptCacheKey)
	f.messages, f.input = value(s.Messages), value(s.Input)
	f.messagesLast, f.inputLast = raw(s.MessagesLast), raw(s.InputLast)
	f.messagesPrev, f.inputPrev = raw(s.MessagesPrev), raw(s.InputPrev)
	f.stream, f.includeUsage, f.background = s.Stream, s.IncludeUsage, s.Background
	return f, nil
}

// ambiguousKey refuses a body that names a key the gateway reads twice, or
// in another case (bodyscan.Result.Ambiguous): its provider might read
// another copy than the gateway checked.
func ambiguousKey(name string) *apiError {
	return newAPIError(routing.KindInvalidRequest, "ambiguous_key", `request body names "`+name+`" more than once, or in another case`)
}

// streamNotBool refuses a body whose "stream" is neither a boolean nor null.
func streamNotBool() *apiError {
	return newAPIError(routing.KindInvalidRequest, "invalid_type", `"stream" must be a boolean`)
}

// tooDeep refuses a body nesting deeper than maxNesting.
func tooDeep() *apiError {
	return newAPIError(routing.KindInvalidRequest, "invalid_json", "request body nests deeper than "+strconv.Itoa(maxNesting)+" levels")
}

// rewriteModel returns a copy of body with the top-level model replaced:
// found in place and written over in one copy (a model written last, as
// the OpenAI SDK writes it, is a walk of the whole body).
func rewriteModel(body []byte, model string) ([]byte, error) {
	m := gjson.GetBytes(body, "model") // the body read in place, the value copied
	if !m.Exists() || m.Index <= 0 {
		return sjson.SetBytes(body, "model", model)
	}
	quoted, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	rest := body[m.Index+len(m.Raw):]
	out := make([]byte, 0, m.Index+len(quoted)+len(rest))
	return append(append(append(out, body[:m.Index]...), quoted...), rest...), nil
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// modelsList renders /v1/models in OpenAI's list format from the
// configuration: the models this key may call.
func modelsList(r *routing.Router, p routing.Principal) []byte {
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, m := range r.Models() {
		if !p.Allows(m.ID) {
			continue
		}
		list.Data = append(list.Data, modelObject{ID: m.ID, Object: "model", OwnedBy: m.OwnedBy})
	}
	b, _ := json.Marshal(list) // plain strings: cannot fail
	return b
}
