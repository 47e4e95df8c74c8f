// Package bench measures what the gateway adds to an LLM call: it drives
// the same chat request (or, in agent stages, the same agent-shaped body)
// through several paths (direct to the upstream,
// Envoy alone, Envoy + extproc, Envoy + extproc + a Lua hook) under
// closed-loop VU stages, open-loop constant rates (vegeta), concurrency 1
// and streaming, samples the proxies' memory and CPU from /proc, and writes
// the results as JSON, a Markdown table with ratios against the direct path
// and PNG charts.
//
// Paths are interleaved within every stage (direct, envoy, gateway,
// gateway_hook, then the reverse order in the next round) so that drift of
// a shared, noisy machine hits all of them alike. Starting the processes
// under test is the caller's job (see Stack); a Plan only needs URLs and
// PIDs.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Stage kinds.
const (
	KindSerial = "serial" // one VU: added latency per hop
	KindClosed = "closed" // VU stages, as k6 runs them
	KindOpen   = "open"   // constant arrival rate (vegeta)
	KindStream = "stream" // streamed answers: time to first byte
	KindAgent  = "agent"  // closed loop with agent-shaped bodies (Plan.Bodies)
)

// SettleSetting is the Result.Settings key that holds Plan.Settle.
const SettleSetting = "settle"

// Path is a Target plus the processes that serve it.
type Path struct {
	Target
	// Procs are sampled while this path is under load.
	Procs []Proc `json:"procs,omitempty"`
	// AdminURL is Envoy's admin base URL and MetricsURL extproc's metrics
	// (and /debug/pprof) base URL, when the path has them; they let an
	// operator read Envoy stats or profile extproc during a run.
	AdminURL   string `json:"admin_url,omitempty"`
	MetricsURL string `json:"metrics_url,omitempty"`
	// Peer marks another gateway (-peer): its answers are only checked
	// for the mock's marks, as it need not pass x-mock-echo on.
	Peer bool `json:"peer,omitempty"`
}

// Plan says what to measure.
type Plan struct {
	// Mode is a label for the report ("quick", "full", "test").
	Mode  string
	Paths []Path
	// Rounds repeats every stage; odd rounds run the paths in reverse.
	Rounds int
	// Warmup precedes every closed-loop and streaming run and is not recorded.
	Warmup time.Duration

	SerialDuration time.Duration // 0 skips the concurrency-1 stage
	VUs            []int
	VUDuration     time.Duration
	Rates          []int // requests per second
	RateDuration   time.Duration
	StreamVUs      int // 0 skips the streaming stage
	StreamDuration time.Duration
	// Bodies are the agent-shaped bodies of the agent stages: each runs
	// closed-loop at each of AgentVUs for AgentDuration (0: VUDuration).
	Bodies        []Body
	AgentVUs      []int
	AgentDuration time.Duration

	// Settle, when positive, follows every run: the path's processes are
	// read for this long without load, and each one's RSS at the end is
	// reported (ProcStats.RSSSettledMB): what a burst leaves resident.
	Settle time.Duration

	// SampleInterval is how often /proc is read (default 250ms).
	SampleInterval time.Duration
	// Settings describe how the processes under test were started (e.g.
	// Envoy's worker count); they are copied into the result.
	Settings map[string]string
}

// Result is the whole benchmark, as written to results.json.
type Result struct {
	Mode     string            `json:"mode"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings,omitempty"`
	Bodies   []Body            `json:"bodies,omitempty"`
	Paths    []Path            `json:"paths"`
	Stages   []Stage           `json:"stages"`
	RSS      []RSSPoint        `json:"rss"`
}

// Stage is one path under one load, pooled over rounds.
type Stage struct {
	Kind string `json:"kind"`
	// Load is the number of VUs (serial, closed, stream) or the rate in
	// requests per second (open).
	Load int `json:"load"`
	// Body is the agent-shaped body of an agent stage (Body.Name).
	Body       string         `json:"body,omitempty"`
	Path       string         `json:"path"`
	Rounds     int            `json:"rounds"`
	Seconds    float64        `json:"seconds"`
	Requests   int            `json:"requests"`
	Successes  int            `json:"successes"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	// ErrorBodies holds, per kind of error (e.g. "status_500"), the first
	// answer body or transport error seen, truncated.
	ErrorBodies map[string]string `json:"error_bodies,omitempty"`
	RPS         float64           `json:"rps"`
	Latency     Latency           `json:"latency"`
	// TTFB is the time to the first body byte (streaming stages only).
	TTFB  *Latency    `json:"ttfb,omitempty"`
	Procs []ProcStats `json:"procs,omitempty"`
	// MachineBusy is the share of all CPUs busy (every process on the
	// machine, not only those under test) while this stage ran, 0 to 1.
	// Near 1 the stage was CPU-bound; well above what the sampled
	// processes used, something else was running.
	MachineBusy float64 `json:"machine_busy"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	MemoryMB  int64  `json:"memory_mb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Wakeups, measured as the run starts: runs on hosts that wake CPUs
	// at different speeds are not comparable.
	Wakeups Wakeups `json:"wakeups"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Wakeups: measureWakeups()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb >> 10
		}
	}
	return m
}

// step is one load of one kind; a run is a step on one path in one round.
type step struct {
	kind string
	load int
	d    time.Duration
	body *Body // agent stages
}

func (p *Plan) steps() []step {
	var s []step
	if p.SerialDuration > 0 {
		s = append(s, step{KindSerial, 1, p.SerialDuration, nil})
	}
	for _, v := range p.VUs {
		s = append(s, step{KindClosed, v, p.VUDuration, nil})
	}
	for _, r := range p.Rates {
		s = append(s, step{KindOpen, r, p.RateDuration, nil})
	}
	if p.StreamVUs > 0 {
		s = append(s, step{KindStream, p.StreamVUs, p.StreamDuration, nil})
	}
	d := p.AgentDuration
	if d <= 0 {
		d = p.VUDuration
	}
	for i := range p.Bodies {
		for _, v := range p.AgentVUs {
			s = append(s, step{KindAgent, v, d, &p.Bodies[i]})
		}
	}
	return s
}

// Estimate is how long Run takes, roughly.
func (p *Plan) Estimate() time.Duration {
	var total time.Duration
	for _, s := range p.steps() {
		d := s.d
		if s.kind != KindOpen {
			d += p.Warmup
		}
		total += (d + p.Settle) * time.Duration(len(p.Paths)*max(1, p.Rounds))
	}
	return total
}

// Run measures every step on every path and reports progress to progress.
func Run(ctx context.Context, p Plan, progress io.Writer) (*Result, error) {
	if len(p.Paths) == 0 {
		return nil, fmt.Errorf("running plan: no paths")
	}
	rounds := max(1, p.Rounds)
	interval := p.SampleInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	res := &Result{Mode: p.Mode, Started: time.Now().UTC(), Machine: machine(), Paths: p.Paths, Settings: p.Settings, Bodies: p.Bodies}
	epoch := time.Now()
	steps := p.steps()
	total := len(steps) * rounds * len(p.Paths)
	done := 0
	remaining := p.Estimate()

	for _, st := range steps {
		pooled := make([]*samples, len(p.Paths))
		procs := make([][]ProcStats, len(p.Paths))
		busy := make([]cpuTimes, len(p.Paths))
		for round := range rounds {
			order := make([]int, len(p.Paths))
			for i := range order {
				order[i] = i
			}
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, pi := range order {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("running plan: %w", err)
				}
				path := p.Paths[pi]
				done++
				label := st.kind
				if st.body != nil {
					label += " " + st.body.Name
				}
				fmt.Fprintf(progress, "[%d/%d] %-6s %5d %-16s round %d/%d ... ", done, total, label, st.load, path.Name, round+1, rounds)

				smp := newSampler(path.Procs, interval, epoch)
				sctx, stop := context.WithCancel(ctx)
				sdone := make(chan struct{})
				// Sampling starts when recording does: the warm-up's CPU time
				// must not be divided among the recorded requests only.
				skip := p.Warmup
				if st.kind == KindOpen {
					skip = 0
				}
				go func() {
					defer close(sdone)
					select {
					case <-time.After(skip):
					case <-sctx.Done():
						return
					}
					smp.run(sctx)
				}()
				var s *samples
				switch st.kind {
				case KindSerial, KindClosed, KindAgent:
					s = closedLoop(ctx, path.Target, st.body, st.load, p.Warmup, st.d)
				case KindOpen:
					s = openLoop(ctx, path.Target, st.load, st.d)
				case KindStream:
					s = streamLoop(ctx, path.Target, st.load, p.Warmup, st.d)
				}
				stop()
				<-sdone
				ps, points, err := smp.stats(s.requests)
				if err != nil {
					return nil, fmt.Errorf("sampling %s: %w", path.Name, err)
				}
				res.RSS = append(res.RSS, points...)
				if p.Settle > 0 {
					settled, points, err := settle(ctx, path.Procs, p.Settle, interval, epoch)
					if err != nil {
						return nil, fmt.Errorf("reading %s after the load: %w", path.Name, err)
					}
					res.RSS = append(res.RSS, points...)
					for i := range ps {
						ps[i].RSSSettledMB, ps[i].RSSSettledFileMB = settled[ps[i].Name].rss, settled[ps[i].Name].file
					}
				}
				m := smp.machine()
				busy[pi].busy += m.busy
				busy[pi].total += m.total
				procs[pi] = mergeProcs(procs[pi], ps)
				if pooled[pi] == nil {
					pooled[pi] = &samples{}
				}
				pooled[pi].merge(s)
				pooled[pi].elapsed += s.elapsed

				lat := summarize(slices.Clone(s.latencies))
				remaining -= st.d
				if st.kind != KindOpen {
					remaining -= p.Warmup
				}
				fmt.Fprintf(progress, "%8.1f rps  p50 %7.2fms  p99 %7.2fms  errors %d  (about %s left)\n",
					float64(s.requests)/s.elapsed.Seconds(), lat.P50, lat.P99, s.errors, max(0, remaining).Round(time.Second))
			}
		}
		for pi, path := range p.Paths {
			s := pooled[pi]
			stage := Stage{
				Kind: st.kind, Load: st.load, Path: path.Name, Rounds: rounds,
				Seconds: s.elapsed.Seconds(), Requests: s.requests, Successes: s.requests - s.errors,
				Errors: s.errors, ErrorKinds: s.errorKind, ErrorBodies: s.errorBody, Latency: summarize(s.latencies), Procs: procs[pi],
			}
			if st.body != nil {
				stage.Body = st.body.Name
			}
			if s.elapsed > 0 {
				stage.RPS = float64(s.requests) / s.elapsed.Seconds()
			}
			if busy[pi].total > 0 {
				stage.MachineBusy = float64(busy[pi].busy) / float64(busy[pi].total)
			}
			if st.kind == KindStream {
				t := summarize(s.ttfb)
				stage.TTFB = &t
			}
			for i := range stage.Procs {
				if s.requests > 0 {
					stage.Procs[i].CPUMicrosPerR = stage.Procs[i].CPUSeconds * 1e6 / float64(s.requests)
				}
			}
			res.Stages = append(res.Stages, stage)
		}
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

// mergeProcs pools one process's use over rounds.
func mergeProcs(acc, next []ProcStats) []ProcStats {
	if acc == nil {
		return next
	}
	for i := range acc {
		for _, n := range next {
			if n.Name != acc[i].Name {
				continue
			}
			acc[i].CPUSeconds += n.CPUSeconds
			acc[i].RSSMaxMB = max(acc[i].RSSMaxMB, n.RSSMaxMB)
			acc[i].RSSAvgMB = (acc[i].RSSAvgMB + n.RSSAvgMB) / 2
			if n.RSSSettledMB > acc[i].RSSSettledMB {
				acc[i].RSSSettledMB, acc[i].RSSSettledFileMB = n.RSSSettledMB, n.RSSSettledFileMB
			}
		}
	}
	return acc
}
