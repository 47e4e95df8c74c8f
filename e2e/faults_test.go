package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// TestStreamingPassesThroughUnbuffered: the client's first SSE chunk arrives
// before the upstream has sent its last one.
func TestStreamingPassesThroughUnbuffered(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{})
	const chunks, interval = 5, 150 * time.Millisecond
	req, _ := http.NewRequest("POST", s.gw.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-exact","stream":true,"messages":[]}`))
	req.Header.Set("authorization", "Bearer "+clientKeyA)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-test-chunks", fmt.Sprint(chunks))
	req.Header.Set("x-test-interval-ms", fmt.Sprint(interval.Milliseconds()))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("content-type"), "text/event-stream") {
		t.Fatalf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var arrivals []time.Duration
	done := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		if line == "data: [DONE]" {
			done = true
			break
		}
		arrivals = append(arrivals, time.Since(start))
	}
	if len(arrivals) != chunks || !done {
		t.Fatalf("got %d chunks (done=%v), want %d and [DONE]", len(arrivals), done, chunks)
	}
	// The upstream needs (chunks-1)*interval to send everything; buffering
	// would deliver the first chunk only after that.
	total := time.Duration(chunks-1) * interval
	if first := arrivals[0]; first >= total {
		t.Errorf("first chunk after %v, not before the upstream finished (%v): the stream was buffered", first, total)
	}
	if spread := arrivals[len(arrivals)-1] - arrivals[0]; spread < total/2 {
		t.Errorf("chunks arrived within %v of each other, want them spread over ~%v", spread, total)
	}
}

// TestExtprocDownFailsClosed: with extproc stopped Envoy answers a clear
// 5xx in the API's shape and forwards nothing; when extproc returns,
// requests pass again.
func TestExtprocDownFailsClosed(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{})
	body := `{"model":"gpt-exact"}`
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), body))

	s.gw.killExtproc()
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		start := time.Now()
		r := s.gw.do(t, "POST", path, map[string]string{"authorization": "Bearer " + clientKeyA, "x-switchyard-cluster": "alpha"}, body)
		if r.status != 502 {
			t.Fatalf("%s with extproc down: status %d, want 502: %s", path, r.status, r.body)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("fail-closed answer took %v", took)
		}
		if strings.HasPrefix(path, "/v1/messages") {
			var e anthropicError
			testkit.DecodeStrict(t, r.body, &e)
			if e.Error.Type != "api_error" {
				t.Errorf("error type %q", e.Error.Type)
			}
		} else {
			var e openAIError
			testkit.DecodeStrict(t, r.body, &e)
			if e.Error.Code != "processor_unavailable" {
				t.Errorf("error code %q", e.Error.Code)
			}
		}
	}

	s.gw.startExtproc()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), body)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not recover after extproc restart: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailOpenNeverRoutesClientHeader: even with ext_proc configured to fail
// open, a client naming a cluster itself reaches no upstream.
func TestFailOpenNeverRoutesClientHeader(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	gw := startGateway(t, standardConfig(a, b, ""), gatewayOptions{failOpen: true, extraEnv: testEnv})
	upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`))
	gw.killExtproc()
	for _, cluster := range []string{"alpha", "beta", "nokey", "switchyard_extproc"} {
		r := gw.do(t, "POST", "/v1/chat/completions", map[string]string{"x-switchyard-cluster": cluster}, `{"model":"gpt-exact"}`)
		if r.status != 502 || strings.Contains(string(r.body), `"seen"`) {
			t.Errorf("fail-open with client header %q: status %d body %s; want 502 and no upstream", cluster, r.status, r.body)
		}
	}
}

// TestConfigHotReloadUnderTraffic: steady traffic while the config file is
// replaced by a valid new one, an invalid one and a valid one again: no
// request fails, the new route appears, the broken file is refused.
func TestConfigHotReloadUnderTraffic(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	gw := startGateway(t, standardConfig(a, b, ""), gatewayOptions{extraEnv: testEnv})

	l := startLoad(load{workers: 4, timeout: 5 * time.Second}, func(ctx context.Context, _ int64) (result, error) {
		return gw.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)
	})

	write := func(content string) {
		t.Helper()
		replaceFile(t, gw.configPath, content)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nmetrics:\n%s", what, grep(gw.metrics(t), "switchyard_config"))
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	newRoute := "  - model: fresh-model\n    provider: alpha\n"
	status := func(model string) int {
		return gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"`+model+`"}`).status
	}

	l.waitRequests(t, 20)
	write(standardConfig(a, b, newRoute))
	waitFor("the new route", func() bool { return status("fresh-model") == 200 })

	write("providers: [\nthis is not yaml")
	waitFor("the failed reload", func() bool {
		return strings.Contains(gw.metrics(t), "switchyard_config_last_reload_successful 0")
	})
	if got := status("fresh-model"); got != 200 {
		t.Errorf("after a broken config the running one should stay: status %d", got)
	}

	write(standardConfig(a, b, ""))
	waitFor("the route to go away", func() bool { return status("fresh-model") == 404 })
	if !strings.Contains(gw.metrics(t), "switchyard_config_last_reload_successful 1") {
		t.Error("gauge did not return to 1 after a good reload")
	}
	l.waitRequests(t, 20)
	events := l.stop()
	failed := reportFailures(t, events, "during reloads")
	if len(events) < 50 {
		t.Errorf("only %d requests ran during the reloads", len(events))
	}
	t.Logf("%d requests during reloads, %d failed", len(events), failed)
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
