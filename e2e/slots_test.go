package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchyard/internal/launch"
)

// slotted is a gateway whose Envoy has two extproc slots, driven by
// scripts/restart-extproc.sh from a state directory laid out as
// scripts/run.sh lays it out for `make run`.
type slotted struct {
	gw     *gateway
	state  string   // the script's state directory
	env    []string // the script's environment
	script string
	first  *child // the extproc started in slot a
}

// startSlotted starts extproc in slot a through the script, then Envoy
// with both slots in its ext_proc cluster.
func startSlotted(t *testing.T) *slotted {
	t.Helper()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	dir := t.TempDir()
	script, err := filepath.Abs("../scripts/restart-extproc.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := &slotted{state: filepath.Join(dir, "extproc"), script: script,
		env: append(append(os.Environ(), testEnv...), "SWITCHYARD_RUN_DIR="+dir, "EXTPROC_BIN="+extprocBin)}
	config := filepath.Join(dir, "switchyard.yaml")
	args := []string{"-config", config, "-log-level", "warn", "-drain-timeout", "10s"}
	if allXDS {
		args = append(args, "-xds")
	}
	slotA, slotB := "unix:"+filepath.Join(dir, "a.sock"), "unix:"+filepath.Join(dir, "b.sock")
	for name, content := range map[string]string{
		config: standardConfig(a, b, ""), "args": strings.Join(args, "\n") + "\n",
		"a.slot": slotA + " 127.0.0.1:0\n", "b.slot": slotB + " 127.0.0.1:0\n", "current": "a\n",
	} {
		if !filepath.IsAbs(name) {
			name = filepath.Join(s.state, name)
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever runs in a slot at the end, restarted ones included.
	t.Cleanup(func() {
		for _, slot := range []string{"a", "b"} {
			if pid := s.pid(t, slot); pid != 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(s.state, slot+".log"))
				t.Logf("extproc log of slot %s:\n%s", slot, tail(string(log), 3000))
			}
		}
	})
	s.first = s.startSlot(t, "a")
	s.gw = startGateway(t, "", gatewayOptions{noExtProc: true, configFile: config, extraEnv: testEnv,
		envoyConfigArgs: []string{"-extproc", slotA + "," + slotB}})
	if err := os.WriteFile(filepath.Join(s.state, "envoy-admin"), []byte(s.gw.adminAddr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// startSlot runs extproc in slot as `make run` does, a child of the test,
// and waits until it listens.
func (s *slotted) startSlot(t *testing.T, slot string) *child {
	t.Helper()
	log, err := os.Create(filepath.Join(s.state, slot+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cmd := exec.Command(s.script, "start", slot)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, log, log
	c, err := startChild(cmd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := launch.WaitExtproc(ctx, filepath.Join(s.state, slot+".addr"), c.done); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("extproc in slot %s did not listen: %v\n%s", slot, err, b)
	}
	return c
}

// pid is the process the script recorded in slot, 0 if none.
func (s *slotted) pid(t testing.TB, slot string) int {
	b, err := os.ReadFile(filepath.Join(s.state, slot+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Errorf("%s.pid: %v", slot, err)
	}
	return pid
}

func (s *slotted) current(t testing.TB) string {
	b, err := os.ReadFile(filepath.Join(s.state, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// restart runs `make restart-extproc`'s script and returns its output.
func (s *slotted) restart(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.script)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restart-extproc: %v\n%s", err, out)
	}
	return string(out)
}

// waitHealthy waits until Envoy health-checks the extproc in slot healthy.
func (s *slotted) waitHealthy(t *testing.T, slot string) {
	t.Helper()
	host := strings.TrimPrefix(strings.Fields(s.read(t, slot+".slot"))[0], "unix:")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.gw.envoyAdmin(t, "/clusters"), "switchyard_extproc::"+host+"::health_flags::healthy\n") {
		if time.Now().After(deadline) {
			t.Fatalf("Envoy does not see slot %s healthy after 10 s", slot)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *slotted) read(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join(s.state, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// streamBody asks the fake upstream for an SSE stream of chunks.
const streamBody = `{"model":"gpt-exact","stream":true}`

// mixedLoad sends JSON requests and SSE streams in turn; a stream that ends
// before its [DONE] or with fewer chunks than sent is an error.
func mixedLoad(g *gateway) func(ctx context.Context, i int64) (result, error) {
	return func(ctx context.Context, i int64) (result, error) {
		if i%2 == 0 {
			return g.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
		}
		req, err := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/chat/completions", strings.NewReader(streamBody))
		if err != nil {
			return result{}, err
		}
		req.Header.Set("authorization", "Bearer "+clientKeyA)
		req.Header.Set("x-test-chunks", "5")
		req.Header.Set("x-test-interval-ms", "60")
		resp, err := client.Do(req)
		if err != nil {
			return result{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return result{status: resp.StatusCode, body: b}, nil
		}
		chunks, done, err := readSSE(resp.Body)
		if err == nil && (chunks != 5 || !done) {
			err = fmt.Errorf("truncated stream: %d of 5 chunks, [DONE]=%v", chunks, done)
		}
		return result{status: 200}, err
	}
}

// TestRestartExtprocUnderLoad: under 50 clients in a closed loop, half of
// them reading SSE streams, `make restart-extproc`'s script replaces
// extproc five times in a row. No request fails, no stream is cut, and
// the extproc serving at the end is the last one started.
func TestRestartExtprocUnderLoad(t *testing.T) {
	t.Parallel()
	s := startSlotted(t)
	first := s.first.cmd.Process.Pid
	l := startLoad(load{workers: 50, timeout: 10 * time.Second}, mixedLoad(s.gw))
	t.Cleanup(func() { l.stop() })
	l.waitRequests(t, 100)
	pids := []int{first}
	start := time.Now()
	for i := 0; i < 5; i++ {
		began := time.Now()
		out := s.restart(t)
		pid := s.pid(t, s.current(t))
		t.Logf("restart %d took %v (load: %d requests so far):\n%s", i+1, time.Since(began).Round(10*time.Millisecond), progress(l), strings.TrimSpace(out))
		pids = append(pids, pid)
		l.waitRequests(t, 50)
	}
	took := time.Since(start)
	l.waitRequests(t, 100)
	events := l.stop()
	if n := reportFailures(t, events, "across the restarts"); n > 0 {
		t.Errorf("%d of %d requests failed across 5 restarts", n, len(events))
	}
	last := pids[len(pids)-1]
	for _, pid := range pids[:len(pids)-1] {
		if alive(pid) || pid == last {
			t.Errorf("extproc pid %d still runs or came back: the restarts did not replace it", pid)
		}
	}
	if !alive(last) {
		t.Fatalf("the extproc started last (pid %d) does not run", last)
	}
	// The last one serves: requests now count on its metrics.
	var addr launch.Extproc
	if err := json.Unmarshal([]byte(s.read(t, s.current(t)+".addr")), &addr); err != nil {
		t.Fatal(err)
	}
	s.gw.mu.Lock()
	s.gw.metricsAddr = addr.Metrics
	s.gw.mu.Unlock()
	before := s.gw.metrics(t)
	if r := s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody); r.status != 200 {
		t.Fatalf("after the restarts: %d %s", r.status, r.body)
	}
	if after := s.gw.metrics(t); sumMetric(after, "switchyard_requests_total") <= sumMetric(before, "switchyard_requests_total") {
		t.Errorf("a request after the restarts did not reach the extproc started last (pid %d)", last)
	}
	t.Logf("%d requests (half SSE streams) across 5 restarts in %v: 0 failed; pids %v", len(events), took.Round(100*time.Millisecond), pids)
}

// TestKillOneOfTwoExtprocs: with two extprocs serving, a kill -9 of one
// under 50 clients fails at most the requests it had in flight, and Envoy
// sends everything to the other within a second.
func TestKillOneOfTwoExtprocs(t *testing.T) {
	t.Parallel()
	s := startSlotted(t)
	s.startSlot(t, "b")
	s.waitHealthy(t, "b")
	const workers = 50
	l := startLoad(load{workers: workers, timeout: 10 * time.Second}, mixedLoad(s.gw))
	t.Cleanup(func() { l.stop() })
	l.waitRequests(t, 200)
	killAt := time.Now()
	_ = s.first.cmd.Process.Kill()
	for time.Since(killAt) < 3*time.Second {
		l.waitRequests(t, 20)
	}
	events := l.stop()
	var failed, after, cut int
	var lastFailure time.Duration
	for _, ev := range events {
		if ev.end.After(killAt) {
			after++
		}
		if ev.err == nil && ev.status == 200 {
			continue
		}
		failed++
		if ev.err != nil {
			cut++
		}
		if ev.end.Before(killAt) {
			t.Errorf("request failed before the kill: %v %d %s", ev.err, ev.status, ev.body)
		}
		if d := ev.end.Sub(killAt); d > lastFailure {
			lastFailure = d
		}
		if failed <= 3 {
			t.Logf("failed %v after the kill: %v %d %s", ev.end.Sub(killAt).Round(time.Millisecond), ev.err, ev.status, ev.body)
		}
	}
	for _, line := range strings.Split(s.gw.envoyAdmin(t, "/stats?filter=^cluster\\.switchyard_extproc\\.(outlier_detection\\.ejections_enforced_total|upstream_rq_retry_success|upstream_rq_retry_overflow|upstream_cx_connect_fail)$"), "\n") {
		if line != "" {
			t.Log(line)
		}
	}
	if failed > workers {
		t.Errorf("%d requests failed: more than the %d that can be in flight", failed, workers)
	}
	if lastFailure > time.Second {
		t.Errorf("the last request failed %v after the kill, want within 1 s", lastFailure)
	}
	t.Logf("kill -9 of one of two extprocs under %d clients: %d of %d requests after the kill failed (%d streams cut, %d answered 502), the last %v after it",
		workers, failed, after, cut, failed-cut, lastFailure.Round(time.Millisecond))
}

func progress(l *loadRun) int {
	done, _ := l.progress()
	return done
}

// sumMetric adds up every series of name in a Prometheus text exposition.
func sumMetric(exposition, name string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
