package processor

import (
	"testing"
	"time"

	"switchyard/routing"
)

func TestLimiterAdmitsExactlyNPerMinute(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	l := newLimiter()
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		ok, remaining, _ := l.admit("a", 3)
		if !ok || remaining != 2-i {
			t.Fatalf("request %d: ok %v remaining %d", i, ok, remaining)
		}
	}
	if ok, _, reset := l.admit("a", 3); ok || reset != 30*time.Second {
		t.Fatalf("fourth request: ok %v, reset %v; want refused for 30s", ok, reset)
	}
	if ok, _, _ := l.admit("b", 3); !ok {
		t.Fatal("another key shares a's count")
	}
	now = now.Add(30 * time.Second) // the next minute
	if ok, remaining, _ := l.admit("a", 3); !ok || remaining != 2 {
		t.Fatalf("next minute: ok %v remaining %d", ok, remaining)
	}
	if ok, _, _ := l.admit("a", 5); !ok {
		t.Fatal("a raised limit does not apply at once")
	}
}

func TestRequestLimitAnswer(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	s.limits.now = func() time.Time { return time.Date(2026, 12, 1, 10, 0, 50, 500e6, time.UTC) }
	p := routing.Principal{Name: "team-a", RequestsPerMinute: 1}
	if e := s.checkRequestLimit(p); e != nil {
		t.Fatalf("first request refused: %v", e)
	}
	e := s.checkRequestLimit(p)
	if e == nil || e.status != 429 {
		t.Fatalf("second request: %v, want 429", e)
	}
	want := map[string]string{"retry-after": "10", "x-ratelimit-limit-requests": "1", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s"}
	for _, h := range e.headers {
		if want[h.Name] != h.Value {
			t.Errorf("%s: %q, want %q", h.Name, h.Value, want[h.Name])
		}
		delete(want, h.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing headers %v", want)
	}
	if body := string(e.body("anthropic")); body != `{"type":"error","error":{"type":"rate_limit_error","message":"rate limit of 1 requests per minute reached for key \"team-a\"; retry in 10s"}}` {
		t.Errorf("anthropic body %s", body)
	}
	if s.checkRequestLimit(routing.Principal{Name: "free"}) != nil {
		t.Error("a key without a limit was refused")
	}
}
