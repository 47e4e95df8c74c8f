package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The Messages translation passes strings on as the client escaped them;
// what they mean must not change.
func TestMessagesToChatKeepsEscapedText(t *testing.T) {
	in := `{"m\u0065ssages":[` +
		`{"role":"user","content":"quote \" backslash \\ tab \t e \u00e9 face \ud83d\ude00 lone \ud800 end\\"},` +
		`{"role":"assistant","content":[{"type":"text","text":"a\ud83d"},{"type":"text","text":"\ude00b"},` +
		`{"type":"tool_use","id":"t1","name":"Write","input":{ "path" : "a \"b\".go", "body": "x\\\\y\n" , "n": [1, 2.5e3] }}]}` +
		`],"max_tokens":10}`
	out, err := MessagesToChat([]byte(in), "up")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Messages []struct {
			Content   string
			ToolCalls []struct{ Function struct{ Arguments string } } `json:"tool_calls"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Messages) != 2 || len(got.Messages[1].ToolCalls) != 1 {
		t.Fatalf("messages: %s", out)
	}
	if want := "quote \" backslash \\ tab \t e é face 😀 lone \ufffd end\\"; got.Messages[0].Content != want {
		t.Errorf("user text %q, want %q", got.Messages[0].Content, want)
	}
	// Two texts joined do not make a pair that neither held.
	if want := "a\ufffd\ufffdb"; got.Messages[1].Content != want {
		t.Errorf("assistant text %q, want %q", got.Messages[1].Content, want)
	}
	var args, input any
	if err := json.Unmarshal([]byte(got.Messages[1].ToolCalls[0].Function.Arguments), &args); err != nil {
		t.Fatalf("arguments: %v", err)
	}
	_ = json.Unmarshal([]byte(`{"path":"a \"b\".go","body":"x\\\\y\n","n":[1,2.5e3]}`), &input)
	if diff := cmp.Diff(input, args); diff != "" {
		t.Errorf("arguments (-want +got):\n%s", diff)
	}
}

func TestStringEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{`"" x`, 2},
		{`"a\"b" x`, 6},
		{`"a\\" x`, 5},
		{`"a\\\"b" x`, 8},
		{`"\\\\" x`, 6},
		{`"never`, 6},
	} {
		if got := stringEnd([]byte(c.in), 0); got != c.want {
			t.Errorf("stringEnd(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}

// The same for a chat request: blank text is found through its escapes,
// and a tool call's arguments, a string holding JSON, become its input.
func TestChatToMessagesKeepsEscapedText(t *testing.T) {
	in := `{"messages":[` +
		`{"role":"user","content":[{"type":"text","text":" \n\t\u00a0"},{"type":"text","text":"\u0041 \"q\" lone \udc00"}]},` +
		`{"role":"assistant","content":"\n\n","tool_calls":[{"id":"c1","type":"function","function":{"name":"Write","arguments":"{\"path\": \"a \\\"b\\\".go\", \"n\": [1]}"}}]}` +
		`]}`
	out, err := ChatToMessages([]byte(in), "up")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Messages []struct {
			Content []struct {
				Type, Text string
				Input      map[string]any
			}
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `{"Messages":[{"Content":[{"Type":"text","Text":"A \"q\" lone ` + "\ufffd" + `","Input":null}]},` +
		`{"Content":[{"Type":"tool_use","Text":"","Input":{"n":[1],"path":"a \"b\".go"}}]}]}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("got  %s\nwant %s\nfrom %s", b, want, out)
	}
}

// A lone half of a surrogate pair becomes U+FFFD wherever text goes on as
// the client escaped it: some servers refuse the escape.
func TestLoneSurrogatesBecomeReplacementCharacters(t *testing.T) {
	const lone = `x \ud83d y`
	messages := `{"system":"` + lone + `","stop_sequences":["` + lone + `"],"max_tokens":5,` +
		`"tools":[{"name":"t","description":"` + lone + `","input_schema":{"type":"object"}}],"messages":[` +
		`{"role":"user","content":"` + lone + `"},` +
		`{"role":"assistant","content":[{"type":"text","text":"` + lone + `"},{"type":"tool_use","id":"c","name":"t","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"` + lone + `"},{"type":"text","text":"` + lone + `"}]}]}`
	chat := `{"stop":["` + lone + `"],"user":"` + lone + `",` +
		`"tools":[{"type":"function","function":{"name":"t","description":"` + lone + `"}}],"messages":[` +
		`{"role":"system","content":"` + lone + `"},{"role":"user","content":[{"type":"text","text":"` + lone + `"}]},` +
		`{"role":"assistant","content":"` + lone + `","tool_calls":[{"id":"c","type":"function","function":{"name":"t","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"c","content":"` + lone + `"}]}`
	for _, c := range []struct {
		name string
		run  func() ([]byte, error)
	}{
		{"MessagesToChat", func() ([]byte, error) { return MessagesToChat([]byte(messages), "up") }},
		{"MessagesToGemini", func() ([]byte, error) { return MessagesToGemini([]byte(messages)) }},
		{"ChatToMessages", func() ([]byte, error) { return ChatToMessages([]byte(chat), "up") }},
		{"ChatToGemini", func() ([]byte, error) { return ChatToGemini([]byte(chat)) }},
	} {
		out, err := c.run()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if bytes.Contains(bytes.ToLower(out), []byte(`\ud83d`)) || !bytes.Contains(out, []byte("x \ufffd y")) {
			t.Errorf("%s kept a lone surrogate or lost the text: %s", c.name, out)
		}
	}
}

// Values of the wrong type are refused, as when the requests were decoded
// into typed fields.
func TestWrongTypesAreRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func([]byte, string) ([]byte, error)
		body string
	}{
		{"image data", MessagesToChat, `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":5}}]}]}`},
		{"max_tokens beyond int64", MessagesToChat, `{"max_tokens":99999999999999999999,"messages":[]}`},
		{"max_tokens with a fraction", MessagesToChat, `{"max_tokens":1.5,"messages":[]}`},
		{"metadata.user_id", MessagesToChat, `{"metadata":{"user_id":5},"messages":[]}`},
		{"tool_choice.name", MessagesToChat, `{"tool_choice":{"type":"tool","name":5},"messages":[]}`},
		{"chat max_tokens beyond int64", ChatToMessages, `{"max_tokens":99999999999999999999,"messages":[]}`},
		{"tool call id", ChatToMessages, `{"messages":[{"role":"assistant","tool_calls":[{"id":{},"function":{"name":"t","arguments":"{}"}}]}]}`},
		{"tool function", ChatToMessages, `{"messages":[],"tools":[{"type":"function","function":"t"}]}`},
		{"role", ChatToMessages, `{"messages":[{"role":5,"content":"hi"}]}`},
	} {
		_, err := c.run([]byte(c.body), "up")
		if e, ok := errors.AsType[*Error](err); !ok || e.Status != 400 {
			t.Errorf("%s: got %v, want a 400 refusal", c.name, err)
		}
	}
}

// A server tool is refused as one before its other fields are looked at.
func TestServerToolRefusedByType(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search_20250305","name":"web_search","description":5}]}`)
	for _, c := range []struct {
		name string
		run  func() ([]byte, error)
	}{
		{"MessagesToChat", func() ([]byte, error) { return MessagesToChat(body, "up") }},
		{"MessagesToGemini", func() ([]byte, error) { return MessagesToGemini(body) }},
	} {
		_, err := c.run()
		if e, ok := errors.AsType[*Error](err); !ok || !strings.Contains(e.Message, `type "web_search_20250305"`) {
			t.Errorf("%s: got %v, want the server tool's type refused", c.name, err)
		}
	}
}
