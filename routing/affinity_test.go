package routing

import (
	"context"
	"fmt"
	"math"
	"testing"

	"switchyard/config"
)

const affinityYAML = `
providers:
  - {name: a, url: "http://a.example", schema: openai}
  - {name: b, url: "http://b.example", schema: openai}
  - {name: c, url: "http://c.example", schema: openai}
routes:
  - model: fast
    targets:
      - {provider: a, weight: 3}
      - {provider: b, weight: 1}
%s`

func decideSession(t *testing.T, r *Router, session string) string {
	t.Helper()
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "fast", Session: session,
		Pick: func(int) int { t.Fatal("Pick called for a request with a session"); return 0 }})
	if err != nil {
		t.Fatalf("Decide(session %q): %v", session, err)
	}
	if !d.Affinity {
		t.Errorf("Decide(session %q).Affinity = false, want true", session)
	}
	return d.Provider
}

func TestAffinityOneSessionOneTarget(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, fmt.Sprintf(affinityYAML, ""))
	for _, session := range []string{"s-1", "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77", "user_abc_account__session_x"} {
		first := decideSession(t, r, session)
		for range 199 {
			if got := decideSession(t, r, session); got != first {
				t.Fatalf("session %q went to %s after %s", session, got, first)
			}
		}
	}
}

func TestAffinitySplitFollowsWeights(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, fmt.Sprintf(affinityYAML, ""))
	count := map[string]int{}
	const sessions = 1000
	for i := range sessions {
		count[decideSession(t, r, fmt.Sprintf("session-%d", i))]++
	}
	// 3:1 is 750:250; a binomial's standard deviation here is about 14.
	if math.Abs(float64(count["a"])-750) > 60 || count["a"]+count["b"] != sessions {
		t.Errorf("1000 sessions over a 3:1 alias split %v, want close to a:750 b:250", count)
	}
}

func TestAffinityRemovingATargetMovesOnlyItsSessions(t *testing.T) {
	t.Parallel()
	before := mustRouter(t, fmt.Sprintf(affinityYAML, "      - {provider: c, weight: 2}\n"))
	after := mustRouter(t, fmt.Sprintf(affinityYAML, ""))
	moved, onC := 0, 0
	for i := range 1000 {
		s := fmt.Sprintf("session-%d", i)
		was, is := decideSession(t, before, s), decideSession(t, after, s)
		if was == "c" {
			onC++
			continue
		}
		if was != is {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("removing target c moved %d sessions that were on a or b, want 0", moved)
	}
	if onC < 250 || onC > 420 { // c had 2 of 6 parts: about 333
		t.Errorf("target c had %d of 1000 sessions, want about 333", onC)
	}
}

func TestAffinityWithoutSessionUsesPick(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, fmt.Sprintf(affinityYAML, ""))
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "fast", Pick: func(int) int { return 3 }})
	if err != nil {
		t.Fatal(err)
	}
	if d.Provider != "b" || d.Affinity {
		t.Errorf("Decide without a session = %s (affinity %t), want b by Pick (affinity false)", d.Provider, d.Affinity)
	}
}

func BenchmarkDecideSession(b *testing.B) {
	r := mustRouter(b, fmt.Sprintf(affinityYAML, ""))
	req := Request{API: config.APIOpenAI, Model: "fast", Session: "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Decide(ctx, &req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoopGuardPrincipal(t *testing.T) {
	t.Parallel()
	const base = `
providers:
  - {name: a, url: "http://a.example", schema: openai}
loop_guard: {max_repeats: 7}
`
	anon := mustRouter(t, base)
	p, err := anon.Authenticate("")
	if err != nil {
		t.Fatal(err)
	}
	if g := p.LoopGuard(); g == nil || g.MaxRepeats != 7 || g.Window != config.DefaultLoopGuardWindow {
		t.Errorf("anonymous loop guard = %+v, want 7 in the default window", g)
	}
	keyed := mustRouter(t, base+`
client_keys:
  - {name: team-a, key_env: SWITCHYARD_KEY_TEAM_A, loop_guard: {max_repeats: 2, window: 10s}}
  - {name: team-b, key_file: /run/secrets/team-b}
`)
	a, b := mustPrincipal(t, keyed, secretTeamA), mustPrincipal(t, keyed, secretTeamB)
	if g := a.LoopGuard(); g == nil || g.MaxRepeats != 2 || g.Window.Seconds() != 10 {
		t.Errorf("team-a loop guard = %+v, want its own 2 in 10s", g)
	}
	if g := b.LoopGuard(); g == nil || g.MaxRepeats != 7 {
		t.Errorf("team-b loop guard = %+v, want the top-level 7", g)
	}
	if g := mustRouter(t, "providers: [{name: a, url: \"http://a.example\", schema: openai}]").config.LoopGuard; g != nil {
		t.Errorf("loop guard without config = %+v, want nil (off)", g)
	}
}
