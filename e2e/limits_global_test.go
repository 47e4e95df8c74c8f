package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitMinuteHead waits until at most second s of the current minute, so a
// check that counts per calendar minute finishes inside one.
func waitMinuteHead(s int) {
	for time.Now().Second() > s {
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGlobalLimitsTwoReplicas: two Envoy + extproc pairs share one
// envoyproxy/ratelimit and one Redis; a key limited to N requests per
// minute gets exactly N successes across both together, and the 429 comes
// from whichever replica meets the spent budget, in the API's shape.
func TestGlobalLimitsTwoReplicas(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	rls := startRateLimit(t, redis)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	cfg := globalConfig(t, a, b, rls, "deny", "{requests_per_minute: 6}", "")
	replicas := []*gateway{
		startGateway(t, cfg, gatewayOptions{extraEnv: testEnv}),
		startGateway(t, cfg, gatewayOptions{extraEnv: testEnv}),
	}
	waitMinuteHead(45)
	minute := time.Now().Truncate(time.Minute)
	var got []string
	ok := 0
	for i := 0; i < 16; i++ {
		gw := replicas[i%2]
		r := gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
		got = append(got, strconv.Itoa(i%2)+":"+strconv.Itoa(r.status))
		switch r.status {
		case 200:
			ok++
		case 429:
			if r.header.Get("x-ratelimit-limit-requests") != "6" || r.header.Get("retry-after") == "" || !strings.Contains(string(r.body), `"code":"rate_limit_exceeded"`) {
				t.Errorf("429 from replica %d: headers %v body %s", i%2, r.header, r.body)
			}
		default:
			t.Errorf("replica %d answered %d: %s", i%2, r.status, r.body)
		}
	}
	if time.Now().Truncate(time.Minute) != minute {
		t.Fatalf("the minute turned during the test (%v): the counts restarted", got)
	}
	if ok != 6 {
		t.Errorf("%d successes across both replicas, want exactly 6: %v", ok, got)
	}
	// Both replicas refused: the count is shared, not per replica.
	for i, gw := range replicas {
		if n := gw.metricOrFail(t, `switchyard_rate_limited_total{key="team-a",limit="requests_per_minute"}`); n < 1 {
			t.Errorf("replica %d refused nothing: %v", i, got)
		}
	}
}

// loadResult is what a burst of requests got.
type loadResult struct {
	statuses map[int]int
	slowest  time.Duration
	bodies   []string // one body per status, for messages
}

// burst sends n requests of key through gw, four at a time.
func burst(t *testing.T, gw *gateway, key string, n int) loadResult {
	t.Helper()
	var mu sync.Mutex
	res := loadResult{statuses: map[int]int{}}
	seen := map[int]bool{}
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				start := time.Now()
				r, err := gw.try(ctx, "POST", "/v1/chat/completions", bearer(key), goodBody)
				took := time.Since(start)
				cancel()
				mu.Lock()
				if took > res.slowest {
					res.slowest = took
				}
				if err != nil {
					res.statuses[-1]++
				} else {
					res.statuses[r.status]++
					if !seen[r.status] {
						seen[r.status] = true
						res.bodies = append(res.bodies, strconv.Itoa(r.status)+" "+string(r.body))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// TestGlobalLimitsServiceFaults kills the rate-limit service, then Redis,
// under load through two replicas, one with failure_mode allow and one with
// deny: allow admits and counts the errors, deny answers 503 in the API's
// shape, no request waits past a bound, and once each comes back the
// limits hold again.
func TestGlobalLimitsServiceFaults(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	rls := startRateLimit(t, redis)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	// team-a carries the load under a limit it never reaches; team-b's
	// small limit shows the counting works.
	limitsA, limitsB := "{requests_per_minute: 100000}", "{requests_per_minute: 3}"
	allow := startGateway(t, globalConfig(t, a, b, rls, "allow", limitsA, limitsB), gatewayOptions{extraEnv: testEnv})
	deny := startGateway(t, globalConfig(t, a, b, rls, "deny", limitsA, limitsB), gatewayOptions{extraEnv: testEnv})
	const bound = 3 * time.Second // the service call times out after 200ms

	// limitHolds sends team-b's requests through both replicas: three of
	// them pass in a minute, unless the count of an earlier check in the
	// same minute survived (kept is true while Redis has not restarted).
	var lastCheck time.Time
	limitHolds := func(stage string, kept bool) {
		t.Helper()
		waitMinuteHead(50)
		minute := time.Now().Truncate(time.Minute)
		want := "[200 200 200 429]"
		if kept && minute.Equal(lastCheck) {
			want = "[429 429 429 429]" // the count outlived the service's restart
		}
		var got []int
		for i := 0; i < 4; i++ {
			got = append(got, []*gateway{allow, deny}[i%2].do(t, "POST", "/v1/chat/completions", bearer(clientKeyB), goodBody).status)
		}
		if time.Now().Truncate(time.Minute) != minute {
			t.Logf("%s: the minute turned during the check (%v); not judged", stage, got)
		} else if fmtInts(got) != want {
			t.Errorf("%s: team-b (3 per minute) got %v, want %s", stage, got, want)
		}
		lastCheck = minute
	}
	faulted := func(stage string) {
		t.Helper()
		before, _ := metricValue(allow.metrics(t), `switchyard_rate_limit_service_errors_total{op="admit"}`) // absent until the first error
		ra, rd := burst(t, allow, clientKeyA, 40), burst(t, deny, clientKeyA, 40)
		if ra.statuses[200] != 40 {
			t.Errorf("%s, failure_mode allow: %v, want all 40 admitted (%v)", stage, ra.statuses, ra.bodies)
		}
		if rd.statuses[503] != 40 || !strings.Contains(strings.Join(rd.bodies, ""), `"code":"rate_limit_service_unavailable"`) {
			t.Errorf("%s, failure_mode deny: %v, want all 40 answered 503 in OpenAI's shape (%v)", stage, rd.statuses, rd.bodies)
		}
		for mode, r := range map[string]loadResult{"allow": ra, "deny": rd} {
			if r.slowest > bound {
				t.Errorf("%s, failure_mode %s: slowest request %v, want under %v", stage, mode, r.slowest, bound)
			}
		}
		if after := allow.metricOrFail(t, `switchyard_rate_limit_service_errors_total{op="admit"}`); after < before+40 {
			t.Errorf("%s: service errors went from %v to %v, want 40 more", stage, before, after)
		}
	}
	// recovered waits until the deny replica passes 20 requests in a row:
	// after Redis returns, the service's pool still holds connections to the
	// dead one, and each fails one call before it is replaced.
	recovered := func(stage string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for row := 0; row < 20; {
			if deny.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody).status == 200 {
				row++
				continue
			}
			row = 0
			if time.Now().After(deadline) {
				t.Fatalf("%s: the deny replica still refuses 30s after the service came back", stage)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	limitHolds("all up", true)

	rls.kill()
	faulted("rate-limit service killed")
	rls.start()
	recovered("rate-limit service restarted")
	limitHolds("rate-limit service back", true)

	redis.kill()
	faulted("redis killed")
	redis.start() // empty: the counts of this minute are gone
	if rls.proc != nil {
		select {
		case <-rls.proc.done: // it gave up on Redis: start it again
			rls.proc = nil
			rls.start()
		default:
		}
	}
	recovered("redis restarted")
	limitHolds("redis back", false)
}
