package jsonstr

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppend(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\n\r\t", "ctl\x01\x1f", "ünï ☃", "ls\u2028ps\u2029", "<&>"} {
		var got string
		if err := json.Unmarshal(Append(nil, s), &got); err != nil || got != s {
			t.Errorf("Append(%q) round-trips to %q, %v", s, got, err)
		}
	}
	if got := string(Append(nil, "a\u2028<b>\xff")); got != `"a\u2028<b>`+"\uFFFD"+`"` {
		t.Errorf("Append wrote %s", got)
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("a\"b\\c\n")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(Append(nil, s), &got); err != nil {
			t.Fatalf("Append(%q) is not JSON: %v", s, err)
		}
		// encoding/json turns each invalid byte into U+FFFD.
		var want strings.Builder
		for _, r := range s {
			want.WriteRune(r)
		}
		if got != want.String() {
			t.Fatalf("Append(%q) round-trips to %q", s, got)
		}
	})
}
