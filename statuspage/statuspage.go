// Package statuspage serves the page at "/" on extproc's admin address: the
// routes and providers (health, ejections, pool keys resting), the client
// keys' budgets, the hooks version, the last reloads, and request and token
// rates. It is server-rendered HTML (render.go) with no external assets
// and no script (it refreshes itself with a meta refresh), answers GET and
// HEAD only, and shows names, never credentials: providers by name and
// address, keys by their configured name, pool keys by their key_env or
// key_file.
//
// Its data comes from read-only accessors of the running components; the
// totals come from the same in-process Prometheus registry /metrics shows,
// so the page and /metrics agree.
package statuspage

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/limits"
	"switchyard/luahooks"
	"switchyard/processor"
	"switchyard/reload"
	"switchyard/routing"
)

// Sources are where the page reads what it shows.
type Sources struct {
	// Router is the config new requests start with.
	Router func() *routing.Router
	// Health is the processor's provider health (processor.Server.Health).
	Health func() processor.HealthSnapshot
	// Spent is what a client key has used of the budgets l sets, in this
	// process or in the rate-limit service (limits.Local, limits.Global);
	// nil: not shown.
	Spent func(ctx context.Context, key string, l limits.Limits) (limits.Usage, error)
	// SharedBudgets says the budgets are counted in the rate-limit
	// service, shared by every replica.
	SharedBudgets bool
	// ConfigReload and HooksReload are the outcomes of the latest loads.
	ConfigReload, HooksReload func() reload.Status
	// Hooks is the hook set new requests start with; it may return nil.
	Hooks func() *luahooks.Set
	// Metrics is the registry /metrics serves: the request and token
	// totals are read from it.
	Metrics prometheus.Gatherer
	// Logger receives rendering failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Refresh is how often the page reloads itself, in seconds.
const Refresh = 5

// rateWindow is the span the rates are averaged over, at most.
const rateWindow = time.Minute

// Page is the status page handler. It keeps the totals of its recent
// renders to show rates.
type Page struct {
	src     Sources
	mu      sync.Mutex
	samples []sample // oldest first, within rateWindow of the newest
}

// sample is the totals at one moment.
type sample struct {
	at               time.Time
	requests, tokens float64
}

// New returns the page. Its first rates are averaged from this moment.
func New(src Sources) *Page {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Logger == nil {
		src.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Page{src: src}
	t := p.totals()
	p.samples = []sample{{at: src.Now(), requests: t.requests(), tokens: t.tokens()}}
	return p
}

// ServeHTTP renders the page for GET and HEAD.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("allow", "GET, HEAD")
		http.Error(w, "the status page is read-only", http.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	if err := p.view(r.Context()).page().Render(&buf); err != nil {
		p.src.Logger.Error("rendering the status page", "err", err)
		http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("content-type", "text/html; charset=utf-8")
	// Nothing is loaded from anywhere: inline styles only, no script, no
	// frames.
	h.Set("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("cache-control", "no-store")
	h.Set("x-content-type-options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// rates adds the current totals as a sample (at most one a second) and
// returns the requests and tokens per second since the oldest sample kept,
// the one just old enough to span rateWindow, and that span (0: no older
// sample to compare with).
func (p *Page) rates(now time.Time, t totals) (reqs, toks float64, span time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := sample{at: now, requests: t.requests(), tokens: t.tokens()}
	for len(p.samples) > 1 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	old := p.samples[0]
	if span = now.Sub(old.at); span >= time.Second {
		secs := span.Seconds()
		reqs, toks = (cur.requests-old.requests)/secs, (cur.tokens-old.tokens)/secs
	} else {
		span = 0
	}
	if now.Sub(p.samples[len(p.samples)-1].at) >= time.Second {
		p.samples = append(p.samples, cur)
	}
	return reqs, toks, span
}
