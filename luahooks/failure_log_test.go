package luahooks

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/testkit"
)

// logLines decodes JSON log output, one object per line.
func logLines(t *testing.T, out string) []map[string]any {
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestFailuresAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeHook(t, dir, "slow.lua", "function on_request(req)\n  log('info', 'checking', {team = req:header('x-team'), n = 2})\n  print('about to loop')\n  if req.request_id == 'req-1' then while true do end end\nend\n")
	writeHook(t, dir, "bad.lua", "function on_request(req)\n  if req.request_id == 'req-1' then error('bad input') end\nend\n")
	var logs testkit.SyncBuffer
	reg := prometheus.NewRegistry()
	m, err := NewManager(Options{
		Dir: dir, FailOpen: true, Timeout: 200 * time.Millisecond, Registerer: reg, // the log and print before the loop fit in it under -race on a busy machine
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Current().OnRequest(context.Background(), chatRequest())
	if err != nil {
		t.Fatalf("fail_open returned %v", err)
	}
	if len(res.Changes) != 2 || res.Changes[0].Op != "error" || res.Changes[1].Op != "error" {
		t.Errorf("changes = %v, want two errors", res.Changes)
	}
	got := metricValues(t, reg)
	for _, k := range []string{
		"switchyard_hooks_errors_total,reason=timeout,script=slow.lua",
		"switchyard_hooks_errors_total,reason=runtime,script=bad.lua",
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}

	var failures, hookLogs, prints int
	for _, l := range logLines(t, logs.String()) {
		switch l["msg"] {
		case "hook failed":
			failures++
			if l["script"] == "bad.lua" && (l["line"] != float64(2) || l["reason"] != "runtime" || l["policy"] != "fail_open") {
				t.Errorf("failure log = %v", l)
			}
			if l["script"] == "slow.lua" && (l["line"] != float64(4) || l["reason"] != "timeout") {
				t.Errorf("failure log = %v", l)
			}
		case "checking":
			if l["script"] == "slow.lua" && l["request_id"] == "req-1" && l["team"] == "Search" && l["n"] == float64(2) {
				hookLogs++
			}
		case "hook print":
			if l["message"] == "about to loop" && l["script"] == "slow.lua" {
				prints++
			}
		}
	}
	if failures != 2 || hookLogs != 1 || prints == 0 {
		t.Errorf("logged %d failures, %d hook log lines, %d prints; want 2, 1, >0:\n%v", failures, hookLogs, prints, logLines(t, logs.String()))
	}
}
