package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Proc is a process whose memory and CPU a run samples.
type Proc struct {
	// Name says what it is, e.g. "extproc" or "envoy_gateway".
	Name string `json:"name"`
	// Role is "envoy" or "extproc"; the report sums processes by role.
	Role string `json:"role"`
	PID  int    `json:"pid"`
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of /proc for one process.
type procSample struct {
	rssBytes  int64
	fileBytes int64 // of rssBytes, file pages (RssFile: the binary and its libraries)
	cpuTicks  int64 // utime + stime
}

// readProc reads a process's resident set size and CPU time from /proc.
func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, fmt.Errorf("reading stat of %d: %w", pid, err)
	}
	s.cpuTicks, err = parseStatCPU(stat)
	if err != nil {
		return s, fmt.Errorf("parsing stat of %d: %w", pid, err)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, fmt.Errorf("reading status of %d: %w", pid, err)
	}
	s.rssBytes, err = parseStatusRSS(status)
	if err == nil {
		s.fileBytes, err = parseStatusKB(status, "RssFile")
	}
	if err != nil {
		return s, fmt.Errorf("parsing status of %d: %w", pid, err)
	}
	return s, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15) of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	fields := bytes.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("only %d fields after the command name", len(fields))
	}
	utime, err := strconv.ParseInt(string(fields[11]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing utime: %w", err)
	}
	stime, err := strconv.ParseInt(string(fields[12]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing stime: %w", err)
	}
	return utime + stime, nil
}

// parseStatusRSS returns VmRSS of /proc/PID/status in bytes.
func parseStatusRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB returns the field name (e.g. VmRSS, RssFile) of
// /proc/PID/status in bytes.
func parseStatusKB(status []byte, name string) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte(name+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", name, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s: %w", name, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line", name)
}

// cpuTimes is the machine-wide line of /proc/stat, in ticks.
type cpuTimes struct {
	busy, total int64
}

// parseProcStat returns the busy and total ticks of the "cpu" line of
// /proc/stat; idle and iowait count as not busy.
func parseProcStat(stat []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return cpuTimes{}, fmt.Errorf("unexpected first line %q", line)
	}
	var t cpuTimes
	// user nice system idle iowait irq softirq steal (guest time is
	// already inside user and nice).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("parsing field %d: %w", i+1, err)
		}
		t.total += n
		if i != 3 && i != 4 {
			t.busy += n
		}
	}
	return t, nil
}

func readMachineCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	return parseProcStat(b)
}

// RSSPoint is one memory reading during a run.
type RSSPoint struct {
	// T is seconds since the start of the whole benchmark.
	T    float64 `json:"t_s"`
	Proc string  `json:"proc"`
	MB   float64 `json:"mb"`
}

// ProcStats is what one process used during one stage.
type ProcStats struct {
	Name     string  `json:"name"`
	Role     string  `json:"role"`
	RSSMaxMB float64 `json:"rss_max_mb"`
	RSSAvgMB float64 `json:"rss_avg_mb"`
	// RSSSettledMB is the RSS Plan.Settle after the load stopped (the
	// highest over rounds; 0: not read), RSSSettledFileMB the part of it
	// that is file pages (the binary and its libraries) at that reading.
	RSSSettledMB     float64 `json:"rss_settled_mb,omitempty"`
	RSSSettledFileMB float64 `json:"rss_settled_file_mb,omitempty"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUMicrosPerR    float64 `json:"cpu_us_per_request"`
}

// sampler reads every process every interval while a stage runs.
type sampler struct {
	procs    []Proc
	interval time.Duration
	epoch    time.Time

	mu     sync.Mutex
	first  []procSample
	last   []procSample
	rssSum []int64
	rssMax []int64
	n      []int
	points []RSSPoint
	err    error
	// machine readings at the first and latest sample.
	machFirst, machLast cpuTimes
	machN               int
}

func newSampler(procs []Proc, interval time.Duration, epoch time.Time) *sampler {
	k := len(procs)
	return &sampler{procs: procs, interval: interval, epoch: epoch,
		first: make([]procSample, k), last: make([]procSample, k),
		rssSum: make([]int64, k), rssMax: make([]int64, k), n: make([]int, k)}
}

func (s *sampler) sample() {
	now := time.Since(s.epoch).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, err := readMachineCPU(); err != nil {
		if s.err == nil {
			s.err = err
		}
	} else {
		if s.machN == 0 {
			s.machFirst = m
		}
		s.machLast = m
		s.machN++
	}
	for i, p := range s.procs {
		r, err := readProc(p.PID)
		if err != nil {
			if s.err == nil {
				s.err = err
			}
			continue
		}
		if s.n[i] == 0 {
			s.first[i] = r
		}
		s.last[i] = r
		s.n[i]++
		s.rssSum[i] += r.rssBytes
		s.rssMax[i] = max(s.rssMax[i], r.rssBytes)
		s.points = append(s.points, RSSPoint{T: now, Proc: p.Name, MB: mb(r.rssBytes)})
	}
}

// run samples until ctx ends, then once more.
func (s *sampler) run(ctx context.Context) {
	s.sample()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.sample()
			return
		case <-t.C:
			s.sample()
		}
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// stats returns each process's use over the samples taken; requests is the
// number of requests of the stage, for CPU per request.
func (s *sampler) stats(requests int) ([]ProcStats, []RSSPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProcStats, 0, len(s.procs))
	for i, p := range s.procs {
		if s.n[i] == 0 {
			continue
		}
		cpu := float64(s.last[i].cpuTicks-s.first[i].cpuTicks) / clockTicks
		st := ProcStats{
			Name:       p.Name,
			Role:       p.Role,
			RSSMaxMB:   mb(s.rssMax[i]),
			RSSAvgMB:   mb(s.rssSum[i] / int64(s.n[i])),
			CPUSeconds: cpu,
		}
		if requests > 0 {
			st.CPUMicrosPerR = cpu * 1e6 / float64(requests)
		}
		out = append(out, st)
	}
	return out, s.points, s.err
}

// machine returns the busy and total CPU ticks of the whole machine (all
// CPUs, every process) between the first and the latest sample.
func (s *sampler) machine() cpuTimes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cpuTimes{busy: s.machLast.busy - s.machFirst.busy, total: s.machLast.total - s.machFirst.total}
}

// settled is one process's memory at the end of Plan.Settle, in MB.
type settled struct{ rss, file float64 }

// settle reads procs every interval for d after a run's load stopped and
// returns each one's memory at the end, by name, and the readings.
func settle(ctx context.Context, procs []Proc, d, interval time.Duration, epoch time.Time) (map[string]settled, []RSSPoint, error) {
	end := time.Now().Add(d)
	var points []RSSPoint
	last := make(map[string]settled, len(procs))
	for {
		now := time.Since(epoch).Seconds()
		for _, p := range procs {
			r, err := readProc(p.PID)
			if err != nil {
				return nil, nil, err
			}
			points = append(points, RSSPoint{T: now, Proc: p.Name, MB: mb(r.rssBytes)})
			last[p.Name] = settled{rss: mb(r.rssBytes), file: mb(r.fileBytes)}
		}
		wait := time.Until(end)
		if wait <= 0 {
			return last, points, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(min(interval, wait)):
		}
	}
}
