package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRestartNeeded(t *testing.T) {
	t.Parallel()
	const base = `
max_body_bytes: 1000
providers:
  - {name: a, url: 'http://a:1', schema: openai, auth: {type: bearer, key_env: A}}
  - {name: b, url: 'http://b:1', schema: openai}
routes: [{model: m, provider: a}]
hooks: {dir: h, timeout: 5ms}
`
	for _, tc := range []struct {
		name string
		next string
		want []string
	}{
		{"same file", base, nil},
		{"live fields only", `
max_body_bytes: 1000
providers:
  - {name: a, url: 'http://a:1', schema: anthropic, path_prefix: /x, auth: {type: header, header: x-api-key, key_env: B}}
routes: [{model: other, provider: a}]
client_keys: [{name: k, key_env: K, limits: {requests_per_minute: 5, tokens_per_day: 100}}]
hooks: {dir: h, timeout: 5ms}
`, nil},
		{"rate-limit service added", base + "rate_limit_service: {address: 'unix:/run/rls.sock'}\n", []string{"rate_limit_service"}},
		{"tracing turned on", base + "tracing: {enabled: true}\n", []string{"tracing"}},
		{"restart fields", `
providers:
  - {name: a, url: 'http://a:2', schema: openai}
  - {name: b, url: 'http://b:1', cluster: bb, schema: openai}
  - {name: c, url: 'http://c:1', schema: openai}
hooks: {dir: h, timeout: 6ms}
`, []string{"max_body_bytes", "hooks", "providers[0].url", "providers[1].cluster", `providers[2] (new provider "c")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			running, err := Decode([]byte(base))
			if err != nil {
				t.Fatal(err)
			}
			next, err := Decode([]byte(tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, RestartNeeded(running, next)); diff != "" {
				t.Errorf("RestartNeeded (-want +got):\n%s", diff)
			}
		})
	}
}
