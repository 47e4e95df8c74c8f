// Package agentbody generates request bodies shaped like a coding agent's:
// a system prompt, tool definitions and a conversation of user turns,
// assistant answers, tool calls and tool results, grown to a given size.
// Agents resend the whole conversation on every call, so a request is tens
// of KB on the first turn and hundreds after an hour; the load benchmark
// and the processor's benchmarks send these instead of a 90-byte chat.
//
// Two shapes: OpenAI chat completions with "model" as the last key (as the
// official OpenAI Python SDK writes it) and Anthropic Messages with
// "model" first (as Claude Code sends it). The content is deterministic,
// prose and code with escapes (newlines, quotes) and non-ASCII text, so a
// parser meets every kind of string it would in the field: the prose is
// English, mostly ASCII, or Japanese, mostly not (Spec.Lang).
package agentbody

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// API is the shape of a body.
type API string

// The shapes Generate writes.
const (
	OpenAIChat        API = "openai_chat"        // POST /v1/chat/completions, model last
	AnthropicMessages API = "anthropic_messages" // POST /v1/messages, model first
)

// Path is the endpoint a body of this shape is sent to.
func (a API) Path() string {
	if a == AnthropicMessages {
		return "/v1/messages"
	}
	return "/v1/chat/completions"
}

// Spec says what to generate.
type Spec struct {
	API   API
	Model string
	// Size is the body's exact length in bytes; it must be at least
	// MinSize.
	Size int
	// Stream sets "stream": true.
	Stream bool
	// Lang is the language of the conversation's prose (the system
	// prompt, the user's and the assistant's turns, the code's comments):
	// one of Langs, English when empty.
	Lang string
}

// English is the language of a Spec without one.
const English = "en"

// Langs are the languages a conversation's prose can be in, in order:
// English, and Japanese, whose text is mostly three-byte UTF-8 sequences.
var Langs = slices.Sorted(maps.Keys(proses))

// prose is a conversation's text in one language.
type prose struct {
	para      string // a paragraph of the system prompt
	user      string // a user's turn: its number, then the demo's
	assistant string // an assistant's answer: the demo's number
	comment   string // the doc comment of the code a tool reads
	reading   string // the assistant's words before a tool call
	final     string // the last user turn, before its padding
}

var proses = map[string]prose{
	English: {
		para: "You are an interactive coding agent working in the user's repository. Read files before " +
			"you change them, keep changes small, run the tests, and explain what you did in a few sentences.\n" +
			"- Use the tools for every file operation; never guess a file's contents.\n" +
			"- Quote paths as `like/this.go` and commands as `go test ./...`.\n" +
			"- Résumé of conventions: naïve code is fine when it is clear — prefer it.\n\n",
		user: "Turn %d: the test in demo%d fails with \"expected hello, world\". Can you read the file, " +
			"find why, and fix it without changing the public API?",
		assistant: "I read demo%d.go: Greet formats the turn number into the greeting, so the test's exact " +
			"comparison fails. I will drop the suffix and run the tests again.",
		comment: "Greet says hello to name — in English and 日本語.",
		reading: "Let me read the file.",
		final:   "Please continue.",
	},
	"ja": {
		para: "あなたはユーザーのリポジトリで作業するコーディングエージェントです。ファイルは変更する前に読み、" +
			"変更は小さく保ち、テストを実行し、何をしたかを数文で説明してください。\n" +
			"- ファイルの操作にはすべてツールを使い、ファイルの内容を推測しないでください。\n" +
			"- パスは `like/this.go`、コマンドは `go test ./...` のように引用してください。\n" +
			"- 規約の要約：分かりやすければ素朴なコードで構いません — むしろそちらを選んでください。\n\n",
		user: "ターン%d：demo%d のテストが「expected hello, world」で失敗します。ファイルを読んで原因を見つけ、" +
			"公開 API を変えずに直してもらえますか？",
		assistant: "demo%d.go を読みました。Greet が挨拶にターン番号を入れているため、テストの厳密な比較が" +
			"失敗しています。接尾辞を削除して、もう一度テストを実行します。",
		comment: "Greet は name に挨拶します — 英語と日本語で。",
		reading: "ファイルを読みます。",
		final:   "続けてください。",
	},
}

// compactBelow: smaller bodies declare their tools with a one-property
// schema, so that a 1 KB body still has a tool and a turn.
const compactBelow = 4 << 10

// MinSize is the smallest body Generate writes: a short system prompt, one
// tool and one user turn.
const MinSize = 900

// Tools is how many tool definitions a body of size bytes carries: one at
// 1 KB, one more per 1.5 KB, at most 24 (Claude Code sends about 20).
func Tools(size int) int { return max(1, min(24, size/1500)) }

// Generate returns a body of exactly s.Size bytes.
// Sizes are the body sizes the benchmarks read: the first turn of an agent's
// conversation to an hour into it.
var Sizes = []struct {
	Name string
	Size int
}{{"1KB", 1 << 10}, {"32KB", 32 << 10}, {"256KB", 256 << 10}, {"1MB", 1 << 20}}

// MustGenerate is Generate for a Spec known to be valid (tests and
// benchmarks); it panics on an error.
func MustGenerate(s Spec) []byte {
	b, err := Generate(s)
	if err != nil {
		panic(err)
	}
	return b
}

func Generate(s Spec) ([]byte, error) {
	if s.Size < MinSize {
		return nil, fmt.Errorf("generating a %s body: size %d is below the minimum %d", s.API, s.Size, MinSize)
	}
	if s.API != OpenAIChat && s.API != AnthropicMessages {
		return nil, fmt.Errorf("generating a body: unknown API %q", s.API)
	}
	lang := cmp.Or(s.Lang, English)
	text, ok := proses[lang]
	if !ok {
		return nil, fmt.Errorf("generating a body: unknown language %q (want one of %s)", s.Lang, strings.Join(Langs, ", "))
	}
	g := gen{spec: s, text: text}
	// The conversation has as many turns as fit under size (estimated from
	// the first turn's length, then corrected); the last user turn is then
	// padded to the exact size.
	b0, err := g.body(0, 0)
	if err != nil {
		return nil, err
	}
	if len(b0) > s.Size {
		return nil, fmt.Errorf("generating a %s body: the smallest is %d bytes, over %d", s.API, len(b0), s.Size)
	}
	b1, err := g.body(1, 0)
	if err != nil {
		return nil, err
	}
	turns := (s.Size - len(b0)) / max(1, len(b1)-len(b0))
	b, err := g.body(turns, 0)
	for err == nil && len(b) > s.Size {
		turns--
		b, err = g.body(turns, 0)
	}
	if err != nil {
		return nil, err
	}
	b, err = g.body(turns, s.Size-len(b))
	if err != nil {
		return nil, err
	}
	if len(b) != s.Size {
		return nil, fmt.Errorf("generating a %s body: got %d bytes, want %d", s.API, len(b), s.Size)
	}
	return b, nil
}

type gen struct {
	spec Spec
	text prose
}

// systemPrompt is a prompt of about n bytes (cut where a character
// starts): agent instructions, repeated.
func (g gen) systemPrompt(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(g.text.para)
	}
	s := b.String()
	for n = max(0, n); n < len(s) && !utf8.RuneStart(s[n]); n-- {
	}
	return s[:n]
}

var toolNames = []string{"read_file", "write_file", "edit_file", "list_dir", "grep", "glob", "run_command",
	"web_fetch", "web_search", "todo_write", "notebook_edit", "task", "bash_output", "kill_shell", "exit_plan",
	"ask_user", "git_diff", "git_log", "open_pr", "lint", "format", "test", "build", "deploy_preview"}

// schema is a JSON Schema for a tool's input, as agents declare them.
type schema struct {
	Type       string              `json:"type"`
	Properties map[string]property `json:"properties"`
	Required   []string            `json:"required"`
	Additional bool                `json:"additionalProperties"`
}

type property struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

func toolSchema(i int, compact bool) schema {
	if compact {
		return schema{Type: "object", Properties: map[string]property{"path": {Type: "string", Description: "The file."}}, Required: []string{"path"}}
	}
	return schema{Type: "object", Properties: map[string]property{
		"path":    {Type: "string", Description: "The absolute path of the file or directory to operate on."},
		"pattern": {Type: "string", Description: "A regular expression, or a glob such as **/*.go, to match."},
		"limit":   {Type: "integer", Description: fmt.Sprintf("Read at most this many lines (tool %d).", i)},
	}, Required: []string{"path"}}
}

func toolDescription(i int) string {
	return fmt.Sprintf("Tool %d (%s). Performs one operation in the workspace and returns its output as text. "+
		"Use it instead of guessing; results longer than 30000 characters are truncated, so narrow the request "+
		"with \"limit\" or \"pattern\" when you can.", i, toolNames[i%len(toolNames)])
}

// fileContent is a tool result: a piece of Go source, with the quotes,
// tabs and newlines that a JSON encoder escapes.
func (g gen) fileContent(turn int) string {
	return fmt.Sprintf("package demo%d\n\nimport \"fmt\"\n\n// "+g.text.comment+"\n"+
		"func Greet(name string) string {\n\tif name == \"\" {\n\t\tname = \"world\"\n\t}\n"+
		"\treturn fmt.Sprintf(\"hello, %%s (turn %d)\", name)\n}\n\nfunc TestGreet%d(t *testing.T) {\n"+
		"\tif got := Greet(\"\"); got != \"hello, world\" {\n\t\tt.Errorf(\"Greet = %%q\", got)\n\t}\n}\n", turn, turn, turn)
}

func (g gen) userText(turn int) string { return fmt.Sprintf(g.text.user, turn, turn) }

func (g gen) assistantText(turn int) string { return fmt.Sprintf(g.text.assistant, turn) }

// body renders the body with turns history turns and a final user turn
// padded by pad bytes.
func (g gen) body(turns, pad int) ([]byte, error) {
	size := g.spec.Size
	sys := g.systemPrompt(min(size/8, 12000))
	tools := Tools(size)
	final := g.text.final + strings.Repeat(" .", pad/2) + strings.Repeat(".", pad%2)
	var v any
	if g.spec.API == AnthropicMessages {
		v = g.anthropic(sys, tools, turns, final)
	} else {
		v = g.openai(sys, tools, turns, final)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding a %s body: %w", g.spec.API, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// OpenAI chat completions, "model" last (the struct's field order is the
// key order).
type openaiBody struct {
	Messages  []openaiMessage `json:"messages"`
	Tools     []openaiTool    `json:"tools"`
	MaxTokens int             `json:"max_tokens"`
	Stream    bool            `json:"stream"`
	Model     string          `json:"model"`
}

type openaiMessage struct {
	Role       string           `json:"role"`
	Content    *string          `json:"content"`
	ToolCalls  []openaiToolCall `json:"tool_calls,omitempty"`
	ToolCallID string           `json:"tool_call_id,omitempty"`
}

type openaiToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type openaiTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Parameters  schema `json:"parameters"`
	} `json:"function"`
}

func ptr(s string) *string { return &s }

func (g gen) openai(sys string, tools, turns int, final string) openaiBody {
	b := openaiBody{MaxTokens: 4096, Stream: g.spec.Stream, Model: g.spec.Model}
	for i := range tools {
		var t openaiTool
		t.Type = "function"
		t.Function.Name = toolNames[i%len(toolNames)]
		t.Function.Description = toolDescription(i)
		t.Function.Parameters = toolSchema(i, g.spec.Size < compactBelow)
		b.Tools = append(b.Tools, t)
	}
	b.Messages = append(b.Messages, openaiMessage{Role: "system", Content: ptr(sys)})
	for turn := range turns {
		id := fmt.Sprintf("call_%04d", turn)
		var call openaiToolCall
		call.ID, call.Type = id, "function"
		call.Function.Name = "read_file"
		call.Function.Arguments = fmt.Sprintf(`{"path":"/repo/demo%d/demo.go","limit":200}`, turn)
		b.Messages = append(b.Messages,
			openaiMessage{Role: "user", Content: ptr(g.userText(turn))},
			openaiMessage{Role: "assistant", ToolCalls: []openaiToolCall{call}},
			openaiMessage{Role: "tool", ToolCallID: id, Content: ptr(g.fileContent(turn))},
			openaiMessage{Role: "assistant", Content: ptr(g.assistantText(turn))})
	}
	b.Messages = append(b.Messages, openaiMessage{Role: "user", Content: ptr(final)})
	return b
}

// Anthropic Messages, "model" first.
type anthropicBody struct {
	Model     string             `json:"model"`
	MaxTokens int                `json:"max_tokens"`
	System    []anthropicBlock   `json:"system"`
	Tools     []anthropicTool    `json:"tools"`
	Messages  []anthropicMessage `json:"messages"`
	Metadata  struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Stream bool `json:"stream"`
}

type anthropicBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      string          `json:"content,omitempty"`
	CacheControl *struct {
		Type string `json:"type"`
	} `json:"cache_control,omitempty"`
}

type anthropicTool struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	InputSchema schema `json:"input_schema"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []anthropicBlock `json:"content"`
}

func (g gen) anthropic(sys string, tools, turns int, final string) anthropicBody {
	b := anthropicBody{Model: g.spec.Model, MaxTokens: 4096, Stream: g.spec.Stream}
	b.Metadata.UserID = "user_bench_account__session_0f6c1c0e-6b5e-4d7a-9c55-0d7c3e1b9a11"
	system := anthropicBlock{Type: "text", Text: sys}
	system.CacheControl = &struct {
		Type string `json:"type"`
	}{"ephemeral"}
	b.System = []anthropicBlock{system}
	for i := range tools {
		b.Tools = append(b.Tools, anthropicTool{Name: toolNames[i%len(toolNames)], Description: toolDescription(i), InputSchema: toolSchema(i, g.spec.Size < compactBelow)})
	}
	for turn := range turns {
		id := fmt.Sprintf("toolu_%04d", turn)
		input := json.RawMessage(fmt.Sprintf(`{"path":"/repo/demo%d/demo.go","limit":200}`, turn))
		b.Messages = append(b.Messages,
			anthropicMessage{Role: "user", Content: []anthropicBlock{{Type: "text", Text: g.userText(turn)}}},
			anthropicMessage{Role: "assistant", Content: []anthropicBlock{{Type: "text", Text: g.text.reading},
				{Type: "tool_use", ID: id, Name: "read_file", Input: input}}},
			anthropicMessage{Role: "user", Content: []anthropicBlock{{Type: "tool_result", ToolUseID: id, Content: g.fileContent(turn)}}},
			anthropicMessage{Role: "assistant", Content: []anthropicBlock{{Type: "text", Text: g.assistantText(turn)}}})
	}
	b.Messages = append(b.Messages, anthropicMessage{Role: "user", Content: []anthropicBlock{{Type: "text", Text: final}}})
	return b
}
