package processor

import (
	"testing"

	"switchyard/routing"
)

// A stream whose first message is a body (no headers) gets a 500; it once
// dereferenced the nil router, and a panic takes down the whole gRPC server.
func TestProcessBodyWithoutHeaders(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	got := run(t, srv, bodyMsg(chatBody, true))
	checkError(t, got, wantErr{500, routing.APIOpenAI, "server_error", "internal_error", "internal gateway error"})
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
