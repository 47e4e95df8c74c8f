package agentbody

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestGenerateShapeAndSize(t *testing.T) {
	t.Parallel()
	for _, lang := range Langs {
		for _, api := range []API{OpenAIChat, AnthropicMessages} {
			for _, size := range []int{MinSize, 1 << 10, 5000, 32 << 10, 100000, 256 << 10, 1 << 20} {
				t.Run(lang+"/"+string(api)+"/"+itoa(size), func(t *testing.T) {
					t.Parallel()
					b, err := Generate(Spec{API: api, Model: "mock-model", Size: size, Stream: true, Lang: lang})
					if err != nil {
						t.Fatal(err)
					}
					if len(b) != size {
						t.Fatalf("len = %d, want %d", len(b), size)
					}
					if !json.Valid(b) || !utf8.Valid(b) {
						t.Fatal("body is not valid JSON in UTF-8")
					}
					checkShape(t, api, b, size)
					checkLang(t, lang, b, size)
				})
			}
		}
	}
}

// checkLang: an English body's text is mostly ASCII, a Japanese one's
// mostly not, once the conversation has grown past the tools.
func checkLang(t *testing.T, lang string, b []byte, size int) {
	t.Helper()
	high := 0
	for _, c := range b {
		if c >= 0x80 {
			high++
		}
	}
	share := float64(high) / float64(len(b))
	switch {
	case lang == "en" && share > 0.05:
		t.Errorf("English body: %.0f%% of its bytes are not ASCII", share*100)
	case lang == "ja" && size >= 32<<10 && share < 0.25:
		t.Errorf("Japanese body: only %.0f%% of its bytes are not ASCII", share*100)
	}
}

func checkShape(t *testing.T, api API, b []byte, size int) {
	t.Helper()
	var body struct {
		Model    string            `json:"model"`
		Stream   bool              `json:"stream"`
		System   []json.RawMessage `json:"system"`
		Tools    []json.RawMessage `json:"tools"`
		Messages []struct {
			Role       string `json:"role"`
			ToolCalls  []any  `json:"tool_calls"`
			ToolCallID string `json:"tool_call_id"`
			Content    any    `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	if body.Model != "mock-model" || !body.Stream {
		t.Errorf("model %q stream %v, want mock-model true", body.Model, body.Stream)
	}
	if len(body.Tools) != Tools(size) {
		t.Errorf("%d tools, want %d", len(body.Tools), Tools(size))
	}
	// model is the first key of a Messages body and the last of a chat one.
	first := bytes.HasPrefix(b, []byte(`{"model":`))
	last := bytes.HasSuffix(b, []byte(`"model":"mock-model"}`))
	if want := api == AnthropicMessages; first != want || last == want {
		t.Errorf("model first %v last %v for %s", first, last, api)
	}
	msgs := body.Messages
	if api == OpenAIChat {
		if len(msgs) == 0 || msgs[0].Role != "system" {
			t.Fatal("chat body does not start with a system message")
		}
		msgs = msgs[1:]
	} else if len(body.System) != 1 {
		t.Errorf("messages body has %d system blocks, want 1", len(body.System))
	}
	// History: user, assistant (tool call), tool result, assistant, …, then
	// the final user turn.
	if len(msgs)%4 != 1 || msgs[len(msgs)-1].Role != "user" {
		t.Fatalf("%d messages after the system prompt, want 4 per turn and a last user turn", len(msgs))
	}
	turns := len(msgs) / 4
	if size >= 32<<10 && turns < size/(4<<10) {
		t.Errorf("only %d turns in %d bytes: the history should fill the body", turns, size)
	}
	roles := []string{"user", "assistant", "user", "assistant"}
	if api == OpenAIChat {
		roles[2] = "tool"
	}
	for i, m := range msgs[:len(msgs)-1] {
		if m.Role != roles[i%4] {
			t.Fatalf("message %d has role %q, want %q", i, m.Role, roles[i%4])
		}
		if api == OpenAIChat && i%4 == 1 && len(m.ToolCalls) != 1 {
			t.Fatalf("assistant message %d has %d tool calls, want 1", i, len(m.ToolCalls))
		}
		if api == OpenAIChat && i%4 == 2 && m.ToolCallID == "" {
			t.Fatalf("tool message %d has no tool_call_id", i)
		}
	}
	if api == AnthropicMessages && turns > 0 {
		for _, want := range []string{`"type":"tool_use"`, `"type":"tool_result"`, `"metadata":{"user_id":`} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("messages body lacks %s", want)
			}
		}
	}
}

func TestGenerateRefuses(t *testing.T) {
	t.Parallel()
	if _, err := Generate(Spec{API: OpenAIChat, Model: "m", Size: MinSize - 1}); err == nil {
		t.Error("a body under MinSize was generated")
	}
	if _, err := Generate(Spec{API: "x", Model: "m", Size: 4096}); err == nil {
		t.Error("a body of an unknown API was generated")
	}
	if _, err := Generate(Spec{API: OpenAIChat, Model: "m", Size: 4096, Lang: "xx"}); err == nil {
		t.Error("a body in an unknown language was generated")
	}
}

func itoa(n int) string {
	if n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}
