package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seen is what a fake upstream received, sent back in its response so the
// test can check exactly what Envoy forwarded.
type seen struct {
	Upstream      string            `json:"upstream"`
	Method        string            `json:"method"`
	Path          string            `json:"path"`
	Headers       map[string]string `json:"headers"`
	ContentLength int64             `json:"content_length"`
	BodyLen       int               `json:"body_len"`
	Model         string            `json:"model"`
	Body          string            `json:"body"`
}

type upstreamReply struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Seen   seen   `json:"seen"`
}

// fakeUpstream answers like a provider: JSON for plain requests, SSE chunks
// (x-test-chunks of them, x-test-interval-ms apart) when the body asks to
// stream. It refuses a body it cannot parse, as a real provider would.
type fakeUpstream struct {
	name string
	addr string // host:port
}

func startUpstream(t testing.TB, name string) *fakeUpstream {
	u := &fakeUpstream{name: name}
	srv := httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(srv.Close)
	u.addr = srv.Listener.Addr().String()
	return u
}

func (u *fakeUpstream) port() int {
	p, _ := strconv.Atoi(u.addr[strings.LastIndexByte(u.addr, ':')+1:])
	return p
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	s := seen{Upstream: u.name, Method: r.Method, Path: r.URL.RequestURI(), Headers: map[string]string{},
		ContentLength: r.ContentLength, BodyLen: len(body), Body: string(body)}
	for k, v := range r.Header {
		s.Headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"upstream_error":%q}`, err.Error())
		return
	}
	s.Model = req.Model
	if req.Stream {
		u.stream(w, r, s)
		return
	}
	w.Header().Set("content-type", "application/json")
	w.Header().Set("openai-organization", "org-operator") // as OpenAI names the key's account
	json.NewEncoder(w).Encode(upstreamReply{Object: "chat.completion", Model: req.Model, Seen: s})
}

func (u *fakeUpstream) stream(w http.ResponseWriter, r *http.Request, s seen) {
	chunks, _ := strconv.Atoi(r.Header.Get("x-test-chunks"))
	if chunks <= 0 {
		chunks = 3
	}
	interval, _ := strconv.Atoi(r.Header.Get("x-test-interval-ms"))
	w.Header().Set("content-type", "text/event-stream")
	w.Header().Set("cache-control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	for i := 0; i < chunks; i++ {
		if i > 0 {
			time.Sleep(time.Duration(interval) * time.Millisecond)
		}
		fmt.Fprintf(w, "data: {\"object\":\"chat.completion.chunk\",\"model\":%q,\"index\":%d,\"sent_unix_nano\":%d}\n\n", s.Model, i, time.Now().UnixNano())
		fl.Flush()
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

// upstreamSaw decodes the fake upstream's reply.
func upstreamSaw(t testing.TB, r result) seen {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var rep upstreamReply
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatalf("upstream reply is not JSON: %v\n%s", err, r.body)
	}
	return rep.Seen
}
