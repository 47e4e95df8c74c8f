package statuspage

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/config"
	"switchyard/limits"
	"switchyard/processor"
	"switchyard/routing"
)

// view is what the page shows.
type view struct {
	Now     time.Time
	Refresh int
	Traffic trafficView
	// Providers in config order, then any provider only the counters know.
	Providers []providerView
	Routes    []routeView
	MCP       []mcpView // MCP servers in config order
	Keys      []keyView
	// MoreKeys is how many client keys are not listed (past maxKeys).
	MoreKeys int
	// SharedBudgets: the counts are in the rate-limit service.
	SharedBudgets bool
	// BudgetsUnread: some budget's counts could not be read in time.
	BudgetsUnread bool
	Config        reloadView
	Hooks         hooksView
}

type mcpView struct {
	Name, Address  string // the endpoint's URL, path included
	Calls, Refused float64
}

type trafficView struct {
	Requests, Errors, Tokens float64
	USD                      float64 // spent at the price table's prices
	// RequestRate and TokenRate are per second over Window; Window is 0
	// before there is an older sample.
	RequestRate, TokenRate float64
	Window                 time.Duration
}

type providerView struct {
	Name, Schema, Address string
	// Requests that chose this provider first, and its attempts that
	// failed and moved a request on.
	Requests, FailedAttempts float64
	Failures                 int
	EjectedUntil             time.Time // zero: in rotation
	Resting                  []processor.RestingKey
}

type routeView struct {
	Model, Targets, Fallbacks string
}

type keyView struct {
	Name    string
	Tokens  float64 // billed tokens counted so far, every route
	USD     float64 // US dollars spent so far
	Budgets []budgetView
}

type budgetView struct {
	Name         string // "requests this minute"
	Limit, Spent int64  // money in micro-dollars
	Money        bool   // a budget in US dollars
	Known        bool   // Spent could be read
}

// Show formats an amount of this budget for people: dollars to the cent
// for money, to a hundredth of a cent below a dollar (the data attributes
// keep micro-dollars).
func (b budgetView) Show(n int64) string {
	if b.Money {
		digits := 2
		if n < 1e6 {
			digits = 4
		}
		return "$" + strconv.FormatFloat(float64(n)/1e6, 'f', digits, 64)
	}
	return strconv.FormatInt(n, 10)
}

// Left is what the budget has left, never negative (the request that
// crosses a token budget finishes over it).
func (b budgetView) Left() int64 { return max(b.Limit-b.Spent, 0) }

// reloadView has reload.Status's fields, so it converts from one.
type reloadView struct {
	At time.Time
	OK bool
}

type hooksView struct {
	Version uint64
	Scripts []string
	Reload  reloadView
}

func (p *Page) view(ctx context.Context) view {
	now := p.src.Now()
	t := p.totals()
	v := view{Now: now, Refresh: Refresh}
	v.Traffic = trafficView{Requests: t.requests(), Errors: t.errors(), Tokens: t.tokens(), USD: t.usd()}
	v.Traffic.RequestRate, v.Traffic.TokenRate, v.Traffic.Window = p.rates(now, t)
	r := p.src.Router()
	cfg := r.Config()
	v.Providers = p.providers(r, now, t)
	v.Routes = routes(cfg)
	v.MCP = mcpServers(r, t)
	v.Keys, v.MoreKeys, v.BudgetsUnread = p.keys(ctx, cfg, t)
	v.SharedBudgets = p.src.SharedBudgets
	if p.src.ConfigReload != nil {
		v.Config = reloadView(p.src.ConfigReload())
	}
	if p.src.Hooks != nil {
		if set := p.src.Hooks(); set != nil {
			v.Hooks.Version, v.Hooks.Scripts = set.Version(), set.Scripts()
		}
	}
	if p.src.HooksReload != nil {
		v.Hooks.Reload = reloadView(p.src.HooksReload())
	}
	return v
}

// providers joins the configured providers with their health and counts.
// mcpServers lists the MCP servers with their tool calls and refusals.
func mcpServers(r *routing.Router, t totals) []mcpView {
	var out []mcpView
	for _, s := range r.MCPServers() {
		path, _, _ := strings.Cut(s.Path, "?") // a query may hold a token
		addr := s.Scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) + path
		out = append(out, mcpView{Name: s.Name, Address: addr, Calls: t.mcpCalls[s.Name], Refused: t.mcpRefused[s.Name]})
	}
	return out
}

func (p *Page) providers(r *routing.Router, now time.Time, t totals) []providerView {
	var health processor.HealthSnapshot
	if p.src.Health != nil {
		health = p.src.Health()
	}
	var out []providerView
	seen := map[string]bool{}
	for _, pr := range r.Providers() {
		seen[pr.Name] = true
		pv := providerView{Name: pr.Name, Schema: string(pr.Schema),
			Address: pr.Scheme + "://" + hostPort(pr.Host, pr.Port) + pr.PathPrefix}
		out = append(out, pv)
	}
	// Providers a reload removed may still have counts.
	for _, name := range slices.Sorted(maps.Keys(t.byProvider)) {
		if name != "" && !seen[name] {
			out = append(out, providerView{Name: name, Schema: "(no longer configured)"})
		}
	}
	for i := range out {
		pv := &out[i]
		if c := t.byProvider[pv.Name]; c != nil {
			pv.Requests, pv.FailedAttempts = c.requests, c.failedAttempts
		}
		for _, h := range health.Providers {
			if h.Provider == pv.Name {
				pv.Failures = h.Failures
				if now.Before(h.Until) {
					pv.EjectedUntil = h.Until
				}
			}
		}
		for _, k := range health.Keys {
			if k.Provider == pv.Name {
				pv.Resting = append(pv.Resting, k)
			}
		}
	}
	return out
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

func routes(cfg *config.Config) []routeView {
	var out []routeView
	for _, rt := range cfg.Routes {
		model := rt.Model
		if rt.Name != "" {
			model += " (" + rt.Name + ")"
		}
		targets := rt.Targets
		if rt.Provider != "" {
			targets = []config.TargetConfig{{Provider: rt.Provider, Model: rt.RewriteModel}}
		}
		out = append(out, routeView{Model: model, Targets: targetList(targets), Fallbacks: targetList(rt.Fallbacks)})
	}
	return out
}

func targetList(ts []config.TargetConfig) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		s := t.Provider
		if t.Model != "" {
			s += " as " + t.Model
		}
		if t.Weight != nil {
			s += fmt.Sprintf(" (weight %d)", *t.Weight)
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

// maxKeys bounds the client keys the page lists.
const maxKeys = 200

// budgetReadTimeout bounds the time one render spends reading budgets from
// the rate-limit service; keys past it show their limits only.
const budgetReadTimeout = time.Second

// keys lists the first maxKeys client keys by configured name with their
// budgets, how many more there are, and whether some budget could not be
// read.
func (p *Page) keys(ctx context.Context, cfg *config.Config, t totals) (out []keyView, more int, unread bool) {
	ctx, cancel := context.WithTimeout(ctx, budgetReadTimeout)
	defer cancel()
	for i, k := range cfg.ClientKeys {
		if i == maxKeys {
			return out, len(cfg.ClientKeys) - maxKeys, unread
		}
		kv := keyView{Name: k.Name, Tokens: t.byKey[k.Name], USD: t.usdByKey[k.Name]}
		if k.Limits != nil {
			var ok bool
			kv.Budgets, ok = p.budgets(ctx, k.Name, *k.Limits)
			unread = unread || !ok
		}
		out = append(out, kv)
	}
	return out, 0, unread
}

// budgets lists the budgets l sets with what key has spent of them, and
// whether that could be read.
func (p *Page) budgets(ctx context.Context, key string, l config.LimitsConfig) ([]budgetView, bool) {
	var spent limits.Usage
	known := p.src.Spent != nil && ctx.Err() == nil
	if known {
		var err error
		spent, err = p.src.Spent(ctx, key, limits.Of(l))
		if err != nil {
			p.src.Logger.Warn("reading a client key's budgets for the status page", "key_name", key, "err", err)
			known = false
		}
	}
	var out []budgetView
	for _, b := range []budgetView{
		{Name: "requests this minute", Limit: l.RequestsPerMinute, Spent: spent.RequestsThisMinute},
		{Name: "tokens this minute", Limit: l.TokensPerMinute, Spent: spent.TokensThisMinute},
		{Name: "tokens today (UTC)", Limit: l.TokensPerDay, Spent: spent.TokensToday},
		{Name: "USD today (UTC)", Limit: config.MicroUSD(l.USDPerDay), Spent: spent.MicroUSDToday, Money: true},
		{Name: "USD this month (UTC)", Limit: config.MicroUSD(l.USDPerMonth), Spent: spent.MicroUSDThisMonth, Money: true},
	} {
		if b.Limit > 0 {
			b.Known = known
			out = append(out, b)
		}
	}
	return out, known || p.src.Spent == nil
}
