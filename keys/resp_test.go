package keys

import (
	"bufio"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     any
	}{
		{"simple", "+OK\r\n", "OK"},
		{"error", "-ERR wrong\r\n", redisError("ERR wrong")},
		{"integer", ":42\r\n", int64(42)},
		{"bulk", "$5\r\nhe\r\no\r\n", "he\r\no"},
		{"nil bulk", "$-1\r\n", nil},
		{"array", "*3\r\n$1\r\na\r\n:1\r\n*-1\r\n", []any{"a", int64(1), nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "+OK\n", "?x\r\n", "$-2\r\n", "$5\r\nab\r\n", "$999999999999\r\n", "*999999999999\r\n", "*x\r\n", ":x\r\n"} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readReply(%q) accepted it", bad)
		}
	}
}

// FuzzReadReply: whatever a server sends, the parser returns or fails; it
// never panics.
func FuzzReadReply(f *testing.F) {
	for _, seed := range []string{"+OK\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "$-1\r\n", "-ERR\r\n", "*1\r\n*1\r\n$0\r\n\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = readReply(bufio.NewReader(strings.NewReader(in)))
	})
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.changes.WithLabelValues("create_key", "ok").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		got = append(got, f.GetName())
	}
	want := []string{"switchyard_admin_changes_total", "switchyard_key_store_errors_total", "switchyard_key_store_keys",
		"switchyard_key_store_reloads_total", "switchyard_key_store_teams", "switchyard_key_store_up"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric names (-want +got)\n%s", diff)
	}
}
