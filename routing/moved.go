package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// MoveClusters gives each provider of r whose endpoint moved since current
// (another scheme, host or port under the same cluster name) an Envoy
// cluster of its own, named after the new endpoint. Requests current
// planned carry the old cluster's name with the old credential, and must
// reach the old endpoint, not the new one: an xDS reload keeps that
// cluster in Envoy for its grace period, while r's requests go to the
// new one. A provider whose endpoint stayed keeps current's cluster. Call
// it before r serves anything (a Router never changes after).
func (r *Router) MoveClusters(current *Router) {
	if current == nil {
		return
	}
	for _, p := range r.providers {
		q := current.providerWithConfigCluster(p.info.ConfigCluster)
		switch {
		case q == nil:
		case q.info.endpoint() == p.info.endpoint():
			p.info.Cluster = q.info.Cluster
		default:
			sum := sha256.Sum256([]byte(p.info.endpoint()))
			p.info.Cluster = p.info.ConfigCluster + "~" + hex.EncodeToString(sum[:4])
		}
	}
}

func (r *Router) providerWithConfigCluster(name string) *provider {
	for _, p := range r.providers {
		if p.info.ConfigCluster == name {
			return p
		}
	}
	return nil
}

// endpoint is where the provider's cluster sends requests.
func (p Provider) endpoint() string {
	return p.Scheme + "://" + p.Host + ":" + strconv.Itoa(p.Port)
}
