package luahooks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// newTestSet builds a set from name/code pairs with test-friendly options.
func newTestSet(t testing.TB, opts Options, scripts ...string) *Set {
	t.Helper()
	s, err := buildTestSet(opts, scripts...)
	if err != nil {
		t.Fatalf("building set: %v", err)
	}
	return s
}

func buildTestSet(opts Options, scripts ...string) (*Set, error) {
	if opts.Timeout == 0 {
		// Generous: the race detector slows scripts down a lot.
		opts.Timeout = time.Second
	}
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	var srcs []Source
	for i := 0; i+1 < len(scripts); i += 2 {
		srcs = append(srcs, Source{Name: scripts[i], Code: []byte(strings.TrimLeft(scripts[i+1], "\n"))})
	}
	return buildSet(cfg, 1, srcs)
}

func chatRequest() *Request {
	return &Request{
		API:       "openai",
		Method:    "POST",
		Path:      "/v1/chat/completions",
		Headers:   map[string]string{"content-type": "application/json", "x-team": "Search", "authorization": "Bearer sk-secret"},
		Body:      []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"n":2}`),
		Model:     "gpt-4o",
		KeyName:   "ci-key",
		RequestID: "req-1",
	}
}

func onRequest(t testing.TB, s *Set, req *Request) (Result, error) {
	t.Helper()
	return s.OnRequest(context.Background(), req)
}

// firstRequestFails runs code in an on_request hook, on the first request
// only, and wants the hook to fail for reason with a message holding want.
func firstRequestFails(t *testing.T, opts Options, code, reason, want string) {
	t.Helper()
	s := newTestSet(t, opts, "f.lua", "function on_request(req)\n  if req.request_id ~= 'req-1' then return end\n  "+code+"\nend\n")
	_, err := onRequest(t, s, chatRequest())
	var he *HookError
	if !errors.As(err, &he) || he.Reason != reason || !strings.Contains(he.Message, want) {
		t.Fatalf("err = %v, want a %s error containing %q", err, reason, want)
	}
}
