package processor

import (
	"strings"
	"testing"

	"switchyard/bodyscan"
	"switchyard/config"
)

// A stream whose first message is a body (no headers) gets a 500; it once
// dereferenced the nil router, and a panic takes down the whole gRPC server.
func TestProcessBodyWithoutHeaders(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	got := run(t, srv, bodyMsg(chatBody, true))
	checkError(t, got, wantErr{500, config.APIOpenAI, "server_error", "internal_error", "internal gateway error"})
}

// The model the gateway checks must be the model an upstream JSON parser
// reads. With invalid UTF-8 inside the model string, extractModel returns the
// raw bytes while encoding/json (and other RFC 8259 parsers) read U+FFFD, so
// such a body is refused as invalid JSON.
func TestExtractModelInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"{\"model\":\"\x82\"}", "{\"model\":\"gpt-4\xff\"}"} {
		if m, aerr := extractModel([]byte(body)); aerr == nil {
			t.Errorf("extractModel(%q) = %q, want a 400: the body is not valid UTF-8", body, m)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	t.Parallel()
	deep := func(n int) []byte {
		return []byte(`{"model":"m","x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	tests := []struct {
		name string
		body []byte
		want bool
	}{
		{"at the limit", deep(maxNesting - 1), false},
		{"one over", deep(maxNesting), true},
		{"ten million open brackets", []byte(`{"model":"m","x":` + strings.Repeat("[", 10<<20)), true},
		{"brackets inside a string", []byte(`{"model":"m","x":"` + strings.Repeat("[", 1000) + `"}`), false},
		{"escaped quote keeps the string open", []byte(`{"model":"m","x":"\"` + strings.Repeat("[", 1000) + `"}`), false},
	}
	for _, tc := range tests {
		if got := bodyscan.NestsDeeperThan(tc.body, maxNesting); got != tc.want {
			t.Errorf("%s: NestsDeeperThan = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := extractModel([]byte(`{"model":"m","x":` + strings.Repeat("[", 10<<20))); err == nil || err.status != 400 {
		t.Errorf("deep body: %v, want a 400", err)
	}
}
