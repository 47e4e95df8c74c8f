package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// MoveClusters gives each provider and MCP server of r whose endpoint moved
// since current (another scheme, host or port under the same name) an Envoy
// cluster of its own, named after the new endpoint. Requests current
// planned carry the old cluster's name with the old credential, and must
// reach the old endpoint, not the new one: an xDS reload keeps that
// cluster in Envoy for its grace period, while r's requests go to the
// new one. One that stayed keeps current's cluster. Call it before r serves
// anything (a Router never changes after).
func (r *Router) MoveClusters(current *Router) {
	if current == nil {
		return
	}
	for _, p := range r.providers {
		if q := current.providerWithConfigCluster(p.info.ConfigCluster); q != nil {
			p.info.Cluster = movedCluster(p.info.ConfigCluster, endpoint(p.info.Scheme, p.info.Host, p.info.Port),
				q.info.Cluster, endpoint(q.info.Scheme, q.info.Host, q.info.Port))
		}
	}
	for _, s := range r.mcpOrder {
		if q := current.mcpServers[s.Name]; q != nil {
			s.Cluster = movedCluster(s.Cluster, endpoint(s.Scheme, s.Host, s.Port), q.Cluster, endpoint(q.Scheme, q.Host, q.Port))
		}
	}
}

// movedCluster is the cluster for an endpoint that the config names name,
// when the running config's cluster of that name is was, at wasEndpoint.
func movedCluster(name, endpoint, was, wasEndpoint string) string {
	if endpoint == wasEndpoint {
		return was
	}
	sum := sha256.Sum256([]byte(endpoint))
	return name + "~" + hex.EncodeToString(sum[:4])
}

func (r *Router) providerWithConfigCluster(name string) *provider {
	for _, p := range r.providers {
		if p.info.ConfigCluster == name {
			return p
		}
	}
	return nil
}

// endpoint is where a cluster sends requests.
func endpoint(scheme, host string, port int) string {
	return scheme + "://" + host + ":" + strconv.Itoa(port)
}
