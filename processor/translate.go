package processor

import (
	"errors"
	"slices"
	"strconv"

	"switchyard/config"
	"switchyard/routing"
	"switchyard/translate"
)

// anthropicVersion is the Messages API version a translated request asks
// for: OpenAI clients send none, and Anthropic requires one.
const anthropicVersion = "2023-06-01"

// translatable reports whether the client's endpoint has a counterpart in
// the other API (routing.Request.Translate).
func translatable(path string) bool {
	switch pathOnly(path) {
	case chatPath, messagesPath, countTokensPath:
		return true
	}
	return false
}

// translateRequest turns the body into the upstream's API and returns it
// with the upstream's path. The body keeps the client's model name: each
// attempt rewrites it as usual.
func translateRequest(client, upstream config.API, body []byte, model string) ([]byte, string, *apiError) {
	var (
		out  []byte
		err  error
		path string
	)
	if upstream == config.APIGemini {
		out, path, err = translateToGemini(client, body)
	} else if client == config.APIOpenAI {
		out, err = translate.ChatToMessages(body, model)
		path = messagesPath
	} else {
		out, err = translate.MessagesToChat(body, model)
		path = chatPath
	}
	if err != nil {
		var te *translate.Error
		if errors.As(err, &te) {
			e := newAPIError(routing.KindInvalidRequest, "translation_refused", te.Message)
			e.status = te.Status
			return nil, "", e
		}
		return nil, "", newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
	}
	return out, path, nil
}

// planTranslation translates the plan's body when the decision's provider
// speaks the other API. A count_tokens call for such a model is answered
// here with an estimate, as is one that any attempt would send to Bedrock
// or to Claude on Vertex (which have no such endpoint under the model: a
// fallback there would run the conversation, and bill it).
func (p *Plan) planTranslation(d routing.Decision, req *Request) (path string, err *apiError) {
	native := d.API.Wire() == req.API
	if pathOnly(req.Path) == countTokensPath && (!native || cloudAttempts(d)) {
		// Neither chat completions, InvokeModel nor rawPredict count tokens.
		p.Answer = estimateTokens(p.Body)
		return req.Path, nil
	}
	if native {
		return req.Path, nil // Bedrock's and Vertex's attempts make the body theirs
	}
	// Every attempt of a chain speaks the API of the first (routing), so
	// one translation serves them all.
	body, path, err := translateRequest(req.API, d.API, p.Body, p.BodyModel)
	if err != nil {
		return "", err
	}
	p.Body, p.bodyChanged = body, true
	p.Response.Translate = true
	return path, nil
}

// restoreAnthropic sets the client's Messages API headers (as the hooks
// left them) again on an attempt that speaks that API: each attempt of a
// chain starts from the headers the one before it left, and a Bedrock,
// Vertex or Gemini attempt removes some. An attempt that sets or removes
// one itself keeps its own (Claude on Vertex goes without the version).
func (a *Attempt) restoreAnthropic(version, beta string) {
	if a.API != config.APIAnthropic {
		return
	}
	for _, h := range [...]routing.Header{{Name: routing.VersionHeader, Value: version}, {Name: routing.BetaHeader, Value: beta}} {
		if h.Value != "" && !a.sets(h.Name) && !slices.Contains(a.RemoveHeaders, h.Name) {
			a.SetHeaders = append(a.SetHeaders, h)
		}
	}
}

// cloudAttempts reports whether any attempt of d goes to Bedrock or Vertex.
func cloudAttempts(d routing.Decision) bool {
	if d.Bedrock != nil || d.Vertex {
		return true
	}
	for _, a := range d.Attempts {
		if a.Bedrock != nil || a.Vertex {
			return true
		}
	}
	return false
}

// translated sets what a translated attempt carries beside its body: the
// Messages API version for Anthropic, and a whole body length.
func (a *Attempt) translated() {
	a.BodyChanged = true // the attempt filter's own body, translated already
	if a.API == config.APIGemini {
		a.RemoveHeaders = slices.Concat(a.RemoveHeaders, []string{routing.BetaHeader, routing.VersionHeader})
		return
	}
	if a.API == config.APIAnthropic && !a.Vertex {
		a.SetHeaders = append(a.SetHeaders, routing.Header{Name: routing.VersionHeader, Value: anthropicVersion})
	}
	a.RemoveHeaders = slices.Concat(a.RemoveHeaders, []string{routing.BetaHeader})
}

// estimateTokens answers count_tokens for a model whose provider has no
// such endpoint: about four bytes of JSON a token, marked as an estimate.
func estimateTokens(body []byte) []byte {
	n := estimatedTokens(len(body))
	return []byte(`{"input_tokens":` + strconv.Itoa(n) + `}`)
}

// estimatedTokens is the gateway's estimate of the tokens in n bytes of a
// request: four bytes a token, rounded up.
func estimatedTokens(n int) int { return (n + 3) / 4 }

// EstimateHeader marks a count_tokens answer the gateway estimated.
const EstimateHeader = "x-switchyard-token-estimate"
