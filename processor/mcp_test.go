package processor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/routing"
)

func TestReadRPC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want rpcMessage
		code int // 0: accepted
	}{
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}`, rpcMessage{id: "3", method: "tools/call", tool: "echo", args: `{"a":1}`}, 0},
		{`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, rpcMessage{id: `"x"`, method: "tools/list"}, 0},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, rpcMessage{method: "notifications/initialized"}, 0},
		{`[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, rpcMessage{batchMethods: []string{"notifications/initialized"}}, 0},
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, rpcMessage{id: "1", method: "tools/call"}, -32602},
		{`{"id":1,"method":"ping"}`, rpcMessage{}, rpcInvalidRequest},
		{`"text"`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0",`, rpcMessage{}, rpcParseError},
		// A key the gateway reads, given twice or in another case: a server
		// keeping the last copy, or matching keys ignoring case, would run
		// what the gateway never checked.
		{`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_repo"}}`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"ping","me\u0074hod":"tools/call"}`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"ping"}`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"ping","param\u017f":{"name":"delete_repo"}}`, rpcMessage{}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","name":"delete_repo"}}`, rpcMessage{id: "1", method: "tools/call"}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_code","NAME":"delete_repo"}}`, rpcMessage{id: "1", method: "tools/call"}, rpcInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{},"arguments":{"x":1}}}`, rpcMessage{id: "1", method: "tools/call"}, rpcInvalidRequest},
		{`[{"jsonrpc":"2.0","method":"ping","method":"tools/call","params":{"name":"x"}}]`, rpcMessage{}, rpcInvalidRequest},
		// A name logs, hooks and metrics carry: bounded, and UTF-8. The
		// bound leaves room for /mcp's "<server>__" before MCP's 128.
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"github__` + strings.Repeat("a", 128) + `"}}`, rpcMessage{id: "1", method: "tools/call", tool: "github__" + strings.Repeat("a", 128)}, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + strings.Repeat("a", maxToolName+1) + `"}}`, rpcMessage{id: "1", method: "tools/call"}, -32602},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\xff\"}}", rpcMessage{id: "1", method: "tools/call"}, -32602},
		// Nesting gjson would recurse into until the stack gave out.
		{strings.Repeat("[", 10_000_000), rpcMessage{}, rpcParseError},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":` + strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting) + `}}}`, rpcMessage{}, rpcParseError},
		// Keys the gateway does not read may repeat.
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","_meta":{},"_meta":{}}`, rpcMessage{id: "1", method: "tools/list"}, 0},
	}
	for _, tc := range tests {
		got, err := readRPC([]byte(tc.body))
		code := 0
		if err != nil {
			code = err.code
		}
		if !reflect.DeepEqual(got, tc.want) || code != tc.code {
			t.Errorf("readRPC(%s) = %+v, %d; want %+v, %d", tc.body, got, code, tc.want, tc.code)
		}
	}
}

func TestRPCErrorBody(t *testing.T) {
	t.Parallel()
	e := refused("not_allowed", `tool "a/b" is not allowed`)
	if got, want := string(e.body(`"7"`)), `{"jsonrpc":"2.0","id":"7","error":{"code":-32001,"message":"tool \"a/b\" is not allowed","data":{"reason":"not_allowed"}}}`; got != want {
		t.Errorf("body = %s\nwant %s", got, want)
	}
	if got := string(e.body("")); !strings.Contains(got, `"id":null`) {
		t.Errorf("body without an id = %s", got)
	}
}

const toolsReply = `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"search_code","inputSchema":{}},{"name":"delete_repo","inputSchema":{}}]}}`

func allowSearch(tool string) bool { return strings.HasPrefix(tool, "search_") }

// TestNarrowToolsSSE feeds a tools/list answer in SSE split at every byte
// boundary: a progress notification passes as it is, the reply loses the
// tool the key may not call.
func TestNarrowToolsSSE(t *testing.T) {
	t.Parallel()
	answer := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		"event: message\r\ndata: " + toolsReply + "\r\n\r\n"
	want := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		"event: message\ndata: " + strings.Replace(toolsReply, `,{"name":"delete_repo","inputSchema":{}}`, "", 1) + "\n\n"
	for split := 1; split < len(answer); split++ {
		r := &answerReader{id: "2", hold: true, onReply: func(msg []byte) []byte { return narrowTools(msg, allowSearch) }}
		var out []byte
		for _, c := range []string{answer[:split], answer[split:]} {
			got, changed := r.feed([]byte(c), c == answer[split:])
			if !changed {
				t.Fatalf("split %d: a held answer passed unchanged", split)
			}
			out = append(out, got...)
		}
		if string(out) != want {
			t.Fatalf("split %d:\n%q\nwant\n%q", split, out, want)
		}
	}
}

// TestNarrowToolsAnyID: the reply is narrowed however the server writes
// the request's id, and a reply over several data lines stays one event.
func TestNarrowToolsAnyID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ asked, echoed string }{{`"a"`, `"\u0061"`}, {`1.0`, `1`}, {`7`, `7`}} {
		reply := strings.Replace(toolsReply, `"id":2`, `"id":`+c.echoed, 1)
		for _, data := range []string{"data: " + reply, "data: " + strings.Replace(reply, `"result":`, "\ndata: \"result\":", 1)} {
			r := &answerReader{id: c.asked, hold: true, onReply: func(msg []byte) []byte { return narrowTools(msg, allowSearch) }}
			out, _ := r.feed([]byte("event: message\n"+data+"\n\n"), true)
			got, err := readSSEReply(strings.NewReader(string(out)), gjson.Get(reply, "id").Raw)
			if err != nil || strings.Contains(string(got), "delete_repo") || !strings.Contains(string(got), "search_code") {
				t.Errorf("asked %s, echoed %s: %q (%v)", c.asked, c.echoed, out, err)
			}
			if strings.Count(string(out), "\n\n") != 1 {
				t.Errorf("not one event: %q", out)
			}
		}
	}
}

func TestNarrowToolsJSON(t *testing.T) {
	t.Parallel()
	r := &answerReader{id: "2", hold: true, onReply: func(msg []byte) []byte { return narrowTools(msg, allowSearch) }}
	first, _ := r.feed([]byte(toolsReply[:10]), false)
	rest, _ := r.feed([]byte(toolsReply[10:]), true)
	if len(first) != 0 || strings.Contains(string(rest), "delete_repo") || !strings.Contains(string(rest), "search_code") {
		t.Errorf("narrowed JSON: %q then %q", first, rest)
	}
	if got := narrowTools([]byte(toolsReply), func(string) bool { return true }); string(got) != toolsReply {
		t.Errorf("nothing to narrow changed the reply: %s", got)
	}
}

// TestObservedReply: a tools/call answer passes untouched while its
// outcome is read.
func TestObservedReply(t *testing.T) {
	t.Parallel()
	for reply, want := range map[string]string{
		`{"jsonrpc":"2.0","id":5,"result":{"content":[],"isError":true}}`: "tool_error",
		`{"jsonrpc":"2.0","id":5,"result":{"content":[]}}`:                "ok",
		`{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"x"}}`:  "rpc_error",
	} {
		var outcome string
		r := &answerReader{id: "5", onReply: func(msg []byte) []byte { outcome = replyOutcome(msg); return msg }}
		if _, changed := r.feed([]byte("data: "+reply+"\n\n"), true); changed || outcome != want {
			t.Errorf("%s: outcome %q (changed %v), want %q", reply, outcome, changed, want)
		}
	}
}

func TestIsMCPPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{"/mcp": true, "/mcp/a": true, "/mcp?x": true, "/mcpx": false, "/v1/mcp": false} {
		if isMCPPath(path) != want {
			t.Errorf("isMCPPath(%q) = %v", path, !want)
		}
	}
	for path, want := range map[string]string{"/mcp/a": "a", "/mcp/a?s=1": "a", "/mcp/a/b": "", "/mcp": "", "/mcp/": ""} {
		if got, _ := mcpServerName(path); got != want {
			t.Errorf("mcpServerName(%q) = %q, want %q", path, got, want)
		}
	}
}

func FuzzMCPAnswer(f *testing.F) {
	f.Add([]byte("data: "+toolsReply+"\n\n"), 7)
	f.Add([]byte(toolsReply), 3)
	f.Fuzz(func(t *testing.T, answer []byte, split int) {
		if split < 0 || split > len(answer) {
			split = len(answer) / 2
		}
		readRPC(answer)
		r := &answerReader{id: "2", hold: true, onReply: func(msg []byte) []byte { return narrowTools(msg, allowSearch) }}
		r.feed(answer[:split], false)
		r.feed(answer[split:], true)
		if len(r.pending) != 0 {
			t.Fatalf("the reader kept %d bytes after the end", len(r.pending))
		}
	})
}

// A key at its bound of /mcp sessions makes room with its own least
// recently used, never another key's; a full table with its least
// recently used.
func TestAggSessionsBounds(t *testing.T) {
	t.Parallel()
	tab := newAggSessions(5, 3)
	now := time.Now()
	at := func(i int) time.Time { return now.Add(time.Duration(i) * time.Second) }
	open := func(key string, at time.Time) string {
		id, dropped := tab.open(key, at)
		if dropped != nil {
			t.Fatalf("%s's session at %v dropped one, before any bound", key, at)
		}
		return id
	}
	b := open("team-b", at(0))
	var a []string
	for i := range 3 {
		a = append(a, open("team-a", at(1+i)))
	}
	a1 := tab.m[a[1]]
	tab.get(a[0], "team-a", at(4)) // a[1] is now team-a's least recently used
	id, dropped := tab.open("team-a", at(5))
	a = append(a, id)
	if dropped != a1 || tab.get(a[1], "team-a", at(6)) != nil || tab.get(a[0], "team-a", at(6)) == nil || tab.get(b, "team-b", at(6)) == nil {
		t.Fatal("team-a's fourth session did not replace its least recently used, and only it")
	}
	c := open("team-c", at(7)) // five: the table is full
	a2 := tab.m[a[2]]
	if _, dropped := tab.open("team-c", at(8)); dropped != a2 || len(tab.m) != 5 || tab.get(a[2], "team-a", at(9)) != nil || tab.get(c, "team-c", at(9)) == nil {
		t.Errorf("a full table did not drop its least recently used session (%d sessions)", len(tab.m))
	}
}

// TestAggSessions: a /mcp session belongs to the key that opened it, and
// expires when idle.
func TestAggSessions(t *testing.T) {
	t.Parallel()
	tab := newAggSessions(maxAggSessions, maxAggSessionsPerKey)
	now := time.Now()
	id, _ := tab.open("team-a", now)
	if len(id) != 32 || tab.get(id, "team-a", now) == nil {
		t.Fatalf("session %q not found by its key", id)
	}
	if tab.get(id, "team-b", now) != nil {
		t.Error("another key used the session")
	}
	if tab.get(id, "team-a", now.Add(aggSessionIdle+time.Second)) != nil {
		t.Error("an idle session was still served")
	}
	if other, _ := tab.open("team-a", now); other == id {
		t.Error("two sessions share an id")
	}
	if tab.close(id, "team-b") != nil || tab.get(id, "team-a", now) == nil {
		t.Error("another key ended the session")
	}
	if tab.close(id, "team-a") == nil || tab.get(id, "team-a", now) != nil {
		t.Error("a closed session was still served")
	}
}

func TestAggregateInitialize(t *testing.T) {
	t.Parallel()
	m := &mcpExchange{}
	for asked, want := range map[string]string{"2025-06-18": "2025-06-18", "2024-11-05": "2024-11-05", "2030-01-01": "2025-11-25", "": "2025-11-25"} {
		got := gjson.Get(m.initializeResult([]byte(`{"params":{"protocolVersion":"`+asked+`"}}`)), "protocolVersion").Str
		if got != want {
			t.Errorf("asked %q: answered %q, want %q", asked, got, want)
		}
	}
}

func TestReadSSEReply(t *testing.T) {
	t.Parallel()
	stream := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n\n"
	got, err := readSSEReply(strings.NewReader(stream), "1")
	if err != nil || string(got) != `{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}` {
		t.Errorf("reply = %s, %v", got, err)
	}
	if _, err := readSSEReply(strings.NewReader(stream), "2"); err == nil {
		t.Error("a stream without the reply gave one")
	}
}

// mcpTestServer is a routing.MCPServer for the server at rawURL, with a
// bearer key.
func mcpTestServer(t *testing.T, rawURL string) *routing.MCPServer {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return &routing.MCPServer{Name: "db", Scheme: u.Scheme, Host: u.Hostname(), Port: port, Path: u.RequestURI(),
		Credential: &routing.Header{Name: "authorization", Value: "Bearer SERVER-KEY"}}
}

// The gateway's own calls to a server neither log the server's query
// (which may hold a token) when the server cannot be reached, nor follow
// a redirect, which would take the server's key to another host.
func TestServerCallsKeepSecrets(t *testing.T) {
	t.Parallel()
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the call fails before it connects, as it would to a server down
	_, _, err := rpcCall(gone, mcpTestServer(t, "http://127.0.0.1:9/mcp?token=SECRET-IN-QUERY"), serverSession{}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %v", err)
	}

	var leaked string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { leaked = r.Header.Get("authorization") }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/mcp", http.StatusTemporaryRedirect))
	defer redirect.Close()
	_, _, err = rpcCall(context.Background(), mcpTestServer(t, redirect.URL+"/mcp"), serverSession{}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if err == nil || leaked != "" {
		t.Errorf("redirect followed: error %v, the other host got %q", err, leaked)
	}
}

// A server's calls are labelled with at most maxToolLabels tool names, the
// rest "other": a client calling made-up names cannot grow the series.
func TestToolLabelsAreBounded(t *testing.T) {
	t.Parallel()
	m := newMCPMetrics()
	for i := range maxToolLabels {
		if got, name := m.toolLabel("gh", "t"+strconv.Itoa(i)), "t"+strconv.Itoa(i); got != name {
			t.Fatalf("tool %d labelled %q, want %q", i, got, name)
		}
	}
	if got := m.toolLabel("gh", "one_more"); got != "other" {
		t.Errorf("a name past the bound labelled %q, want other", got)
	}
	if got := m.toolLabel("gh", "t7"); got != "t7" {
		t.Errorf("a name labelled before: %q, want t7", got)
	}
	if got := m.toolLabel("fs", "one_more"); got != "one_more" {
		t.Errorf("another server's name labelled %q, want one_more", got)
	}
}
