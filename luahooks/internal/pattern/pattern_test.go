package pattern

import (
	"context"
	"strings"
	"testing"
)

// TestCompileCaptureLimit: a pattern has at most maxCaptures captures, as
// in Lua. Parsing and compiling recurse once per nested capture: a client
// could send a pattern of four million nested captures, and the process
// died of a stack overflow, which no recover catches.
func TestCompileCaptureLimit(t *testing.T) {
	t.Parallel()
	nested := func(n int) string { return strings.Repeat("(", n) + "x" + strings.Repeat(")", n) }
	for _, tc := range []struct {
		name    string
		pattern string
		ok      bool
	}{
		{"nested up to the limit", nested(maxCaptures), true},
		{"in a row up to the limit", strings.Repeat("(x)", maxCaptures-1) + "()", true},
		{"nested one over", nested(maxCaptures + 1), false},
		{"position captures over", strings.Repeat("()", maxCaptures+1), false},
		{"nested four million", nested(1 << 22), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Compile(tc.pattern)
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "too many captures") {
					t.Fatalf("Compile: err = %v, want too many captures", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			subject := strings.Repeat("x", maxCaptures)
			if _, err := c.Find(NewSteps(context.Background()), []byte(subject), 0, 1); err != nil {
				t.Fatalf("Find: %v", err)
			}
		})
	}
}
