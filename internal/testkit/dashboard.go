package testkit

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
)

// Dashboard is the part of a Grafana dashboard's JSON the tests read.
type Dashboard struct {
	UID        string           `json:"uid"`
	Panels     []DashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "..."}
		} `json:"list"`
	} `json:"templating"`
}

// DashboardPanel is one panel (rows included) with its queries.
type DashboardPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []DashboardPanel `json:"panels"` // a collapsed row's
}

// ReadDashboard decodes a dashboard file.
func ReadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return &d, nil
}

// AllPanels lists the panels, those inside collapsed rows included.
func (d *Dashboard) AllPanels() []DashboardPanel {
	var out []DashboardPanel
	var walk func([]DashboardPanel)
	walk = func(ps []DashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Exprs lists every PromQL expression of the dashboard: the panels'
// queries and the query variables' label_values(...).
func (d *Dashboard) Exprs() []string {
	var out []string
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if t.Expr != "" {
				out = append(out, t.Expr)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			out = append(out, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	// Label lists after a grouping or matching keyword.
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// label_values(metric, label): the label is not a metric.
	promLabelValues = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)`)
	promIdent       = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// promKeywords are PromQL words that are neither functions nor metrics.
var promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}

// MetricNames returns the metric names an expression selects, sorted and
// without repeats: the identifiers left once strings, label matchers,
// ranges, grouping label lists and function calls' names are taken out.
// Good enough for a dashboard's queries; not a PromQL parser.
func MetricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promLabelValues.ReplaceAllString(s, "$1")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := s[loc[1]:]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n') {
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0] == '(' { // a function or aggregation
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] == '$' || (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9') || s[loc[0]-1] == '.') {
			continue // a variable ($__range) or part of a number (1e-9)
		}
		if slices.Contains(promKeywords, name) {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
