package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"switchyard/loadtest/agentbody"
)

// Target is one path under test.
type Target struct {
	// Name is "direct", "envoy", "gateway" or "gateway_hook" (or anything
	// else in tests); "direct" is the baseline of every ratio.
	Name string `json:"name"`
	// URL is the base URL; requests go to URL + "/v1/chat/completions".
	URL string `json:"url"`
	// Headers are added to every request (e.g. the one that triggers a hook).
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders are added to every request too but never written to
	// results (a peer gateway's key).
	SecretHeaders map[string]string `json:"-"`
}

// Model is the model every benchmark request names.
const Model = "mock-gpt"

// chatBody is the request every path receives, the same as the k6 scripts'.
func chatBody(stream bool) []byte {
	s := "false"
	if stream {
		s = "true"
	}
	return []byte(`{"model":"` + Model + `","messages":[{"role":"system","content":"You are a terse assistant."},` +
		`{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"stream":` + s + `}`)
}

// samples is what one load run observed.
type samples struct {
	latencies []time.Duration // successful requests only
	ttfb      []time.Duration // streaming: time to the first body byte
	requests  int
	errors    int
	errorKind map[string]int
	// errorBody keeps the first answer (or transport error) seen for each
	// kind of error, so a report can say what a 500 was about.
	errorBody map[string]string
	elapsed   time.Duration
}

// maxErrorBody bounds the error text kept per kind.
const maxErrorBody = 512

func (s *samples) addError(kind string) { s.addErrorDetail(kind, "") }

// addErrorDetail counts an error of kind and keeps detail (an answer's
// body or an error message) if it is the first of its kind.
func (s *samples) addErrorDetail(kind, detail string) {
	s.errors++
	if s.errorKind == nil {
		s.errorKind = map[string]int{}
	}
	s.errorKind[kind]++
	if _, seen := s.errorBody[kind]; seen || detail == "" {
		return
	}
	if s.errorBody == nil {
		s.errorBody = map[string]string{}
	}
	if len(detail) > maxErrorBody {
		detail = detail[:maxErrorBody] + "…"
	}
	s.errorBody[kind] = detail
}

func (s *samples) merge(o *samples) {
	s.latencies = append(s.latencies, o.latencies...)
	s.ttfb = append(s.ttfb, o.ttfb...)
	s.requests += o.requests
	s.errors += o.errors
	for k, v := range o.errorKind {
		if s.errorKind == nil {
			s.errorKind = map[string]int{}
		}
		s.errorKind[k] += v
	}
	for k, v := range o.errorBody {
		if _, seen := s.errorBody[k]; seen {
			continue
		}
		if s.errorBody == nil {
			s.errorBody = map[string]string{}
		}
		s.errorBody[k] = v
	}
}

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func newRequest(ctx context.Context, t Target, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range t.SecretHeaders {
		req.Header.Set(k, v)
	}
	return req, nil
}

// wantChat is a fragment every non-streamed chat answer must contain, and
// wantMessage every Messages answer.
var (
	wantChat    = []byte(`"object":"chat.completion"`)
	wantMessage = []byte(`"type":"message"`)
)

// answerMark is what an answer to body must contain (nil: the small chat).
func answerMark(body *Body) []byte {
	if body != nil && body.API == agentbody.AnthropicMessages {
		return wantMessage
	}
	return wantChat
}

// closedLoop runs vus workers, each sending one request after the other,
// for warmup (not recorded) then d. It is what k6's VU model does. Each
// request carries ab when not nil, else the small chat.
func closedLoop(ctx context.Context, t Target, ab *Body, vus int, warmup, d time.Duration) *samples {
	tr := newTransport(vus)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	body := chatBody(false)
	if ab != nil {
		body = ab.Data
	}
	path, mark := ab.Path(), answerMark(ab)

	start := time.Now()
	recordFrom := start.Add(warmup)
	end := recordFrom.Add(d)
	per := make([]samples, vus)
	var wg sync.WaitGroup
	for i := range vus {
		wg.Add(1)
		go func(s *samples) {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				// Each VU records at least one request: a stall longer
				// than the stage would otherwise leave it without samples.
				if !t0.Before(end) && s.requests > 0 {
					return
				}
				ok, kind, detail := doChat(ctx, client, t, path, body, mark, &buf)
				if t0.Before(recordFrom) {
					continue
				}
				s.requests++
				if ok {
					s.latencies = append(s.latencies, time.Since(t0))
				} else {
					s.addErrorDetail(kind, detail)
				}
			}
		}(&per[i])
	}
	wg.Wait()
	all := &samples{}
	for i := range per {
		all.merge(&per[i])
	}
	all.elapsed = time.Since(recordFrom)
	return all
}

// doChat sends one chat request; on failure it returns the kind of error
// and what came back (the body, or the error's text).
func doChat(ctx context.Context, client *http.Client, t Target, path string, body, mark []byte, buf *[]byte) (ok bool, kind, detail string) {
	req, err := newRequest(ctx, t, path, body)
	if err != nil {
		return false, "request", err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, errKind(err), err.Error()
	}
	b := bytes.NewBuffer((*buf)[:0])
	_, err = b.ReadFrom(resp.Body)
	resp.Body.Close()
	*buf = b.Bytes()
	if err != nil {
		return false, "read", err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("status_%d", resp.StatusCode), string(*buf)
	}
	if !bytes.Contains(*buf, mark) {
		return false, "bad_body", string(*buf)
	}
	return true, "", ""
}

func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "net_" + oe.Op
	}
	return "transport"
}

// openLoop sends rate requests per second for d with vegeta, whose
// schedule does not wait for answers (no coordinated omission).
func openLoop(ctx context.Context, t Target, rate int, d time.Duration) *samples {
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	for k, v := range t.Headers {
		hdr.Set(k, v)
	}
	for k, v := range t.SecretHeaders {
		hdr.Set(k, v)
	}
	targeter := vegeta.NewStaticTargeter(vegeta.Target{
		Method: http.MethodPost, URL: t.URL + "/v1/chat/completions", Body: chatBody(false), Header: hdr,
	})
	// Enough connections for the requests in flight at the mock's latency.
	conns := rate/5 + 16
	att := vegeta.NewAttacker(vegeta.Timeout(60*time.Second), vegeta.KeepAlive(true),
		vegeta.Connections(conns), vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns*4)))
	s := &samples{}
	start := time.Now()
	res := att.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, t.Name)
	go func() {
		<-ctx.Done()
		att.Stop()
	}()
	for r := range res {
		s.requests++
		// vegeta also sets Error for a non-2xx answer; an answer (Code
		// other than 0) is a status error, not a transport one.
		switch {
		case r.Code != 0 && r.Code != http.StatusOK:
			s.addErrorDetail(fmt.Sprintf("status_%d", r.Code), string(r.Body))
		case r.Error != "":
			s.addErrorDetail("transport", r.Error)
		case !bytes.Contains(r.Body, wantChat):
			s.addErrorDetail("bad_body", string(r.Body))
		default:
			s.latencies = append(s.latencies, r.Latency)
		}
	}
	s.elapsed = time.Since(start)
	return s
}

// streamLoop is closedLoop with "stream": true; it records the time to the
// first body byte and the whole stream's duration.
func streamLoop(ctx context.Context, t Target, vus int, warmup, d time.Duration) *samples {
	tr := newTransport(vus)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	body := chatBody(true)
	start := time.Now()
	recordFrom := start.Add(warmup)
	end := recordFrom.Add(d)
	per := make([]samples, vus)
	var wg sync.WaitGroup
	for i := range vus {
		wg.Add(1)
		go func(s *samples) {
			defer wg.Done()
			// Room for a long answer: 200 chunks of a few hundred bytes.
			buf := make([]byte, 256<<10)
			for ctx.Err() == nil {
				t0 := time.Now()
				// Each VU records at least one request: a stall longer
				// than the stage would otherwise leave it without samples.
				if !t0.Before(end) && s.requests > 0 {
					return
				}
				ttfb, ok, kind, detail := doStream(ctx, client, t, body, buf)
				if t0.Before(recordFrom) {
					continue
				}
				s.requests++
				if ok {
					s.ttfb = append(s.ttfb, ttfb)
					s.latencies = append(s.latencies, time.Since(t0))
				} else {
					s.addErrorDetail(kind, detail)
				}
			}
		}(&per[i])
	}
	wg.Wait()
	all := &samples{}
	for i := range per {
		all.merge(&per[i])
	}
	all.elapsed = time.Since(recordFrom)
	return all
}

var (
	sseFirst = []byte("data: {")
	sseDone  = []byte("data: [DONE]\n\n")
)

// doStream sends one streamed chat request and reads the whole stream; it
// returns the time to the first body byte or, on failure, the kind of error
// and what came back.
func doStream(ctx context.Context, client *http.Client, t Target, body, buf []byte) (ttfb time.Duration, ok bool, kind, detail string) {
	req, err := newRequest(ctx, t, "/v1/chat/completions", body)
	if err != nil {
		return 0, false, "request", err.Error()
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, errKind(err), err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, false, fmt.Sprintf("status_%d", resp.StatusCode), string(b)
	}
	n := 0
	for {
		m, err := resp.Body.Read(buf[n:])
		if m > 0 && ttfb == 0 {
			ttfb = time.Since(t0)
		}
		n += m
		if n == len(buf) {
			return 0, false, "body_too_large", string(buf[:maxErrorBody])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, false, "read", err.Error()
		}
	}
	got := buf[:n]
	if !bytes.HasPrefix(got, sseFirst) || !bytes.HasSuffix(got, sseDone) {
		return 0, false, "bad_stream", string(got)
	}
	return ttfb, true, "", ""
}

// Latency summarises a latency sample in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	q := func(p float64) float64 {
		// Nearest rank.
		i := int(p*float64(len(d))+0.999999) - 1
		i = max(0, min(i, len(d)-1))
		return ms(d[i])
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(d[len(d)-1]), Mean: ms(sum / time.Duration(len(d)))}
}
