package processor

import (
	"net/url"
	"strings"

	"github.com/tidwall/gjson"

	"switchyard/config"
	"switchyard/routing"
	"switchyard/translate"
)

// upstreamPath is the path an attempt calls: the provider's path prefix
// and the plan's path, laid out as the provider's schema wants it. path is
// the client's (or, translated, the upstream API's) path; for Gemini it is
// the method, ":generateContent" or ":streamGenerateContent?alt=sse".
func upstreamPath(d *routing.Decision, path string) string {
	switch d.API {
	case config.APIAzureOpenAI:
		return azurePath(d, path)
	case config.APIGemini:
		return d.PathPrefix + "/models/" + url.PathEscape(d.Model) + path
	}
	return d.PathPrefix + path
}

// azurePath maps an OpenAI path onto Azure OpenAI's: with api_version v1,
// /openai/v1/... as it is (the model in the body); otherwise the
// deployment named by the decision's model,
// /openai/deployments/{model}/chat/completions?api-version=....
func azurePath(d *routing.Decision, path string) string {
	if d.APIVersion == config.AzureV1 {
		return d.PathPrefix + path
	}
	p, query, _ := strings.Cut(path, "?")
	q := "api-version=" + url.QueryEscape(d.APIVersion)
	if query != "" {
		q = query + "&" + q
	}
	op := strings.TrimPrefix(p, "/v1")
	if !azureDeploymentOps[op] {
		return d.PathPrefix + op + "?" + q // /openai/responses: the model in the body
	}
	return d.PathPrefix + "/deployments/" + url.PathEscape(d.Model) + op + "?" + q
}

// azureDeploymentOps are the operations Azure serves under a deployment's
// path; the others (Responses) take the model in the body.
var azureDeploymentOps = map[string]bool{"/chat/completions": true, "/completions": true, "/embeddings": true}

// bodyNamesModel reports whether the upstream reads the model from the
// body: Gemini reads it from the path, and its bodies have no model field.
func bodyNamesModel(api config.API) bool { return api != config.APIGemini }

// The Gemini API's methods, the plan's path of a translated request.
const (
	geminiMethod       = ":generateContent"
	geminiStreamMethod = ":streamGenerateContent?alt=sse"
)

// translateToGemini translates a chat or Messages body for Gemini and
// returns the method the client's stream flag asks for.
func translateToGemini(client config.API, body []byte) ([]byte, string, error) {
	method := geminiMethod
	if gjson.GetBytes(body, "stream").Bool() {
		method = geminiStreamMethod
	}
	if client == config.APIOpenAI {
		out, err := translate.ChatToGemini(body)
		return out, method, err
	}
	out, err := translate.MessagesToGemini(body)
	return out, method, err
}

// newGeminiStream translates a Gemini stream into the client's.
func newGeminiStream(client config.API, model string) translate.Stream {
	if client == config.APIOpenAI {
		return translate.NewGeminiToChatStream(model)
	}
	return translate.NewGeminiToMessagesStream(model)
}

// geminiResponse translates a Gemini answer into the client's API.
func geminiResponse(client config.API, body []byte, model string) ([]byte, error) {
	if client == config.APIOpenAI {
		return translate.GeminiResponseToChat(body, model)
	}
	return translate.GeminiResponseToMessages(body, model)
}

// geminiError translates a Gemini error into the client's API.
func geminiError(client config.API, status int, body []byte) (int, []byte) {
	if client == config.APIOpenAI {
		return translate.GeminiErrorToChat(status, body)
	}
	return translate.GeminiErrorToMessages(status, body)
}
