package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// BaselinePath is the path every ratio and difference is taken against.
const BaselinePath = "direct"

// Files written by Write.
const (
	JSONFile     = "results.json"
	MarkdownFile = "results.md"
	LatencyChart = "latency_vs_vus.png"
	RSSChart     = "rss.png"
	// BodyChart is drawn when the run has agent stages of more than one
	// body size.
	BodyChart   = "cost_vs_body.png"
	roleEnvoy   = "envoy"
	roleExtproc = "extproc"
	// RoleGenerator marks the benchmark's own process (load generator and,
	// in cmd/bench, the mock upstream) when it is sampled.
	RoleGenerator  = "generator"
	chartWidthInch = 8
)

// Write stores r in dir as results.json, results.md and the PNG charts.
func Write(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating results dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkdownFile), []byte(Markdown(r)), 0o644); err != nil {
		return fmt.Errorf("writing markdown: %w", err)
	}
	if err := latencyChart(r, filepath.Join(dir, LatencyChart)); err != nil {
		return fmt.Errorf("drawing latency chart: %w", err)
	}
	if err := rssChart(r, filepath.Join(dir, RSSChart)); err != nil {
		return fmt.Errorf("drawing rss chart: %w", err)
	}
	if hasBodyChart(r) {
		if err := bodyChart(r, filepath.Join(dir, BodyChart)); err != nil {
			return fmt.Errorf("drawing body chart: %w", err)
		}
	}
	return nil
}

// baseline finds the direct path's stage with the same kind and load.
func baseline(r *Result, s Stage) (Stage, bool) {
	for _, b := range r.Stages {
		if b.Kind == s.Kind && b.Load == s.Load && b.Body == s.Body && b.Path == BaselinePath {
			return b, true
		}
	}
	return Stage{}, false
}

// roleUse sums the memory and CPU of s's processes with role.
func roleUse(s Stage, role string) (rssMB, usPerReq float64, ok bool) {
	for _, p := range s.Procs {
		if p.Role == role {
			rssMB += p.RSSMaxMB
			usPerReq += p.CPUMicrosPerR
			ok = true
		}
	}
	return rssMB, usPerReq, ok
}

// credentialHeader reports whether a header carries a key, whose value
// never goes into a report.
func credentialHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "x-api-key", "api-key":
		return true
	}
	return false
}

// PathCPU is the CPU µs per request of every process serving s's path
// (Envoy, extproc, a peer gateway), without the load generator.
func PathCPU(s Stage) (usPerReq float64, ok bool) {
	for _, p := range s.Procs {
		if p.Role != RoleGenerator {
			usPerReq += p.CPUMicrosPerR
			ok = true
		}
	}
	return usPerReq, ok
}

func f2(x float64) string { return fmt.Sprintf("%.2f", x) }

func signed(x float64) string { return fmt.Sprintf("%+.2f", x) }

func orUnmeasured(d time.Duration) string {
	if d <= 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// Markdown renders r as tables, one per kind of stage, each path compared
// with the direct path of the same stage.
func Markdown(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Switchyard overhead benchmark (%s mode)\n\n", r.Mode)
	m := r.Machine
	fmt.Fprintf(&b, "Run %s to %s on %s, %d CPUs, %d MB RAM, Linux %s, %s %s/%s.\n\n",
		r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("15:04:05Z"), orUnknown(m.CPU), m.CPUs, m.MemoryMB,
		orUnknown(m.Kernel), m.GoVersion, m.OS, m.Arch)
	if w := m.Wakeups; w.AcrossCPUs > 0 || w.OneCPU > 0 {
		fmt.Fprintf(&b, "A wakeup as the run started (the median of %d round trips of a byte over pipes between two threads): across CPUs %s, on one CPU %s.\n\n",
			wakeupSamples, orUnmeasured(w.AcrossCPUs), orUnmeasured(w.OneCPU))
	}
	if len(r.Settings) > 0 {
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString("Settings:")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=`%s`", k, r.Settings[k])
		}
		b.WriteString(".\n\n")
	}
	b.WriteString("Paths: ")
	for i, p := range r.Paths {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "`%s` %s", p.Name, p.URL)
		if len(p.Headers) > 0 {
			keys := make([]string, 0, len(p.Headers))
			for k, v := range p.Headers {
				if credentialHeader(k) {
					v = "[redacted]"
				}
				keys = append(keys, k+": "+v)
			}
			slices.Sort(keys)
			fmt.Fprintf(&b, " (%s)", strings.Join(keys, ", "))
		}
	}
	b.WriteString(".\nLatencies in ms; Δ is the difference to `direct` in the same stage; ×direct is the RPS ratio. " +
		"busy % is the share of all CPUs in use on the machine during the stage (every process, from /proc/stat). " +
		"Envoy and extproc columns: peak RSS in MB and CPU µs per request, from /proc.\n")
	generator, peer := false, false
	for _, s := range r.Stages {
		if _, _, ok := roleUse(s, RoleGenerator); ok {
			generator = true
		}
		if _, _, ok := roleUse(s, RolePeer); ok {
			peer = true
		}
	}
	if generator {
		b.WriteString("The generator column is the benchmark process itself (load generator and mock upstream), " +
			"CPU µs per request: it shares the machine with the processes under test.\n")
	}

	sections := []struct{ kind, title, load string }{
		{KindSerial, "Concurrency 1: added latency per hop", "VUs"},
		{KindClosed, "Closed loop (VU stages)", "VUs"},
		{KindOpen, "Open loop (constant arrival rate, vegeta)", "rate/s"},
		{KindStream, "Streaming: time to first byte", "VUs"},
		{KindAgent, "Agent-shaped bodies (closed loop)", "VUs"},
	}
	for _, sec := range sections {
		var rows []Stage
		for _, s := range r.Stages {
			if s.Kind == sec.kind {
				rows = append(rows, s)
			}
		}
		if len(rows) == 0 {
			continue
		}
		stream := sec.kind == KindStream
		fmt.Fprintf(&b, "\n## %s\n\n", sec.title)
		hdr := []string{sec.load, "path", "requests", "errors", "RPS", "×direct", "p50", "p90", "p99", "max", "Δp50", "Δp99"}
		agent := sec.kind == KindAgent
		if agent {
			hdr = append([]string{"body"}, hdr...)
		}
		if stream {
			hdr = append(hdr, "TTFB p50", "TTFB p99", "ΔTTFB p50", "ΔTTFB p99")
		}
		hdr = append(hdr, "busy %", "envoy MB", "envoy µs/req", "extproc MB", "extproc µs/req")
		roles := []string{roleEnvoy, roleExtproc}
		if peer {
			hdr = append(hdr, "peer MB", "peer µs/req")
			roles = append(roles, RolePeer)
		}
		hdr = append(hdr, "path µs/req")
		if generator {
			hdr = append(hdr, "generator µs/req")
		}
		b.WriteString("| " + strings.Join(hdr, " | ") + " |\n|")
		for range hdr {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, s := range rows {
			base, haveBase := baseline(r, s)
			cell := func(f func(Stage) float64, diff bool) string {
				if !diff {
					return f2(f(s))
				}
				if !haveBase {
					return "–"
				}
				return signed(f(s) - f(base))
			}
			ratio := "–"
			if haveBase && base.RPS > 0 {
				ratio = fmt.Sprintf("%.3f", s.RPS/base.RPS)
			}
			row := []string{fmt.Sprint(s.Load), "`" + s.Path + "`", fmt.Sprint(s.Requests), fmt.Sprint(s.Errors),
				fmt.Sprintf("%.1f", s.RPS), ratio,
				cell(func(x Stage) float64 { return x.Latency.P50 }, false),
				cell(func(x Stage) float64 { return x.Latency.P90 }, false),
				cell(func(x Stage) float64 { return x.Latency.P99 }, false),
				cell(func(x Stage) float64 { return x.Latency.Max }, false),
				cell(func(x Stage) float64 { return x.Latency.P50 }, true),
				cell(func(x Stage) float64 { return x.Latency.P99 }, true),
			}
			if stream {
				ttfb := func(x Stage) Latency {
					if x.TTFB == nil {
						return Latency{}
					}
					return *x.TTFB
				}
				row = append(row,
					cell(func(x Stage) float64 { return ttfb(x).P50 }, false),
					cell(func(x Stage) float64 { return ttfb(x).P99 }, false),
					cell(func(x Stage) float64 { return ttfb(x).P50 }, true),
					cell(func(x Stage) float64 { return ttfb(x).P99 }, true))
			}
			if agent {
				row = append([]string{s.Body}, row...)
			}
			row = append(row, fmt.Sprintf("%.0f", s.MachineBusy*100))
			for _, role := range roles {
				if rss, us, ok := roleUse(s, role); ok {
					row = append(row, fmt.Sprintf("%.1f", rss), fmt.Sprintf("%.1f", us))
				} else {
					row = append(row, "–", "–")
				}
			}
			if us, ok := PathCPU(s); ok {
				row = append(row, fmt.Sprintf("%.1f", us))
			} else {
				row = append(row, "–")
			}
			if generator {
				if _, us, ok := roleUse(s, RoleGenerator); ok {
					row = append(row, fmt.Sprintf("%.1f", us))
				} else {
					row = append(row, "–")
				}
			}
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	writeBodyCost(&b, r)
	writeErrors(&b, r)
	fmt.Fprintf(&b, "\n![latency vs VUs](%s)\n\n![RSS over time](%s)\n", LatencyChart, RSSChart)
	if hasBodyChart(r) {
		fmt.Fprintf(&b, "\n![cost vs body size](%s)\n", BodyChart)
	}
	return b.String()
}

// writeErrors lists every failed request by stage, path and kind, with the
// first answer (status and body) or transport error of that kind.
func writeErrors(b *strings.Builder, r *Result) {
	var rows []string
	for _, s := range r.Stages {
		kinds := make([]string, 0, len(s.ErrorKinds))
		for k := range s.ErrorKinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			body := strings.Join(strings.Fields(s.ErrorBodies[k]), " ")
			body = strings.NewReplacer("|", "\\|", "`", "'").Replace(body)
			if body == "" {
				body = "–"
			}
			rows = append(rows, fmt.Sprintf("| %s | %d | `%s` | %s | %d | `%s` |", s.Kind, s.Load, s.Path, k, s.ErrorKinds[k], body))
		}
	}
	b.WriteString("\n## Errors\n\n")
	if len(rows) == 0 {
		b.WriteString("None: every request of every stage succeeded.\n")
		return
	}
	b.WriteString("| stage | load | path | kind | count | first answer or error |\n|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n") + "\n")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// palette has a distinct colour for each of the stack's seven sampled
// processes and five paths.
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// latencyChart draws p50 (solid) and p99 (dashed) against VUs per path.
func latencyChart(r *Result, file string) error {
	p := plot.New()
	p.Title.Text = "Closed-loop latency vs VUs"
	p.X.Label.Text = "VUs"
	p.Y.Label.Text = "latency (ms)"
	p.Legend.Top = true
	p.Legend.Left = true
	for i, path := range r.Paths {
		var p50, p99 plotter.XYs
		for _, s := range r.Stages {
			if s.Path == path.Name && (s.Kind == KindClosed || s.Kind == KindSerial) {
				p50 = append(p50, plotter.XY{X: float64(s.Load), Y: s.Latency.P50})
				p99 = append(p99, plotter.XY{X: float64(s.Load), Y: s.Latency.P99})
			}
		}
		if len(p50) == 0 {
			continue
		}
		slices.SortFunc(p50, func(a, b plotter.XY) int { return int(a.X - b.X) })
		slices.SortFunc(p99, func(a, b plotter.XY) int { return int(a.X - b.X) })
		c := palette[i%len(palette)]
		for _, q := range []struct {
			xys    plotter.XYs
			suffix string
			dashed bool
		}{{p50, " p50", false}, {p99, " p99", true}} {
			l, pts, err := plotter.NewLinePoints(q.xys)
			if err != nil {
				return err
			}
			l.Color, pts.Color = c, c
			pts.Shape = draw.CircleGlyph{}
			if q.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, pts)
			p.Legend.Add(path.Name+q.suffix, l)
		}
	}
	return p.Save(chartWidthInch*vg.Inch, 4.5*vg.Inch, file)
}

// rssChart draws the RSS of every sampled Envoy and extproc over the run.
// The benchmark process itself is left out: its memory is the load
// generator's, and on the same axis it would flatten the processes under
// test (results.json still has it).
func rssChart(r *Result, file string) error {
	generator := map[string]bool{}
	for _, p := range r.Paths {
		for _, pr := range p.Procs {
			if pr.Role == RoleGenerator {
				generator[pr.Name] = true
			}
		}
	}
	p := plot.New()
	p.Title.Text = "Resident memory over the run"
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "RSS (MB)"
	p.Legend.Top = true
	p.Legend.Left = true
	byProc := map[string]plotter.XYs{}
	var names []string
	for _, pt := range r.RSS {
		if generator[pt.Proc] {
			continue
		}
		if _, ok := byProc[pt.Proc]; !ok {
			names = append(names, pt.Proc)
		}
		byProc[pt.Proc] = append(byProc[pt.Proc], plotter.XY{X: pt.T, Y: pt.MB})
	}
	slices.Sort(names)
	for i, name := range names {
		xys := byProc[name]
		slices.SortStableFunc(xys, byX)
		// Samples exist only while the process's path is under load, so
		// draw points, not lines across the gaps.
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		sc.Color = palette[i%len(palette)]
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(1.5)
		p.Add(sc)
		p.Legend.Add(name, sc)
	}
	if len(names) == 0 {
		p.Title.Text += " (no processes sampled)"
		p.X.Max, p.Y.Max = 1, 1
	}
	return p.Save(chartWidthInch*vg.Inch, 4.5*vg.Inch, file)
}

// writeBodyCost is the agent stages as the issue asks for them: per body
// and path the CPU of the path per request, the latency added to direct
// and the RPS against direct, and each process's peak RSS; with the
// ratios to Envoy alone and, when the null path ran, the gateway's own
// share (gateway minus null).
func writeBodyCost(b *strings.Builder, r *Result) {
	var rows []Stage
	for _, s := range r.Stages {
		if s.Kind == KindAgent {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return
	}
	find := func(s Stage, path string) (Stage, bool) {
		for _, o := range r.Stages {
			if o.Kind == s.Kind && o.Load == s.Load && o.Body == s.Body && o.Path == path {
				return o, true
			}
		}
		return Stage{}, false
	}
	b.WriteString("\n## Cost against body size\n\n" +
		"CPU µs per request of every process serving the path (Envoy, extproc, a peer); ×envoy is that against `envoy` " +
		"in the same stage; own is the path's CPU minus the `null` path's (the gateway's own work beyond the trip). " +
		"Peak RSS in MB of each process; with -settle, → its RSS that long after the load stopped, and how much of that is file pages (the binary).\n\n")
	b.WriteString("| body | VUs | path | ×direct RPS | Δp50 ms | Δp99 ms | path µs/req | ×envoy | own µs/req | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range rows {
		if s.Path == BaselinePath {
			continue
		}
		ratio, d50, d99 := "–", "–", "–"
		if base, ok := baseline(r, s); ok {
			if base.RPS > 0 {
				ratio = fmt.Sprintf("%.3f", s.RPS/base.RPS)
			}
			d50, d99 = signed(s.Latency.P50-base.Latency.P50), signed(s.Latency.P99-base.Latency.P99)
		}
		us, ok := PathCPU(s)
		cpu, xEnvoy, own := "–", "–", "–"
		if ok {
			cpu = fmt.Sprintf("%.0f", us)
			if e, found := find(s, PathEnvoy); found {
				if eu, ok := PathCPU(e); ok && eu > 0 {
					xEnvoy = fmt.Sprintf("%.2f", us/eu)
				}
			}
			if n, found := find(s, PathNull); found && s.Path != PathNull && s.Path != PathEnvoy {
				if nu, ok := PathCPU(n); ok {
					own = fmt.Sprintf("%+.0f", us-nu)
				}
			}
		}
		var rss []string
		for _, p := range s.Procs {
			if p.Role != RoleGenerator {
				rss = append(rss, fmt.Sprintf("%s %.1f", p.Name, p.RSSMaxMB)+settledNote(r, p))
			}
		}
		fmt.Fprintf(b, "| %s | %d | `%s` | %s | %s | %s | %s | %s | %s | %s |\n", s.Body, s.Load, s.Path, ratio, d50, d99, cpu, xEnvoy, own, strings.Join(rss, ", "))
	}
}

// settledNote is " (→ N after Ts, file pages F)" when p's RSS was read after the load.
func settledNote(r *Result, p ProcStats) string {
	if p.RSSSettledMB == 0 {
		return ""
	}
	return fmt.Sprintf(" (→ %.1f after %s, file pages %.1f)", p.RSSSettledMB, r.Settings[SettleSetting], p.RSSSettledFileMB)
}

// hasBodyChart reports whether the run's bodies come in more than one size,
// which a chart of cost against size needs.
func hasBodyChart(r *Result) bool {
	for _, b := range r.Bodies {
		if b.Size != r.Bodies[0].Size {
			return true
		}
	}
	return false
}

// bodyChart draws each path's CPU per request against the body size, one
// line per path and API shape (dashed: Messages), at the lowest VU stage.
func bodyChart(r *Result, file string) error {
	p := plot.New()
	p.Title.Text = "CPU per request vs body size (agent stages)"
	p.X.Label.Text = "body (KB, log scale)"
	p.Y.Label.Text = "path CPU (µs per request)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	size := map[string]Body{}
	for _, body := range r.Bodies {
		size[body.Name] = body
	}
	load := 0
	for _, s := range r.Stages {
		if s.Kind == KindAgent && (load == 0 || s.Load < load) {
			load = s.Load
		}
	}
	for i, path := range r.Paths {
		byShape := map[string]plotter.XYs{}
		var shapes []string
		for _, s := range r.Stages {
			body, ok := size[s.Body]
			if s.Kind != KindAgent || s.Load != load || s.Path != path.Name || !ok {
				continue
			}
			us, ok := PathCPU(s)
			if !ok {
				continue
			}
			shape := body.Shape()
			if _, seen := byShape[shape]; !seen {
				shapes = append(shapes, shape)
			}
			byShape[shape] = append(byShape[shape], plotter.XY{X: float64(body.Size) / 1024, Y: us})
		}
		for j, shape := range shapes {
			xys := byShape[shape]
			slices.SortStableFunc(xys, byX)
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			c := palette[i%len(palette)]
			l.Color, pts.Color = c, c
			pts.Shape = draw.CircleGlyph{}
			if j > 0 {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, pts)
			p.Legend.Add(path.Name+" "+shape, l)
		}
	}
	return p.Save(chartWidthInch*vg.Inch, 4.5*vg.Inch, file)
}

// byX orders a line's points along the x axis.
func byX(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) }
