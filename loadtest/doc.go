// Package loadtest holds the overhead benchmark of Switchyard: the mock LLM
// upstream (mockllm), the k6 scripts (k6/), the native runner (bench,
// cmd/bench) and the checks that keep the k6 scripts and the compose file
// valid on a machine where neither k6 nor a container engine can run.
package loadtest
