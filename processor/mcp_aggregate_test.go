package processor

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"switchyard/routing"
)

// fakeMCP is an MCP server for the calls /mcp makes itself: it opens
// sessions, answers 404 to a session it does not know (one from before
// restart) and lists its tools. before, when set, runs first and may answer
// in its place (a status other than 0).
type fakeMCP struct {
	srv    *httptest.Server
	name   string
	tools  []string
	epoch  atomic.Int32
	before func(r *http.Request, method string) int
	mu     sync.Mutex
	seen   map[string]int // requests by method
}

func newFakeMCP(t *testing.T, name string, tools ...string) *fakeMCP {
	f := &fakeMCP{name: name, tools: tools, seen: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMCP) session() string { return fmt.Sprintf("%s-%d", f.name, f.epoch.Load()) }

// restart forgets every session.
func (f *fakeMCP) restart() { f.epoch.Add(1) }

func (f *fakeMCP) received(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[method]
}

func (f *fakeMCP) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	method := gjson.GetBytes(b, "method").Str
	f.mu.Lock()
	f.seen[method]++
	f.mu.Unlock()
	if f.before != nil {
		if status := f.before(r, method); status != 0 {
			w.WriteHeader(status)
			return
		}
	}
	if method != "initialize" && r.Header.Get(routing.MCPSessionHeader) != f.session() {
		http.Error(w, "unknown session", http.StatusNotFound)
		return
	}
	w.Header().Set("content-type", "application/json")
	switch method {
	case "initialize":
		w.Header().Set(routing.MCPSessionHeader, f.session())
		fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}`)
	case "tools/list":
		var ts []string
		for _, n := range f.tools {
			ts = append(ts, `{"name":"`+n+`","inputSchema":{}}`)
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":1,"result":{"tools":[%s]}}`, strings.Join(ts, ","))
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// aggregateUnderTest is a Server for /mcp over the servers.
func aggregateUnderTest(t *testing.T, servers ...*fakeMCP) *Server {
	conf := "providers: [{name: openai, url: \"https://api.openai.com\", schema: openai}]\nmcp_servers:\n"
	for _, f := range servers {
		conf += fmt.Sprintf("  - {name: %s, url: %q}\n", f.name, f.srv.URL+"/mcp")
	}
	r := compileRouter(t, conf+"client_keys:\n  - {name: team-a, key_env: KEY_TEAM_A}\n")
	return New(Options{Router: func() *routing.Router { return r }})
}

// aggPost POSTs a message to /mcp in the session ("" for none) and
// returns the gateway's answer.
func aggPost(t *testing.T, s *Server, session, body string) *extprocv3.ImmediateResponse {
	t.Helper()
	kv := []string{":method", "POST", ":path", "/mcp", "authorization", "Bearer " + keyTeamA, "content-type", "application/json"}
	if session != "" {
		kv = append(kv, routing.MCPSessionHeader, session)
	}
	sent := run(t, s, headersMsg(buffered, false, kv...), bodyMsg(body, true))
	ir := sent[len(sent)-1].GetImmediateResponse()
	if ir == nil {
		t.Fatalf("%s: answered %v, want the gateway's own answer", body, sent[len(sent)-1])
	}
	return ir
}

// openAggregate initializes a /mcp session.
func openAggregate(t *testing.T, s *Server) string {
	t.Helper()
	ir := aggPost(t, s, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`)
	if id := setHeaders(ir.GetHeaders())[routing.MCPSessionHeader]; id != "" {
		return id
	}
	t.Fatalf("initialize answered %d %s, without a session", ir.GetStatus().GetCode(), ir.GetBody())
	return ""
}

// listedTools are the names in /mcp's tools/list answer.
func listedTools(t *testing.T, s *Server, session string) []string {
	t.Helper()
	var names []string
	for _, n := range gjson.GetBytes(aggPost(t, s, session, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`).GetBody(), "result.tools.#.name").Array() {
		names = append(names, n.Str)
	}
	return names
}

// TestAggregateListAsksServersTogether: /mcp's tools/list asks every server
// at once and answers within Envoy's wait for it, without one that does
// not answer. Here a's list waits until b has been asked and b's until a
// has: asked one after the other, the first would be left out. h never
// answers.
func TestAggregateListAsksServersTogether(t *testing.T) {
	t.Parallel()
	var asked sync.WaitGroup
	asked.Add(2)
	both := make(chan struct{})
	go func() { asked.Wait(); close(both) }()
	rendezvous := func(r *http.Request, method string) int {
		if method == "tools/list" {
			asked.Done()
			select {
			case <-both:
			case <-r.Context().Done():
			}
		}
		return 0
	}
	a, b := newFakeMCP(t, "a", "x"), newFakeMCP(t, "b", "y")
	a.before, b.before = rendezvous, rendezvous
	h := newFakeMCP(t, "h", "z")
	hung := make(chan struct{})
	t.Cleanup(func() { close(hung) }) // before h's server closes
	h.before = func(r *http.Request, _ string) int {
		select {
		case <-hung:
		case <-r.Context().Done():
		}
		return http.StatusServiceUnavailable
	}
	s := aggregateUnderTest(t, a, b, h)
	got := listedTools(t, s, openAggregate(t, s))
	if want := []string{"a__x", "b__y"}; !slices.Equal(got, want) {
		t.Errorf("tools/list = %v, want %v", got, want)
	}
}

// TestAggregateRemembersFailedOpen: a server that could not open a session
// is left out of the next list too without being asked again, until
// serverOpenRetry has passed.
func TestAggregateRemembersFailedOpen(t *testing.T) {
	t.Parallel()
	a, down := newFakeMCP(t, "a", "x"), newFakeMCP(t, "down", "y")
	down.before = func(*http.Request, string) int { return http.StatusInternalServerError }
	s := aggregateUnderTest(t, a, down)
	session := openAggregate(t, s)
	for range 2 {
		if got := listedTools(t, s, session); !slices.Equal(got, []string{"a__x"}) {
			t.Errorf("tools/list = %v, want a's tool only", got)
		}
	}
	if n := down.received("initialize"); n != 1 {
		t.Errorf("the server that failed was asked to initialize %d times, want once", n)
	}
}

// TestAggregateReopensEndedSession: a server that restarted answers 404 to
// the gateway's session with it; /mcp opens a new one and asks again,
// rather than leave the server out of every later list.
func TestAggregateReopensEndedSession(t *testing.T) {
	t.Parallel()
	a, b := newFakeMCP(t, "a", "x"), newFakeMCP(t, "b", "y")
	s := aggregateUnderTest(t, a, b)
	session := openAggregate(t, s)
	want := []string{"a__x", "b__y"}
	if got := listedTools(t, s, session); !slices.Equal(got, want) {
		t.Fatalf("tools/list = %v, want %v", got, want)
	}
	a.restart()
	for range 2 {
		if got := listedTools(t, s, session); !slices.Equal(got, want) {
			t.Errorf("after a's restart, tools/list = %v, want %v", got, want)
		}
	}
	if n := a.received("initialize"); n != 2 {
		t.Errorf("a was asked to initialize %d times, want twice: once before its restart, once after", n)
	}
}

// TestAggregateCallForgetsEndedSession: a tools/call that the server
// answers 404 (it has ended the gateway's session with it) makes the next
// call go in a new session.
func TestAggregateCallForgetsEndedSession(t *testing.T) {
	t.Parallel()
	a := newFakeMCP(t, "a", "x")
	s := aggregateUnderTest(t, a)
	session := openAggregate(t, s)
	call := func(answer string) string {
		t.Helper()
		sent := run(t, s, headersMsg(buffered, false, ":method", "POST", ":path", "/mcp", "authorization", "Bearer "+keyTeamA,
			"content-type", "application/json", routing.MCPSessionHeader, session),
			bodyMsg(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a__x","arguments":{}}}`, true),
			responseHeadersMsg(answer), responseBodyMsg("", true))
		return setHeaders(sent[1].GetRequestBody().GetResponse().GetHeaderMutation())[routing.MCPSessionHeader]
	}
	if got := call("200"); got != "a-0" {
		t.Fatalf("the call went in session %q, want a-0", got)
	}
	a.restart()
	if got := call("404"); got != "a-0" {
		t.Fatalf("the call went in session %q, want a-0", got)
	}
	if got := call("200"); got != "a-1" {
		t.Errorf("after a 404, the call went in session %q, want a new one, a-1", got)
	}
}
