package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEnvoyHeapBound: with -max-heap Envoy's overload manager bounds the
// heap a flood of big bodies can take. Sixteen clients each start an 8 MiB
// upload, twice the bound in all, and hold it unfinished: near the bound
// Envoy refuses the uploads in progress with a 503 in the API's shape
// rather than grow, its heap stays within what arrives between two of its
// reads, and once the clients let go a request is served again.
func TestEnvoyHeapBound(t *testing.T) {
	t.Parallel()
	const bound, clients, size = 64 << 20, 16, 8 << 20
	gw := startModuleGateway(t, 2*size, "-max-heap", strconv.Itoa(bound))
	u, err := url.Parse(gw.url)
	if err != nil {
		t.Fatal(err)
	}

	var peak heapPeak
	stop := make(chan struct{})
	watched := make(chan struct{})
	t.Cleanup(func() { close(stop); <-watched }) // before Envoy stops
	go func() {
		defer close(watched)
		for {
			peak.see(envoyHeap(t, gw))
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// Each client sends all of its body but the last byte, at 12.5 MiB/s,
	// and waits: Envoy holds what it took until the gateway has decided.
	var wg sync.WaitGroup
	refused := make(chan string, clients)
	var conns []net.Conn
	for range clients {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if answer, ok := holdUpload(c, size); ok {
				refused <- answer
			}
		}()
	}
	deadline := time.After(20 * time.Second)
	var answers []string
	for len(answers) == 0 {
		select {
		case a := <-refused:
			answers = append(answers, a)
		case <-deadline:
			t.Fatalf("no upload refused; Envoy's heap peaked at %d MiB", peak.get()>>20)
		}
	}
	// A new request meanwhile is served, or refused for want of memory.
	r, err := gw.try(t.Context(), "POST", "/v1/chat/completions", nil, `{"model":"gpt-exact","messages":[]}`)
	if err != nil || r.status != http.StatusOK && !refusedForMemory(fmt.Sprintf("HTTP/1.1 %d", r.status), string(r.body)) {
		t.Errorf("a request while the flood holds memory: %v %d %s", err, r.status, r.body)
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	close(refused)
	for a := range refused {
		answers = append(answers, a)
	}
	t.Logf("%d of %d uploads refused; Envoy's heap peaked at %d MiB (bound %d MiB)", len(answers), clients, peak.get()>>20, bound>>20)
	if limit := int64(bound + 32<<20); peak.get() > limit {
		t.Errorf("Envoy's heap peaked at %d MiB, over the bound and what arrives between two reads (%d MiB)", peak.get()>>20, limit>>20)
	}
	for _, a := range answers {
		if status, body, _ := strings.Cut(a, "\n"); !refusedForMemory(status, body) {
			t.Errorf("a refused upload got %q %q, want 503 overloaded in the API's shape", status, body)
		}
	}
	waitFor(t, "a request to be served once the flood let go", func() bool {
		r, err := gw.try(t.Context(), "POST", "/v1/chat/completions", nil, `{"model":"gpt-exact","messages":[]}`)
		return err == nil && r.status == http.StatusOK
	})
}

// refusedForMemory reports whether an answer is Envoy's refusal for want of
// memory: 503 overloaded in the API's shape, whether its connection manager
// refused a new request or its HTTP/1 codec an upload in progress.
func refusedForMemory(status, body string) bool {
	var e struct {
		Error struct{ Code, Type string }
	}
	return strings.HasPrefix(status, "HTTP/1.1 503") && json.Unmarshal([]byte(body), &e) == nil && e.Error.Code == "overloaded"
}

// holdUpload starts a size-byte chat upload on c and sends all but its last
// byte; it returns the answer's status line and body if Envoy answers
// before c is closed.
func holdUpload(c net.Conn, size int) (string, bool) {
	head := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	prefix := `{"model":"gpt-exact","messages":[{"role":"user","content":"`
	body := []byte(prefix + strings.Repeat("x", size-len(prefix)-4) + `"}]}`)
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			close(answered)
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		answered <- fmt.Sprintf("HTTP/1.1 %s\n%s", resp.Status, b[:n])
	}()
	if _, err := c.Write([]byte(head)); err != nil {
		return "", false
	}
	const piece = 128 << 10
	for off := 0; off < len(body)-1; off += piece {
		end := min(off+piece, len(body)-1)
		if _, err := c.Write(body[off:end]); err != nil {
			break
		}
		select {
		case a, ok := <-answered:
			return a, ok
		case <-time.After(10 * time.Millisecond):
		}
	}
	a, ok := <-answered
	return a, ok
}

// heapPeak is the largest heap seen.
type heapPeak struct {
	mu  sync.Mutex
	max int64
}

func (p *heapPeak) see(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.max = max(p.max, n)
}

func (p *heapPeak) get() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// envoyHeap is what Envoy's allocator holds for it (admin /memory); it may
// run on any goroutine.
func envoyHeap(t testing.TB, gw *gateway) int64 {
	resp, err := http.Get("http://" + gw.adminAddr + "/memory")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	var m struct {
		Allocated string `json:"allocated"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Error(err)
	}
	n, _ := strconv.ParseInt(m.Allocated, 10, 64)
	return n
}
