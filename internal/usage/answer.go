package usage

import (
	"bytes"
	"slices"

	"github.com/tidwall/gjson"
)

// Answer is what a traced request's span says of the answer beside its
// tokens: the model that answered and why it stopped. A Reader fills it
// only when asked (ReadAnswer): untraced requests read nothing more.
type Answer struct {
	Model         string
	FinishReasons []string
	// KeepBody keeps a JSON answer whole in Body, for a span that
	// captures content.
	KeepBody bool
	Body     []byte
}

// ReadAnswer has r fill a as it reads the body.
func (r *Reader) ReadAnswer(a *Answer) { r.answer = a }

// Where the answer's model and finish reasons are, in a JSON answer or a
// stream event of each API: OpenAI chat and completions, Anthropic
// messages (message_start, message_delta), the Responses API (its
// response.* events) and Gemini.
var (
	modelPaths  = []string{"model", "message.model", "response.model", "modelVersion"}
	reasonPaths = []string{"choices.#.finish_reason", "stop_reason", "delta.stop_reason", "response.status", "candidates.#.finishReason"}
)

// Keys whose string value read parses an event for: the rest of a
// stream's events (text deltas, with "finish_reason":null) are skipped
// once the model is known.
var answerKeys = [][]byte{[]byte(`"finish_reason"`), []byte(`"stop_reason"`), []byte(`"finishReason"`), []byte(`"status"`)}

// worthReading is the cheap test run on every event.
func (a *Answer) worthReading(data []byte) bool {
	if a.Model == "" && bytes.Contains(data, []byte(`"model`)) {
		return true
	}
	for _, k := range answerKeys {
		if stringFollows(data, k) {
			return true
		}
	}
	return false
}

// stringFollows reports whether key occurs with a string value.
func stringFollows(data, key []byte) bool {
	for {
		i := bytes.Index(data, key)
		if i < 0 {
			return false
		}
		data = skipSpace(data[i+len(key):])
		if len(data) > 0 && data[0] == ':' {
			if d := skipSpace(data[1:]); len(d) > 0 && d[0] == '"' {
				return true
			}
		}
	}
}

// read takes the model and finish reasons a JSON document (an answer or
// one event) names.
func (a *Answer) read(data []byte) {
	if !a.worthReading(data) || !gjson.ValidBytes(data) {
		return
	}
	doc := gjson.ParseBytes(data)
	if a.Model == "" {
		for _, p := range modelPaths {
			if m := doc.Get(p); m.Type == gjson.String && m.Str != "" {
				a.Model = m.Str
				break
			}
		}
	}
	for _, p := range reasonPaths {
		a.addReasons(doc.Get(p))
	}
	if doc.Get("object").Str == "response" {
		a.addReasons(doc.Get("status")) // a Responses API JSON answer
	}
}

func (a *Answer) addReasons(v gjson.Result) {
	if v.IsArray() {
		for _, e := range v.Array() {
			a.addReasons(e)
		}
		return
	}
	// Responses API events carry the status while in progress too.
	if v.Type != gjson.String || v.Str == "" || v.Str == "in_progress" || slices.Contains(a.FinishReasons, v.Str) {
		return
	}
	a.FinishReasons = append(a.FinishReasons, v.Str)
}
