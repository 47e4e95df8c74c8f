package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromiumBin is the headless browser of the status page test: make
// chromium unpacks Debian's into .tools and exports CHROMIUM_BIN.
func chromiumBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CHROMIUM_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), ".tools", "bin", "chromium")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Chromium at %s (the end-to-end tests never skip): run make chromium", bin)
	}
	return bin
}

// chromium runs the headless browser on url with args and returns its
// standard output. Each run has a profile of its own; --no-sandbox because
// the tests may run as root, where Chromium's sandbox refuses to start (the
// page is our own, on loopback).
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,960", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, chromiumBin(t), append(append(base, args...), url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(stderr.String(), 3000))
	}
	return out
}

// TestStatusPageInBrowser: extproc's admin address serves the status page
// at /; headless Chromium renders it, and the numbers on it are those of
// /metrics: requests, errors and tokens in total, requests and failed
// attempts by provider, tokens by client key, and a key's tokens spent today equal its tokens counted. The page
// shows the ejected provider and the resting pool key by name, the hooks
// version, and no credential. The screenshot goes to SWY_STATUS_SCREENSHOT
// when set (docs/status-page.png is one).
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	o := startObserved(t)
	url := o.gw.metricsURL() + "/"
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("content-security-policy"), "default-src 'none'") {
		t.Fatalf("GET /: %d, content-security-policy %q", res.StatusCode, res.Header.Get("content-security-policy"))
	}
	if r, err := http.Post(url, "text/plain", nil); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %v %v, want 405", r.StatusCode, err)
	}

	dom := chromium(t, url, "--dump-dom")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	m := o.gw.metrics(t)
	billed := func(labels ...string) float64 { // tokens_total without reasoning, part of output
		return metricSum(m, "switchyard_tokens_total", labels...) - metricSum(m, "switchyard_tokens_total", append(labels, `type="reasoning"`)...)
	}
	routed := metricSum(m, "switchyard_requests_total", `status="routed"`)
	all := metricSum(m, "switchyard_requests_total")
	for _, c := range []struct {
		what     string
		selector func(*html.Node) bool
		want     float64
	}{
		{"requests", byID("requests-total"), all},
		{"errors", byID("errors-total"), all - routed - metricSum(m, "switchyard_requests_total", `status="estimated"`)},
		{"tokens", byID("tokens-total"), billed()},
		{"mock's requests", cell("data-provider", "mock", "requests"), metricSum(m, "switchyard_requests_total", `provider="mock"`)},
		{"flaky's failed attempts", cell("data-provider", "flaky", "failed-attempts"), metricSum(m, "switchyard_fallbacks_total", `from="flaky"`)},
		{"broken's failed attempts", cell("data-provider", "broken", "failed-attempts"), metricSum(m, "switchyard_fallbacks_total", `from="broken"`)},
		{"team-obs's tokens", cell("data-key", "team-obs", "tokens"), billed(`key="team-obs"`)},
		{"team-tight's tokens", cell("data-key", "team-tight", "tokens"), billed(`key="team-tight"`)},
	} {
		n := find(doc, c.selector)
		if n == nil {
			t.Errorf("%s: not on the page", c.what)
			continue
		}
		got, err := strconv.ParseFloat(attr(n, "data-value"), 64)
		if err != nil || got != c.want {
			t.Errorf("%s: the page shows %q, /metrics has %v", c.what, attr(n, "data-value"), c.want)
		}
		if c.want == 0 {
			t.Errorf("%s: 0 on both sides proves nothing", c.what)
		}
	}
	// The day's tokens budget counts what the answers reported.
	spent := find(doc, func(n *html.Node) bool {
		return attr(n, "data-key") == "team-obs" && attr(n, "data-budget") == "tokens today (UTC)"
	})
	if got := attr(find(spent, hasAttr("data-spent")), "data-spent"); got != strconv.FormatFloat(billed(`key="team-obs"`), 'f', -1, 64) {
		t.Errorf("team-obs's tokens spent today: the page shows %q, its tokens counted are %v", got, billed(`key="team-obs"`))
	}

	// Money: the page adds the same float counters in another order, so
	// the sums agree to rounding.
	for _, c := range []struct {
		what     string
		selector func(*html.Node) bool
		want     float64
	}{
		{"spend", byID("usd-total"), metricSum(m, "switchyard_cost_usd_total")},
		{"team-obs's spend", cell("data-key", "team-obs", "usd"), metricSum(m, "switchyard_cost_usd_total", `key="team-obs"`)},
	} {
		got, err := strconv.ParseFloat(attr(find(doc, c.selector), "data-value"), 64)
		if err != nil || c.want <= 0 || math.Abs(got-c.want) > 1e-9*c.want {
			t.Errorf("%s: the page shows %v (%v), /metrics has %v", c.what, got, err, c.want)
		}
	}
	usd := find(doc, func(n *html.Node) bool {
		return attr(n, "data-key") == "team-obs" && attr(n, "data-budget") == "USD today (UTC)"
	})
	if got, _ := strconv.ParseFloat(attr(find(usd, hasAttr("data-spent")), "data-spent"), 64); got < metricSum(m, "switchyard_cost_usd_total", `key="team-obs"`)*1e6 {
		t.Errorf("team-obs's money spent today: %v micro-dollars on the page, less than its cost counted", got)
	}

	text := textOf(doc)
	for _, want := range []string{"ejected until", "SWY_OBS_POOL_", "hooks version 1", "mock-fallback", "broken, mock as mock-gpt"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q:\n%s", want, text)
		}
	}
	for _, secret := range []string{"sk-obs-pool-SECRET", observedKey, observedTightKey} {
		if bytes.Contains(dom, []byte(secret)) || bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the page shows a credential (%s)", secret)
		}
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, url, "--screenshot="+shot)
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n")) || len(png) < 10_000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if out := os.Getenv("SWY_STATUS_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func attr(n *html.Node, name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasAttr(name string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		for _, a := range n.Attr {
			if a.Key == name {
				return true
			}
		}
		return false
	}
}

func byID(id string) func(*html.Node) bool {
	return func(n *html.Node) bool { return attr(n, "id") == id }
}

// cell finds the data-metric cell of the row whose rowAttr is value.
func cell(rowAttr, value, metric string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if attr(n, "data-metric") != metric {
			return false
		}
		for p := n.Parent; p != nil; p = p.Parent {
			if attr(p, rowAttr) != "" {
				return attr(p, rowAttr) == value
			}
		}
		return false
	}
}

// find returns the first node under n, n included, that match accepts.
func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

// textOf is the page's text, whitespace collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		if n.Type == html.ElementNode && (n.Data == "style" || n.Data == "head") {
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return fmt.Sprint(strings.Join(strings.Fields(b.String()), " "))
}

// TestStatusPageGlobalBudgets: with the budgets in the rate-limit service
// the status page reads them from there, adding nothing: a key's requests
// this minute and tokens today are those its answers spent.
func TestStatusPageGlobalBudgets(t *testing.T) {
	t.Parallel()
	rls := startRateLimit(t, startRedis(t))
	mock := startMock(t)
	gw := startGateway(t, tokensConfig(t, mock.URL, "{requests_per_minute: 100, tokens_per_day: 1000000}", rls),
		gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}})
	waitMinuteHead(45)
	minute := time.Now().Truncate(time.Minute)
	var tokens float64
	for range 2 {
		status, n := spend(t, gw)
		if status != 200 || n == 0 {
			t.Fatalf("request: %d with %v tokens", status, n)
		}
		tokens += n
	}
	spent := func(budget string) string {
		doc := statusDoc(t, gw)
		row := find(doc, func(n *html.Node) bool { return attr(n, "data-key") == "team-t" && attr(n, "data-budget") == budget })
		return attr(find(row, hasAttr("data-spent")), "data-spent")
	}
	want := strconv.FormatFloat(tokens, 'f', -1, 64)
	// The tokens are charged to the service beside the answer.
	waitFor(t, "the page to show the tokens charged", func() bool { return spent("tokens today (UTC)") == want })
	// Rendering twice counted nothing.
	if got := spent("requests this minute"); got != "2" && time.Now().Truncate(time.Minute) == minute {
		t.Errorf("requests this minute: the page shows %q, want 2", got)
	}
	if text := textOf(statusDoc(t, gw)); !strings.Contains(text, "counted in the rate-limit service") || strings.Contains(text, "could not be read") {
		t.Errorf("the page should read the budgets from the rate-limit service:\n%s", text)
	}
}

// statusDoc fetches and parses extproc's status page.
func statusDoc(t *testing.T, gw *gateway) *html.Node {
	t.Helper()
	res, err := http.Get(gw.metricsURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	doc, err := html.Parse(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /: %d %v", res.StatusCode, err)
	}
	return doc
}
