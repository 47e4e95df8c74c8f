package statuspage

import (
	_ "embed"
	"strconv"
	"strings"
	"time"

	g "maragu.dev/gomponents"
	h "maragu.dev/gomponents/html"

	"switchyard/processor"
)

// The page is built from gomponents nodes, which escape every text and
// attribute they write, rather than from an html/template: executing a
// template looks methods up by name at run time, and that makes the
// linker keep every exported method of every type extproc links (a third
// more code to load and map).

//go:embed status.css
var style string

// page is the HTML showing v.
func (v view) page() g.Node {
	return h.Doctype(h.HTML(h.Lang("en"),
		h.Head(
			h.Meta(h.Charset("utf-8")),
			h.Meta(g.Attr("http-equiv", "refresh"), h.Content(strconv.Itoa(v.Refresh))),
			h.Meta(h.Name("viewport"), h.Content("width=device-width, initial-scale=1")),
			h.TitleEl(g.Text("Switchyard status")),
			h.StyleEl(g.Raw(style)),
		),
		h.Body(
			h.H1(g.Text("Switchyard status")),
			h.P(h.Class("sub"), g.Textf("At %s; this page reloads every %ds. Read-only; numbers since extproc started, from the same counters as ", clock(v.Now), v.Refresh),
				h.Code(g.Text("/metrics")), g.Text(".")),
			trafficTiles(v.Traffic),
			providerTable(v),
			routeTable(v.Routes),
			g.If(len(v.MCP) > 0, mcpTable(v.MCP)),
			keySection(v),
			reloadTable(v),
		),
	))
}

func trafficTiles(t trafficView) g.Node {
	rates := g.Group{tile("request-rate", "", g.Text("—"), "requests/s (after the next refresh)")}
	if t.Window > 0 {
		rates = g.Group{
			tile("request-rate", "", g.Text(rate(t.RequestRate)), "requests/s over "+secs(t.Window)),
			tile("token-rate", "", g.Text(rate(t.TokenRate)), "tokens/s over "+secs(t.Window)),
		}
	}
	return g.Group{
		h.H2(g.Text("Traffic")),
		h.Div(h.Class("tiles"),
			tile("requests-total", raw(t.Requests), g.Text(num(t.Requests)), "requests"),
			tile("errors-total", raw(t.Errors), g.Text(num(t.Errors)), "refused or failed by the gateway"),
			tile("tokens-total", raw(t.Tokens), g.Text(num(t.Tokens)), "tokens"),
			tile("usd-total", raw(t.USD), g.Text(usd(t.USD)), "spent (list prices)"),
			rates,
		),
	}
}

// tile is one figure of the traffic; value is its data-value attribute,
// if any.
func tile(id, value string, shown g.Node, label string) g.Node {
	return h.Div(h.Class("tile"),
		h.Div(h.Class("v"), h.ID(id), g.If(value != "", h.Data("value", value)), shown),
		h.Div(h.Class("l"), g.Text(label)),
	)
}

func providerTable(v view) g.Node {
	return g.Group{
		h.H2(g.Text("Providers")),
		h.Table(h.ID("providers"),
			header("Provider", "Schema", "Address", "Requests", "Failed attempts", "Health", "Pool keys resting"),
			g.Map(v.Providers, func(p providerView) g.Node {
				return h.Tr(h.Data("provider", p.Name),
					h.Td(g.Text(p.Name)), h.Td(g.Text(p.Schema)), h.Td(g.Text(p.Address)),
					counter("requests", p.Requests),
					counter("failed-attempts", p.FailedAttempts),
					h.Td(health(v.Now, p)),
					h.Td(resting(p.Resting)),
				)
			}),
		),
	}
}

func health(now time.Time, p providerView) g.Node {
	if !p.EjectedUntil.IsZero() {
		return h.Span(h.Class("bad"), g.Textf("ejected until %s (in %s)", clock(p.EjectedUntil), p.EjectedUntil.Sub(now).Round(time.Second)))
	}
	return g.Group{
		h.Span(h.Class("ok"), g.Text("in rotation")),
		g.If(p.Failures > 0, g.Group{g.Text(" "), h.Span(h.Class("muted"), g.Textf("(%d failed in a row)", p.Failures))}),
	}
}

func resting(keys []processor.RestingKey) g.Node {
	if len(keys) == 0 {
		return none()
	}
	return g.Map(keys, func(k processor.RestingKey) g.Node {
		return g.Group{g.Text(k.Key + " until " + clock(k.Until)), h.Br()}
	})
}

func routeTable(routes []routeView) g.Node {
	return g.Group{
		h.H2(g.Text("Routes")),
		h.Table(h.ID("routes"),
			header("Model", "Targets", "Fallbacks"),
			g.Map(routes, func(r routeView) g.Node {
				fallbacks := none()
				if r.Fallbacks != "" {
					fallbacks = g.Text(r.Fallbacks)
				}
				return h.Tr(h.Td(g.Text(r.Model)), h.Td(g.Text(r.Targets)), h.Td(fallbacks))
			}),
		),
	}
}

func mcpTable(servers []mcpView) g.Node {
	return g.Group{
		h.H2(g.Text("MCP servers")),
		h.Table(h.ID("mcp"),
			header("Server", "Address", "Tool calls", "Refused"),
			g.Map(servers, func(m mcpView) g.Node {
				return h.Tr(h.Data("mcp", m.Name),
					h.Td(g.Text(m.Name)), h.Td(g.Text(m.Address)),
					counter("calls", m.Calls), counter("refused", m.Refused))
			}),
		),
	}
}

func keySection(v view) g.Node {
	if len(v.Keys) == 0 {
		return g.Group{h.H2(g.Text("Client keys")), h.P(h.Class("muted"), g.Text("No client keys: every request is anonymous."))}
	}
	where := "Budgets are counted in this process."
	if v.SharedBudgets {
		where = "Budgets are counted in the rate-limit service, shared by every replica; a budget over its limit shows as spent in full."
	}
	return g.Group{
		h.H2(g.Text("Client keys")),
		h.Table(h.ID("keys"),
			header("Key", "Tokens", "Spent (USD)", "Budget", "Spent", "Limit", "Left"),
			g.Map(v.Keys, keyRows),
		),
		g.If(v.MoreKeys > 0, h.P(h.Class("muted"), g.Textf("and %d more keys.", v.MoreKeys))),
		h.P(h.Class("muted"), g.Text(where),
			g.If(v.BudgetsUnread, g.Group{g.Text(" "), h.Span(h.Class("bad"), g.Text("Some budgets could not be read (see the log)."))})),
	}
}

// keyRows is a row per budget of k, the key's own cells spanning them, or
// one row for a key without budgets.
func keyRows(k keyView) g.Node {
	if len(k.Budgets) == 0 {
		return h.Tr(h.Data("key", k.Name), h.Td(g.Text(k.Name)), keyTotals(k, nil),
			h.Td(h.Class("muted"), h.ColSpan("4"), g.Text("no budget")))
	}
	span := h.RowSpan(strconv.Itoa(len(k.Budgets)))
	own := g.Group{h.Td(span, g.Text(k.Name)), keyTotals(k, span)}
	rows := make(g.Group, len(k.Budgets))
	for i, b := range k.Budgets {
		rows[i] = h.Tr(h.Data("key", k.Name), g.If(b.Known, h.Data("budget", b.Name)),
			g.If(i == 0, own), h.Td(g.Text(b.Name)), budgetCells(b))
	}
	return rows
}

// keyTotals is a key's tokens and spend cells, spanning its rows.
func keyTotals(k keyView, span g.Node) g.Node {
	return g.Group{cell("tokens", k.Tokens, num(k.Tokens), span), cell("usd", k.USD, usd(k.USD), span)}
}

func budgetCells(b budgetView) g.Node {
	limit := h.Td(h.Class("n"), g.Text(b.Show(b.Limit)))
	if !b.Known {
		return g.Group{h.Td(h.Class("muted"), g.Text("—")), limit, h.Td(h.Class("muted"), g.Text("—"))}
	}
	left := "n"
	if b.Left() == 0 {
		left = "n bad"
	}
	return g.Group{
		h.Td(h.Class("n"), h.Data("spent", strconv.FormatInt(b.Spent, 10)), g.Text(b.Show(b.Spent))),
		limit,
		h.Td(h.Class(left), h.Data("left", strconv.FormatInt(b.Left(), 10)), g.Text(b.Show(b.Left()))),
	}
}

func reloadTable(v view) g.Node {
	version := strconv.FormatUint(v.Hooks.Version, 10)
	hooks := g.Group{g.Text("hooks version "), h.Span(h.ID("hooks-version"), h.Data("value", version), g.Text(version)),
		g.If(len(v.Hooks.Scripts) > 0, g.Text(" ("+strings.Join(v.Hooks.Scripts, ", ")+")"))}
	return g.Group{
		h.H2(g.Text("Config and hooks")),
		h.Table(h.ID("reloads"),
			header("", "Last load", "Result"),
			h.Tr(h.ID("config-reload"), h.Td(g.Text("config")), h.Td(g.Text(clock(v.Config.At))),
				h.Td(outcome(v.Config.OK, "refused: the running config is older than the file (see the log)"))),
			h.Tr(h.ID("hooks-reload"), h.Td(hooks), h.Td(g.Text(clock(v.Hooks.Reload.At))),
				h.Td(outcome(v.Hooks.Reload.OK, "refused: the running hooks are older than the scripts (see the log)"))),
		),
	}
}

func outcome(ok bool, refused string) g.Node {
	if ok {
		return h.Span(h.Class("ok"), g.Text("applied"))
	}
	return h.Span(h.Class("bad"), g.Text(refused))
}

// header is a table's heading row.
func header(names ...string) g.Node {
	return h.Tr(g.Map(names, func(n string) g.Node { return h.Th(g.Text(n)) }))
}

// counter is a right-aligned cell of a counter, its data-metric the name.
func counter(metric string, f float64) g.Node { return cell(metric, f, num(f)) }

// cell is a right-aligned cell of a metric: its data-metric the name, its
// data-value f as /metrics writes it, shown as shown, with attrs.
func cell(metric string, f float64, shown string, attrs ...g.Node) g.Node {
	return h.Td(h.Class("n"), g.Group(attrs), h.Data("metric", metric), h.Data("value", raw(f)), g.Text(shown))
}

func none() g.Node { return h.Span(h.Class("muted"), g.Text("none")) }

// num formats a counter for people: whole numbers without exponent.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// raw is a counter as /metrics writes it, for the data-value attributes.
func raw(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func rate(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// usd is dollars to a hundredth of a cent: one small request costs less
// than a cent.
func usd(f float64) string { return "$" + strconv.FormatFloat(f, 'f', 4, 64) }

func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04:05 UTC")
}

func secs(d time.Duration) string { return d.Round(time.Second).String() }
