package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// envoyStat reads one counter or gauge from Envoy's /stats.
func envoyStat(t testing.TB, g *gateway, name string) int {
	t.Helper()
	for _, line := range strings.Split(g.envoyAdmin(t, "/stats?filter="+name+"$"), "\n") {
		if rest, ok := strings.CutPrefix(line, name+": "); ok {
			var v int
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestOverloadBeyondMaxStreams floods extproc, started with -max-streams 4,
// with 40 concurrent uploads that each hold an ext_proc stream open for
// about a second. It records what clients get, how many streams extproc held
// at once and how many gRPC connections Envoy opened, and requires every
// client to get either its answer or the API-shaped 502, with extproc's
// memory bounded and the gateway serving normally afterwards. (The cap is
// per gRPC connection: Envoy opens more connections, and the requests it
// cannot place get 502 processor_unavailable.)
func TestOverloadBeyondMaxStreams(t *testing.T) {
	t.Parallel()
	const maxStreams, clients = 4, 40
	s := startStandard(t, gatewayOptions{extprocArgs: []string{"-max-streams", fmt.Sprint(maxStreams)}})
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
	pid := s.gw.extprocPID()
	rssBefore, err := procRSSMB(pid)
	if err != nil {
		t.Fatal(err)
	}
	cxBefore := envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_cx_total")

	var peakStreams atomic.Int64
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := http.Get(s.gw.metricsURL() + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if v, ok := metricValue(string(b), "switchyard_extproc_active_streams"); ok && int64(v) > peakStreams.Load() {
				peakStreams.Store(int64(v))
			}
		}
	}()

	start := time.Now()
	answers := collect(slowUploads(s.gw, clients, closedAfter(time.Second)))
	elapsed := time.Since(start)
	close(stopPoll)
	<-pollDone
	rssAfter, _ := procRSSMB(pid)
	cxOpened := envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_cx_total") - cxBefore

	statuses := map[int]int{}
	var slowest time.Duration
	for _, a := range answers {
		if a.err != nil {
			t.Errorf("client error after %v: %v", a.took, a.err)
			continue
		}
		statuses[a.status]++
		slowest = max(slowest, a.took)
		if a.status != 200 && (a.status != 502 || !openAIShaped([]byte(a.body), "processor_unavailable")) {
			t.Errorf("status %d, want 200 or the API-shaped 502: %s", a.status, a.body)
		}
	}
	t.Logf("%d concurrent uploads against -max-streams %d: statuses %v in %v (slowest %v); extproc held at most %d streams; "+
		"Envoy opened %d new gRPC connections; extproc RSS %.1f -> %.1f MB",
		clients, maxStreams, statuses, elapsed.Round(time.Millisecond), slowest.Round(time.Millisecond), peakStreams.Load(), cxOpened, rssBefore, rssAfter)
	if rssAfter-rssBefore > 50 {
		t.Errorf("extproc RSS grew %.1f MB under the flood", rssAfter-rssBefore)
	}
	if statuses[200] == 0 {
		t.Error("no upload got through the flood")
	}
	if int(peakStreams.Load()) > clients {
		t.Errorf("extproc held %d streams for %d clients", peakStreams.Load(), clients)
	}
	// Afterwards the gateway serves normally.
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
}

// TestOverloadBeyondMaxInflight: with -max-inflight 8, 40 concurrent slow
// uploads: the 8 admitted hold their bodies until the other 32 have their
// API-shaped 429 (so a refusal does not wait for an upload), then get their
// answers; none is left to a connection-level 502, and the gateway serves
// normally afterwards.
func TestOverloadBeyondMaxInflight(t *testing.T) {
	t.Parallel()
	const maxInflight, clients = 8, 40
	s := startStandard(t, gatewayOptions{extprocArgs: []string{"-max-inflight", fmt.Sprint(maxInflight)}})
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))

	release := make(chan struct{})
	free := sync.OnceFunc(func() { close(release) })
	defer free() // a failed step must not leave the uploads hanging
	answers := slowUploads(s.gw, clients, release)
	check := func(a uploadAnswer, want int) {
		t.Helper()
		switch {
		case a.err != nil:
			t.Errorf("client error: %v", a.err)
		case a.status != want:
			t.Errorf("status %d, want %d: %s", a.status, want, a.body)
		case a.status == 429:
			var e openAIError
			testkit.DecodeStrict(t, []byte(a.body), &e)
			if e.Error.Type != "rate_limit_error" || e.Error.Code != "gateway_overloaded" {
				t.Errorf("429 body %s", a.body)
			}
		}
	}
	timeout := time.After(20 * time.Second)
	for range clients - maxInflight {
		select {
		case a := <-answers:
			check(a, 429)
		case <-timeout:
			t.Fatalf("the uploads beyond -max-inflight were not all refused while %d held their bodies", maxInflight)
		}
	}
	free()
	admitted := collect(answers)
	for _, a := range admitted {
		check(a, 200)
	}
	if len(admitted) != maxInflight {
		t.Errorf("%d uploads answered after the release, want the %d admitted", len(admitted), maxInflight)
	}
	t.Logf("%d concurrent uploads against -max-inflight %d: %d refused while %d held their bodies, then answered",
		clients, maxInflight, clients-maxInflight, len(admitted))
	// An answered request's ext_proc stream ends a moment after its
	// answer, when Envoy closes it; until then it counts as in flight.
	waitMetric(t, s.gw, "switchyard_extproc_active_streams", 0)
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
}

// uploadAnswer is what one client of slowUploads got.
type uploadAnswer struct {
	status int
	body   string
	took   time.Duration
	err    error
}

// slowUploads sends n chat requests at once, each sending half its body,
// waiting until release is closed, then the rest, so that each holds an
// ext_proc stream open until then. Answers come on the channel as they
// arrive; it is closed after the last.
func slowUploads(gw *gateway, n int, release <-chan struct{}) <-chan uploadAnswer {
	answers := make(chan uploadAnswer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			go func() {
				pw.Write([]byte(`{"model":"gpt-exact",`))
				<-release
				pw.Write([]byte(`"messages":[]}`))
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", gw.url+"/v1/chat/completions", pr)
			req.Header.Set("authorization", "Bearer "+clientKeyA)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				answers <- uploadAnswer{err: err, took: time.Since(t0)}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- uploadAnswer{status: resp.StatusCode, body: string(b), took: time.Since(t0)}
		}()
	}
	go func() { wg.Wait(); close(answers) }()
	return answers
}

// collect reads the answers until the channel closes.
func collect(answers <-chan uploadAnswer) []uploadAnswer {
	var all []uploadAnswer
	for a := range answers {
		all = append(all, a)
	}
	return all
}

// closedAfter returns a channel closed after d.
func closedAfter(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}
