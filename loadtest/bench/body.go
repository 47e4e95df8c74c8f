package bench

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"switchyard/loadtest/agentbody"
)

// Body is an agent-shaped request body the agent stages send
// (agentbody.Generate): every path gets the same bytes.
type Body struct {
	// Name is SHAPE_SIZE (Shape), e.g. "openai_chat_256KB" or
	// "openai_chat_ja_256KB".
	Name string        `json:"name"`
	API  agentbody.API `json:"api"`
	// Lang is the language of the conversation's prose
	// (agentbody.Langs; empty: English).
	Lang  string `json:"lang,omitempty"`
	Size  int    `json:"size"`
	Model string `json:"model"`
	Data  []byte `json:"-"`
}

// Shape is the body's API, and the language of its prose unless that is
// English: bodies of one shape differ only in size.
func (b Body) Shape() string {
	if cmp.Or(b.Lang, agentbody.English) == agentbody.English {
		return string(b.API)
	}
	return string(b.API) + "_" + b.Lang
}

// ModelAnthropic is the model Messages-shaped bodies name; the gateway's
// bench config sends it to the mock's Messages endpoint.
const ModelAnthropic = "mock-claude"

// Path is the endpoint the body is sent to.
func (b *Body) Path() string {
	if b == nil {
		return "/v1/chat/completions"
	}
	return b.API.Path()
}

// NewBody generates the body of api at size bytes, its prose in lang.
func NewBody(api agentbody.API, lang string, size int) (Body, error) {
	model := Model
	if api == agentbody.AnthropicMessages {
		model = ModelAnthropic
	}
	data, err := agentbody.Generate(agentbody.Spec{API: api, Model: model, Size: size, Lang: lang})
	if err != nil {
		return Body{}, err
	}
	b := Body{API: api, Lang: lang, Size: size, Model: model, Data: data}
	b.Name = b.Shape() + "_" + SizeName(size)
	return b, nil
}

// SizeName writes a size as the flags take it: 256KB, 1MB, 900B.
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KB"
	}
	return strconv.Itoa(n) + "B"
}

// ParseSize reads 256KB, 1MB or a number of bytes (KB and MB are binary).
func ParseSize(s string) (int, error) {
	mult := 1
	num := s
	switch {
	case strings.HasSuffix(s, "MB"):
		mult, num = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		mult, num = 1<<10, strings.TrimSuffix(s, "KB")
	case strings.HasSuffix(s, "B"):
		num = strings.TrimSuffix(s, "B")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, KB or MB", s)
	}
	return n * mult, nil
}
