package translate

import (
	"encoding/base64"
	"net/http"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

	"switchyard/internal/apierr"
)

// GeminiResponseToChat translates a Gemini generateContent response (2xx)
// into an OpenAI chat.completion for a client that asked for clientModel.
// An error means the upstream body could not be read; answer 502.
func GeminiResponseToChat(body []byte, clientModel string) ([]byte, error) {
	return geminiResponseToChat(defaultEnv, body, clientModel)
}

// GeminiResponseToMessages translates a Gemini generateContent response
// (2xx) into an Anthropic message, by way of the chat completion.
func GeminiResponseToMessages(body []byte, clientModel string) ([]byte, error) {
	return geminiResponseToMessages(defaultEnv, body, clientModel)
}

func geminiResponseToMessages(e env, body []byte, clientModel string) ([]byte, error) {
	chat, err := geminiResponseToChat(e, body, clientModel)
	if err != nil {
		return nil, err
	}
	return chatResponseToMessages(e, chat, clientModel)
}

func geminiResponseToChat(e env, body []byte, clientModel string) ([]byte, error) {
	var in geminiResponse
	if err := json.Unmarshal(body, &in); err != nil || (in.Candidates == nil && in.PromptFeedback == nil) {
		return nil, errNotAResponse
	}
	msg := chatReplyMessage{Role: "assistant"}
	reason := "content_filter" // a prompt blocked before any candidate
	if len(in.Candidates) > 0 {
		c := in.Candidates[0]
		var text strings.Builder
		callID := geminiCallIDs(e)
		for _, p := range c.Content.Parts {
			switch {
			case p.Thought:
			case p.FunctionCall != nil:
				msg.ToolCalls = append(msg.ToolCalls, geminiToolCall(p.FunctionCall, p.ThoughtSignature, callID(len(msg.ToolCalls)), nil))
			default:
				text.WriteString(p.Text)
			}
		}
		if text.Len() > 0 || len(msg.ToolCalls) == 0 {
			s := text.String()
			msg.Content = &s
		}
		reason = geminiFinishReason(c.FinishReason, len(msg.ToolCalls) > 0)
	}
	out := chatResponse{
		ID:      e.chatIDFor(in.ResponseID),
		Object:  "chat.completion",
		Created: e.now(),
		Model:   clientModel,
		Choices: []chatChoice{{Message: msg, Logprobs: json.RawMessage("null"), FinishReason: &reason}},
		Usage:   geminiChatUsage(in.UsageMetadata),
	}
	return mustMarshal(out), nil
}

// geminiCallIDs names the tool calls of one answer: Gemini's calls carry no
// id (or one only some models set), OpenAI's and Anthropic's must.
func geminiCallIDs(e env) func(i int) string {
	prefix := ""
	return func(i int) string {
		if prefix == "" {
			prefix = "call_" + e.random() + "_"
		}
		return prefix + itoa(i)
	}
}

// geminiToolCall is a function call as a chat tool call: Gemini's id, or
// id, with the call's thought signature (withSignature).
func geminiToolCall(fc *geminiFunctionCall, sig, id string, index *int) chatToolCall {
	if fc.ID != "" {
		id = fc.ID
	}
	args := string(compactJSON(fc.Args))
	if args == "" {
		args = "{}"
	}
	return chatToolCall{Index: index, ID: withSignature(id, sig), Type: "function", Function: chatFunctionCall{Name: fc.Name, Arguments: args}}
}

// signatureMark joins a function call's thought signature to the id of the
// tool call a client sees (withSignature).
const signatureMark = "__sig_"

// withSignature is the tool call id that carries sig, a function call's
// thought signature, back to Gemini. Gemini 3 refuses a conversation whose
// function calls come back without the signatures it gave them; OpenAI's
// and Anthropic's clients know nothing of them, but send every call back
// with its id. The signature travels in base64url, the alphabet of
// Anthropic's tool ids. A signature that is not base64 is left out; an id
// of Gemini's that holds the mark gets an empty one, so that its own tail
// is not read as a signature.
func withSignature(id, sig string) string {
	sig = strings.TrimRight(sig, "=")
	b, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(sig)
	}
	switch {
	case sig != "" && err == nil:
		return id + signatureMark + base64.RawURLEncoding.EncodeToString(b)
	case strings.Contains(id, signatureMark):
		return id + signatureMark
	}
	return id
}

// splitSignature is the id Gemini gave a call (or "") and the thought
// signature withSignature put in a tool call's id ("": none, or not one).
// The signature follows the last mark: Gemini's own id may hold one.
func splitSignature(id string) (string, string) {
	i := strings.LastIndex(id, signatureMark)
	if i < 0 {
		return id, ""
	}
	b, err := base64.RawURLEncoding.DecodeString(id[i+len(signatureMark):])
	if err != nil {
		return id, ""
	}
	return id[:i], base64.StdEncoding.EncodeToString(b)
}

// geminiFinishReason maps Gemini's finishReason to OpenAI's finish_reason:
// a turn that ends in function calls is "tool_calls".
func geminiFinishReason(r string, calls bool) string {
	switch r {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return "content_filter"
	}
	if calls {
		return "tool_calls"
	}
	return "stop"
}

// geminiChatUsage maps usageMetadata: the prompt (cached tokens included,
// as OpenAI counts them), and the candidates with the thoughts as the
// completion.
func geminiChatUsage(u *geminiUsage) *chatUsage {
	if u == nil {
		return &chatUsage{}
	}
	out := &chatUsage{PromptTokens: u.PromptTokenCount, CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount}
	out.TotalTokens = out.PromptTokens + out.CompletionTokens
	if u.CachedContentTokenCount > 0 {
		out.PromptTokensDetails = &promptTokensDetail{CachedTokens: u.CachedContentTokenCount}
	}
	return out
}

// GeminiErrorToChat turns a Gemini error response (status >= 400),
// {"error":{"code","message","status"}}, into OpenAI's error shape. A key
// Gemini refuses (400 API_KEY_INVALID) becomes 401, as the other APIs
// answer a wrong key. A body that is not a Gemini error gets a generic
// message naming the status, never the body itself.
func GeminiErrorToChat(status int, body []byte) (int, []byte) {
	e := gjson.GetBytes(body, "error")
	msg, code := e.Get("message").String(), e.Get("status").String()
	if e.Get(`details.#(reason=="API_KEY_INVALID")`).Exists() {
		status = http.StatusUnauthorized
	}
	if msg == "" || !e.IsObject() {
		msg = genericMessage(status)
	}
	if code == "" {
		code = "upstream_error"
	}
	return status, mustMarshal(apierr.OpenAI{Error: apierr.OpenAIError{Message: msg, Type: openAITypeFor(status, ""), Code: code}})
}

// GeminiErrorToMessages turns a Gemini error response into Anthropic's
// error shape.
func GeminiErrorToMessages(status int, body []byte) (int, []byte) {
	return ErrorToMessages(GeminiErrorToChat(status, body))
}
