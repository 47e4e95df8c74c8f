package processor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/routing"
)

// TestOneLogRecordPerRequest: a counted, a translated, a
// fallback and a refused request each log one line with the same fields;
// the fallback's names its key, the provider that answered and its tokens.
func TestOneLogRecordPerRequest(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	router := compileRouter(t, flightsConfigYAML)
	s := New(Options{Router: func() *routing.Router { return router }, Metrics: NewMetrics(prometheus.NewRegistry()),
		Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for kind := range 3 {
		c := &flightCase{kind: kind, input: 3, output: 4, steps: 1 + kind/2}
		c.decide(t, s)
		for c.stepped < c.steps {
			c.next(t, s)
		}
	}
	run(t, s, script(fullDuplex, append(post("/v1/chat/completions", bearer(keyTeamB)...), "x-request-id", "refused"),
		`{"model":"no-such-model","messages":[]}`)...)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "routed" || m["msg"] == "request refused" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("%d request lines, want one per request:\n%s", len(lines), buf.String())
	}
	for _, m := range lines {
		for _, k := range []string{"request_id", "path", "model", "key_name", "session", "provider", "upstream_model", "route", "tags", "translated", "status"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s line for %v has no %s", m["msg"], m["model"], k)
			}
		}
	}
	fb := lines[2]
	if fb["model"] != "smart" || fb["key_name"] != "team-b" || fb["provider"] != "azure" || fb["input_tokens"] != 3.0 ||
		fb["status"] != 200.0 || len(fb["attempts"].([]any)) != 2 || fb["request_id"] != "same" {
		t.Errorf("fallback line: %v", fb)
	}
	if r := lines[3]; r["code"] != "model_not_found" || r["status"] != 404.0 || r["request_id"] != "refused" {
		t.Errorf("refusal line: %v", r)
	}
}
