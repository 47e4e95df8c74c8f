package processor

import (
	"net/url"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/config"
	"switchyard/routing"
)

// vertexAnthropicVersion is the Messages API version Vertex AI takes in
// the body of Claude's rawPredict.
const vertexAnthropicVersion = "vertex-2023-10-16"

// The Vertex methods that take a Messages body.
const (
	vertexRaw       = ":rawPredict"
	vertexRawStream = ":streamRawPredict"
)

// vertexClaude lays out an attempt to Claude on Vertex AI: the model's
// rawPredict (streamRawPredict for a stream) under the provider's path,
// the Messages body without its model and with Vertex's
// anthropic_version, and no anthropic-version header. Gemini on Vertex
// needs none of this: its path is the Gemini API's under the publisher.
func (a *Attempt) vertexClaude(d *routing.Decision, path, beta string) *apiError {
	if pathOnly(path) != messagesPath {
		return newAPIError(routing.KindInvalidRequest, "invalid_request_error",
			"model "+d.Model+" is served by Claude on Vertex AI, reached only from chat completions and messages")
	}
	method := vertexRaw
	if gjson.GetBytes(a.Body, "stream").Bool() {
		method = vertexRawStream
	}
	body, err := vertexMessagesBody(a.Body)
	if err != nil {
		return newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
	}
	a.Path = d.PathPrefix + "/models/" + url.PathEscape(d.Model) + method
	a.Body, a.BodyChanged = body, true
	a.RemoveHeaders = slices.Concat(a.RemoveHeaders, []string{routing.VersionHeader})
	if d.Betas != nil {
		// Vertex refuses a request naming a beta it does not take, and
		// which it takes differs by model: the provider's list says. beta
		// is what the hooks left; a header they set is replaced.
		a.unset(routing.BetaHeader)
		if kept := routing.KeepBetas(beta, d.Betas); kept != nil {
			a.SetHeaders = append(a.SetHeaders, routing.Header{Name: routing.BetaHeader, Value: strings.Join(kept, ",")})
		} else {
			a.RemoveHeaders = append(a.RemoveHeaders, routing.BetaHeader)
		}
	}
	return nil
}

// vertexMessagesBody is a Messages body as Vertex takes it: the model is
// in the path, the version in the body. The version takes the model's
// place in one copy of the body; a body whose model key is spelled with
// escapes takes the slower way.
func vertexMessagesBody(body []byte) ([]byte, error) {
	const version = `"anthropic_version":"` + vertexAnthropicVersion + `"`
	m := gjson.GetBytes(body, "model")
	if key := modelKeyStart(body, m); key >= 0 {
		out := make([]byte, 0, len(body)+len(version))
		out = append(append(append(out, body[:key]...), version...), body[m.Index+len(m.Raw):]...)
		return out, nil
	}
	out, err := sjson.DeleteBytes(body, "model")
	if err != nil {
		return nil, err
	}
	return sjson.SetBytes(out, "anthropic_version", vertexAnthropicVersion)
}

// modelKeyStart is where the "model" key of the value m starts in body,
// or -1 when there is none spelled so.
func modelKeyStart(body []byte, m gjson.Result) int {
	if !m.Exists() || m.Index <= 0 {
		return -1
	}
	i := m.Index - 1
	for i >= 0 && isJSONSpace(body[i]) {
		i--
	}
	if i < 0 || body[i] != ':' {
		return -1
	}
	i--
	for i >= 0 && isJSONSpace(body[i]) {
		i--
	}
	const key = `"model"`
	if i+1 < len(key) || string(body[i+1-len(key):i+1]) != key {
		return -1
	}
	return i + 1 - len(key)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// vertexClaudeAttempt reports whether an attempt goes to Claude on Vertex.
func vertexClaudeAttempt(d *routing.Decision) bool {
	return d.Vertex && d.API == config.APIAnthropic
}
