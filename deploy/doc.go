// Package deploy holds no code: its tests check the deployment shapes kept in
// the repository against what `make run` and `extproc envoy-config` produce,
// so that none of them drifts: the kustomize base and overlay in
// deploy/kubernetes (rendered with the kustomize API and decoded strictly
// into the Kubernetes API types) and examples/own-envoy.yaml, an existing
// Envoy with Switchyard added (validated by the real Envoy).
package deploy
