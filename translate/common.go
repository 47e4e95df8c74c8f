package translate

import (
	"bytes"
	"crypto/rand"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// DefaultMaxTokens is the max_tokens sent to an Anthropic upstream when an
// OpenAI client sets neither max_tokens nor max_completion_tokens: Anthropic
// requires the field, OpenAI does not. 4096 is within every current Claude
// model's output limit.
const DefaultMaxTokens = 4096

// env is what a translation reads from outside its input: the clock for
// OpenAI's "created" and a source of ids when the upstream sent none. Tests
// fix both so golden files are stable.
type env struct {
	now    func() int64
	random func() string
}

var defaultEnv = env{
	now:    func() int64 { return time.Now().Unix() },
	random: rand.Text,
}

// chatIDFor derives an OpenAI completion id from an Anthropic message id:
// "msg_X" becomes "chatcmpl-X", so the same upstream answer always has the
// same id. With no upstream id a random one is made.
func (e env) chatIDFor(msgID string) string {
	if msgID == "" {
		return "chatcmpl-" + e.random()
	}
	return "chatcmpl-" + strings.TrimPrefix(msgID, "msg_")
}

// messageIDFor derives an Anthropic message id from an OpenAI completion id:
// "chatcmpl-X" becomes "msg_X".
func (e env) messageIDFor(chatID string) string {
	if chatID == "" {
		return "msg_" + e.random()
	}
	return "msg_" + strings.TrimPrefix(chatID, "chatcmpl-")
}

// mustMarshal writes v as compact JSON without escaping <, > and & (the
// upstream's text is passed on as it came). v is always one of this
// package's own types, which cannot fail to marshal.
func mustMarshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("translate: marshaling " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// isNull reports whether a raw field is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// isString reports whether raw, a JSON value, is a string. Content is a
// string or a list, and reading a list as a string first would check all
// of it for nothing: a conversation's content is most of its bytes.
func isString(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '"'
}

// compactJSON returns raw without insignificant space, or nil if raw is not
// valid JSON.
func compactJSON(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil
	}
	return b.Bytes()
}

func itoa(i int) string { return strconv.Itoa(i) }
