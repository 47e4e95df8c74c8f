package processor

import (
	"strings"

	"switchyard/routing"
)

// endpoint is one client-facing API path the gateway serves.
type endpoint struct {
	path   string
	method string
	api    routing.API
	local  bool // answered by the gateway itself, never forwarded
}

var endpoints = []endpoint{
	{path: "/v1/chat/completions", method: "POST", api: routing.APIOpenAI},
	{path: "/v1/completions", method: "POST", api: routing.APIOpenAI},
	{path: "/v1/embeddings", method: "POST", api: routing.APIOpenAI},
	{path: "/v1/responses", method: "POST", api: routing.APIOpenAI},
	{path: "/v1/messages", method: "POST", api: routing.APIAnthropic},
	{path: "/v1/messages/count_tokens", method: "POST", api: routing.APIAnthropic},
	{path: "/v1/models", method: "GET", api: routing.APIOpenAI, local: true},
}

// lookupEndpoint finds the endpoint for a request path (query string
// ignored). For an unknown path it returns nil and the API whose error shape
// suits the path best.
func lookupEndpoint(path string) (*endpoint, routing.API) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for i := range endpoints {
		if endpoints[i].path == path {
			return &endpoints[i], endpoints[i].api
		}
	}
	if strings.HasPrefix(path, "/v1/messages") {
		return nil, routing.APIAnthropic
	}
	return nil, routing.APIOpenAI
}
