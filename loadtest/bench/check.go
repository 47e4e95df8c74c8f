package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// CheckFigures are the CPU costs `make bench-check` guards, each a ratio
// against Envoy alone (the envoy path) in the same run, so that a slower or
// busier machine moves both sides alike.
type CheckFigures struct {
	// Load is the closed-loop VU stage the figures come from.
	Load int `json:"load"`
	// EnvoyMicros is the envoy path's CPU µs per request (context only,
	// never compared).
	EnvoyMicros float64 `json:"envoy_us_per_request"`
	// ExtprocMicros is the gateway path's extproc CPU µs per request
	// (context only).
	ExtprocMicros float64 `json:"extproc_us_per_request"`
	// TaxMicros is the ext_proc tax: gateway path CPU per request (Envoy
	// and extproc) minus the envoy path's (context only).
	TaxMicros float64 `json:"tax_us_per_request"`
	// ExtprocRatio is ExtprocMicros / EnvoyMicros.
	ExtprocRatio float64 `json:"extproc_per_envoy"`
	// TaxRatio is TaxMicros / EnvoyMicros.
	TaxRatio float64 `json:"tax_per_envoy"`

	// The agent stage (an agent-shaped body, issue 19): the gateway
	// path's CPU per request (Envoy and extproc) against the envoy path's,
	// so that cost growing with the body cannot come back unseen. Zero
	// when the run had no agent stage.
	AgentBody          string  `json:"agent_body,omitempty"`
	AgentLoad          int     `json:"agent_load,omitempty"`
	AgentEnvoyMicros   float64 `json:"agent_envoy_us_per_request,omitempty"`
	AgentExtprocMicros float64 `json:"agent_extproc_us_per_request,omitempty"`
	AgentGatewayMicros float64 `json:"agent_gateway_us_per_request,omitempty"`
	AgentGatewayRatio  float64 `json:"agent_gateway_per_envoy,omitempty"`

	// MockPlain: the figures were measured with the mock answering from one
	// scan (mockllm.Options.Plain); false, with its tool loop, as every run
	// did before it had the choice. The guard runs the mock they had: the
	// mock's work changes what the paths cost.
	MockPlain bool `json:"mock_plain,omitempty"`
}

// MeasureCheck reads the figures from the closed-loop stage at load of a
// run with the envoy and gateway paths.
func MeasureCheck(r *Result, load int) (CheckFigures, error) {
	find := func(path string) (Stage, error) {
		for _, s := range r.Stages {
			if s.Kind == KindClosed && s.Load == load && s.Path == path {
				if s.Errors > 0 {
					return s, fmt.Errorf("%s at %d VUs: %d errors", path, load, s.Errors)
				}
				return s, nil
			}
		}
		return Stage{}, fmt.Errorf("no closed-loop stage at %d VUs on %s", load, path)
	}
	envoy, err := find(PathEnvoy)
	if err != nil {
		return CheckFigures{}, err
	}
	gw, err := find(PathGateway)
	if err != nil {
		return CheckFigures{}, err
	}
	envoyUS, ok1 := PathCPU(envoy)
	gwUS, ok2 := PathCPU(gw)
	_, extprocUS, ok3 := roleUse(gw, roleExtproc)
	if !ok1 || !ok2 || !ok3 || envoyUS <= 0 {
		return CheckFigures{}, errors.New("the envoy and gateway paths must both have sampled CPU time")
	}
	f := CheckFigures{Load: load, EnvoyMicros: envoyUS, ExtprocMicros: extprocUS, TaxMicros: gwUS - envoyUS}
	f.ExtprocRatio = f.ExtprocMicros / envoyUS
	f.TaxRatio = f.TaxMicros / envoyUS
	return f, measureAgent(r, &f)
}

// measureAgent fills the agent figures from the run's first agent stage
// on the envoy and gateway paths, if it has one.
func measureAgent(r *Result, f *CheckFigures) error {
	var envoy, gw *Stage
	for i := range r.Stages {
		s := &r.Stages[i]
		if s.Kind != KindAgent || envoy != nil && (s.Body != envoy.Body || s.Load != envoy.Load) {
			continue
		}
		switch s.Path {
		case PathEnvoy:
			envoy = s
		case PathGateway:
			gw = s
		}
	}
	if envoy == nil && gw == nil {
		return nil
	}
	if envoy == nil || gw == nil || envoy.Body != gw.Body || envoy.Load != gw.Load {
		return errors.New("the agent stage must run on both the envoy and gateway paths")
	}
	for _, s := range []*Stage{envoy, gw} {
		if s.Errors > 0 {
			return fmt.Errorf("%s with %s at %d VUs: %d errors", s.Path, s.Body, s.Load, s.Errors)
		}
	}
	envoyUS, ok1 := PathCPU(*envoy)
	gwUS, ok2 := PathCPU(*gw)
	_, extprocUS, _ := roleUse(*gw, roleExtproc)
	if !ok1 || !ok2 || envoyUS <= 0 {
		return errors.New("the agent stage's envoy and gateway paths must both have sampled CPU time")
	}
	f.AgentBody, f.AgentLoad = gw.Body, gw.Load
	f.AgentEnvoyMicros, f.AgentExtprocMicros, f.AgentGatewayMicros = envoyUS, extprocUS, gwUS
	f.AgentGatewayRatio = gwUS / envoyUS
	return nil
}

// CheckResult is one guarded figure compared with its committed value.
type CheckResult struct {
	Name                string
	Committed, Measured float64
	// Limit is Committed × (1 + tolerance).
	Limit float64
	Fail  bool
}

// CompareCheck compares measured with committed: a guarded ratio fails when
// it is more than tolerance (0.25: 25 %) above its committed value.
func CompareCheck(committed, measured CheckFigures, tolerance float64) []CheckResult {
	pairs := []struct {
		name string
		c, m float64
	}{
		{"extproc CPU per request / envoy's", committed.ExtprocRatio, measured.ExtprocRatio},
		{"ext_proc tax per request / envoy's", committed.TaxRatio, measured.TaxRatio},
	}
	if committed.AgentGatewayRatio > 0 {
		pairs = append(pairs, struct {
			name string
			c, m float64
		}{"gateway CPU per " + committed.AgentBody + " request / envoy's", committed.AgentGatewayRatio, measured.AgentGatewayRatio})
	}
	out := make([]CheckResult, 0, len(pairs))
	for _, p := range pairs {
		limit := p.c * (1 + tolerance)
		out = append(out, CheckResult{Name: p.name, Committed: p.c, Measured: p.m, Limit: limit, Fail: p.m > limit})
	}
	return out
}

// CheckReport renders the comparison; failed is true when any figure failed.
func CheckReport(committed, measured CheckFigures, results []CheckResult) (report string, failed bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "bench-check at %d VUs: envoy %.1f µs/req, extproc %.1f µs/req, ext_proc tax %.1f µs/req (committed: %.1f, %.1f, %.1f)\n",
		measured.Load, measured.EnvoyMicros, measured.ExtprocMicros, measured.TaxMicros,
		committed.EnvoyMicros, committed.ExtprocMicros, committed.TaxMicros)
	if measured.AgentGatewayRatio > 0 {
		fmt.Fprintf(&b, "agent stage %s at %d VUs: envoy %.1f µs/req, gateway %.1f µs/req (extproc %.1f) (committed: %.1f, %.1f, %.1f)\n",
			measured.AgentBody, measured.AgentLoad, measured.AgentEnvoyMicros, measured.AgentGatewayMicros, measured.AgentExtprocMicros,
			committed.AgentEnvoyMicros, committed.AgentGatewayMicros, committed.AgentExtprocMicros)
	}
	fmt.Fprintf(&b, "mock: %s (committed: %s)\n", MockAnswers(measured.MockPlain), MockAnswers(committed.MockPlain))
	for _, r := range results {
		verdict := "ok"
		if r.Fail {
			verdict = "FAIL"
			failed = true
		}
		fmt.Fprintf(&b, "  %-36s committed %.3f  measured %.3f  limit %.3f  %s\n", r.Name, r.Committed, r.Measured, r.Limit, verdict)
	}
	return b.String(), failed
}

// MockAnswers says how the mock answers (plain: mockllm.Options.Plain).
func MockAnswers(plain bool) string {
	if plain {
		return "text, from one scan"
	}
	return "tool loop, walking each conversation"
}

// ReadCheck loads committed figures.
func ReadCheck(file string) (CheckFigures, error) {
	var f CheckFigures
	b, err := os.ReadFile(file)
	if err != nil {
		return f, fmt.Errorf("reading committed figures: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("decoding %s: %w", file, err)
	}
	if f.Load <= 0 || f.ExtprocRatio <= 0 || f.TaxRatio <= 0 {
		return f, fmt.Errorf("%s: load and both ratios must be positive", file)
	}
	return f, nil
}

// WriteCheck stores measured figures as the new committed ones.
func WriteCheck(file string, f CheckFigures) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
