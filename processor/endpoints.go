package processor

import (
	"strings"

	"switchyard/config"
)

// endpoint is one client-facing API path the gateway serves.
type endpoint struct {
	path   string
	method string
	api    config.API
	local  bool // answered by the gateway itself, never forwarded
}

var endpoints = []endpoint{
	{path: chatPath, method: "POST", api: config.APIOpenAI},
	{path: "/v1/completions", method: "POST", api: config.APIOpenAI},
	{path: "/v1/embeddings", method: "POST", api: config.APIOpenAI},
	{path: responsesPath, method: "POST", api: config.APIOpenAI},
	{path: messagesPath, method: "POST", api: config.APIAnthropic},
	{path: countTokensPath, method: "POST", api: config.APIAnthropic},
	{path: "/v1/models", method: "GET", api: config.APIOpenAI, local: true},
}

// lookupEndpoint finds the endpoint for a request path (query string
// ignored). For an unknown path it returns nil and the API whose error shape
// suits the path best.
func lookupEndpoint(path string) (*endpoint, config.API) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for i := range endpoints {
		if endpoints[i].path == path {
			return &endpoints[i], endpoints[i].api
		}
	}
	if strings.HasPrefix(path, "/v1/messages") {
		return nil, config.APIAnthropic
	}
	return nil, config.APIOpenAI
}

// Paths of the two endpoints the gateway translates between, and of others
// it reads differently.
const (
	chatPath        = "/v1/chat/completions"
	messagesPath    = "/v1/messages"
	countTokensPath = "/v1/messages/count_tokens"
	responsesPath   = "/v1/responses"
)

// isChatPath reports whether the request calls a completions endpoint whose
// streams report usage only when stream_options.include_usage asks.
func isChatPath(path string) bool {
	p := pathOnly(path)
	return p == chatPath || p == "/v1/completions"
}
