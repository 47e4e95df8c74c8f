package translate

import (
	"encoding/json"
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
