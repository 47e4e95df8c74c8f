package processor

import (
	"context"
	"testing"
	"time"

	"switchyard/luahooks"
)

// A hook sees the request in the client's API and learns from
// req:upstream_api which API the provider it would reach speaks, after its
// own changes.
func TestHookSeesUpstreamAPI(t *testing.T) {
	t.Parallel()
	set, err := luahooks.NewSet([]luahooks.Source{{Name: "api.lua", Code: []byte(`
function on_request(req)
  req:set_header("x-before", req.api .. ">" .. (req:upstream_api() or "none"))
  req:set_model("gpt-4o")
  req:set_header("x-after", req.api .. ">" .. (req:upstream_api() or "none"))
end`)}}, luahooks.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := compileRouter(t, testConfigYAML)
	p, err := DryRun(context.Background(), r, set, Request{Method: "POST", Path: "/v1/chat/completions",
		Body: []byte(`{"model":"claude-sonnet","messages":[{"role":"user","content":"hi"}]}`)}, "team-b")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Hooks.SetHeaders; got["x-before"] != "openai>anthropic" || got["x-after"] != "openai>openai" {
		t.Errorf("the hook saw %v; want openai>anthropic before set_model, openai>openai after", got)
	}
}
