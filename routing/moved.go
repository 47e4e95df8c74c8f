package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// MoveClusters names the Envoy clusters of r's providers and MCP servers
// against the configs whose clusters Envoy still holds (held: the running
// one first, then those kept for their grace period). Requests those
// configs planned carry their cluster's name with their credential, and
// must reach that cluster's endpoint, not another: so an endpoint keeps
// the running config's cluster where it stayed, takes its configured name
// where no held config has that cluster elsewhere, and otherwise gets a
// cluster named after it. Call it before r serves anything (a Router never
// changes after).
func (r *Router) MoveClusters(held ...*Router) {
	if len(held) == 0 {
		return
	}
	at := heldEndpoints(held)
	running := held[0]
	for _, p := range r.providers {
		var was, wasAt string
		if q := running.providerWithConfigCluster(p.info.ConfigCluster); q != nil {
			was, wasAt = q.info.Cluster, providerEndpoint(q.info)
		}
		p.info.Cluster = clusterFor(p.info.ConfigCluster, providerEndpoint(p.info), was, wasAt, at)
	}
	for _, s := range r.mcpOrder {
		var was, wasAt string
		if q := running.mcpServers[s.Name]; q != nil {
			was, wasAt = q.Cluster, endpoint(q.Scheme, q.Host, q.Port)
		}
		s.Cluster = clusterFor(s.Cluster, endpoint(s.Scheme, s.Host, s.Port), was, wasAt, at)
	}
}

// clusterFor is the cluster of the endpoint ep that the config names name:
// was, the running config's cluster of that name, if it is at ep (wasAt);
// name if every held cluster of that name is at ep; else a name of its own.
func clusterFor(name, ep, was, wasAt string, at map[string][]string) string {
	if was != "" && wasAt == ep {
		return was
	}
	for _, other := range at[name] {
		if other != ep {
			sum := sha256.Sum256([]byte(ep))
			return name + "~" + hex.EncodeToString(sum[:4])
		}
	}
	return name
}

// heldEndpoints maps each cluster of the held configs to its endpoints.
func heldEndpoints(held []*Router) map[string][]string {
	at := map[string][]string{}
	for _, h := range held {
		for _, p := range h.providers {
			at[p.info.Cluster] = append(at[p.info.Cluster], providerEndpoint(p.info))
		}
		for _, s := range h.mcpOrder {
			at[s.Cluster] = append(at[s.Cluster], endpoint(s.Scheme, s.Host, s.Port))
		}
	}
	return at
}

func (r *Router) providerWithConfigCluster(name string) *provider {
	for _, p := range r.providers {
		if p.info.ConfigCluster == name {
			return p
		}
	}
	return nil
}

func providerEndpoint(p Provider) string { return endpoint(p.Scheme, p.Host, p.Port) }

// endpoint is where a cluster sends requests.
func endpoint(scheme, host string, port int) string {
	return scheme + "://" + host + ":" + strconv.Itoa(port)
}
