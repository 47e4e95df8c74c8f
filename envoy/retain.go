package envoy

import (
	"slices"

	"switchyard/routing"
)

// Retaining returns o with what the resources of older options have and
// o's lack: their providers' and MCP servers' clusters (o's own win where
// both name one), their retry route entries, the larger body limit, and
// response headers if any sent them. An xDS server builds a reload's
// resources so, for a grace period: requests an older config planned may
// still be on their way to Envoy's router, or about to retry, and must
// find their cluster and route entry there.
func (o Options) Retaining(older ...Options) Options {
	o.Providers = slices.Clone(o.Providers)
	o.RetryRoutes = slices.Clone(o.RetryRoutes)
	o.MCPServers = slices.Clone(o.MCPServers)
	for _, old := range older {
		// settings keeps the first provider of each cluster: o's.
		o.Providers = append(o.Providers, old.Providers...)
		for _, m := range old.MCPServers {
			if !slices.ContainsFunc(o.MCPServers, func(have routing.MCPServer) bool { return have.Cluster == m.Cluster }) {
				o.MCPServers = append(o.MCPServers, m)
			}
		}
		for _, rr := range old.RetryRoutes {
			if !slices.ContainsFunc(o.RetryRoutes, func(have routing.RetryRoute) bool { return have.Key() == rr.Key() }) {
				o.RetryRoutes = append(o.RetryRoutes, rr)
			}
		}
		o.MaxBodyBytes = max(o.MaxBodyBytes, old.MaxBodyBytes)
		o.ResponseHeaders = o.ResponseHeaders || old.ResponseHeaders
	}
	return o
}
