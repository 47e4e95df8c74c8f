package processor

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/routing"
)

// A flight is a request whose later streams must find it: its attempts (a
// route with fallbacks) or its answer (counted or translated). It is kept
// by the gateway's own id, which Envoy hands those streams in the dynamic
// metadata (routing.RequestNamespace), from the decision to the request's
// end. The client's x-request-id plays no part: a client or a hook can set
// it to anything.
type flight struct {
	id      string
	started time.Time
	// router is the config snapshot the request was planned with: every
	// attempt takes its key, model and retry policy from it, whatever was
	// reloaded since.
	router *routing.Router
	// attempts is nil unless the request has fallbacks.
	attempts *attemptPlan
	// log is the request's log record as the decision left it; the stream
	// that ends the request completes and writes it.
	log requestLog
	// trace is the request's span, which that stream ends too; nil when
	// not traced.
	trace *requestTrace

	// Guarded by the flight table's lock.
	job      *responseJob // the answer's reading, taken once; nil when not read
	outcomes []attemptOutcome
	ended    time.Time // when the request was answered; zero before
}

// attemptPlan is what each attempt of a request with fallbacks needs: the
// client's path, API and model, the retry policy and each attempt's
// provider and model. It holds no credential and no body: each attempt
// takes its provider's key from the flight's snapshot, and Envoy replays
// the body.
type attemptPlan struct {
	Path  string
	API   config.API
	Model string // the model in the body every attempt replays
	Retry *routing.RetryPolicy
	// Usage: the answer's tokens are counted (the attempt that answers
	// reads its body).
	Usage bool
	// Upstream is the API the attempts speak when it is not the client's
	// (API): the body is translated already, Path is the upstream API's.
	Upstream config.API
	// Beta is the client's anthropic-beta header, for Bedrock attempts;
	// Beta and Version go again on an attempt to Anthropic itself
	// (Attempt.restoreAnthropic).
	Beta, Version string
	Attempts      []attemptRef
}

type attemptRef struct {
	Provider string
	Model    string
	Key      string // the pool key's source, never the key
}

// upstreamAPI is the API the attempts speak.
func (h *attemptPlan) upstreamAPI() config.API {
	if h.Upstream != "" {
		return h.Upstream
	}
	return h.API
}

// attemptOutcome is one attempt: the provider, the status it answered (0
// for none: refused, reset or silent) and how long it took.
type attemptOutcome struct {
	Provider string        `json:"provider"`
	Model    string        `json:"model"`
	Key      string        `json:"key,omitempty"` // the pool key's source
	Status   int           `json:"status,omitempty"`
	Duration time.Duration `json:"-"`
	Ms       float64       `json:"ms"`
}

const (
	// maxFlightAge drops a flight whose streams never came or never
	// ended (client gone before the upstream, Envoy reset): longer than
	// any request may stay silent before its answer's headers (Envoy's
	// upstream idle timeout is at most envoy.MaxUpstreamIdleTimeout).
	maxFlightAge = envoy.MaxUpstreamIdleTimeout + time.Minute
	// endedFlightAge keeps an answered request with fallbacks a little
	// longer, for an attempt Envoy still starts after it (a reset right
	// after a 200 can be retried while nothing has reached the client).
	endedFlightAge = 30 * time.Second
	sweepInterval  = time.Second
)

// flightTable holds the flights in progress.
type flightTable struct {
	mu        sync.Mutex
	flights   map[string]*flight
	lastSweep time.Time
	// expired counts flights dropped at maxFlightAge.
	expired func()
}

func newFlightTable(expired func()) *flightTable {
	return &flightTable{flights: map[string]*flight{}, expired: expired}
}

// flightIDs are the gateway's own request ids: a prefix random per process
// (several extprocs may serve one Envoy) and a counter.
var (
	flightPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		return hex.EncodeToString(b[:]) + "-"
	}()
	flightSeq atomic.Uint64
)

func newFlightID() string { return flightPrefix + strconv.FormatUint(flightSeq.Add(1), 36) }

// add starts keeping f, under a new id.
func (t *flightTable) add(f *flight) {
	f.id = newFlightID()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(f.started)
	t.flights[f.id] = f
}

// takeJob hands the request's answer to the stream that reads it. A
// request without fallbacks has one such stream and nothing left for
// anyone after it: it is dropped. With fallbacks, each attempt whose answer
// would go to the client reads a copy: Envoy retries an attempt reset
// right after its 200 (nothing reached the client), and the next answer
// is the one the client gets, to translate and count.
func (t *flightTable) takeJob(id string) (*flight, *responseJob) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.flights[id]
	if f == nil {
		return nil, nil
	}
	j := f.job
	if f.attempts == nil {
		f.job = nil
		delete(t.flights, id)
		return f, j
	}
	if j == nil {
		return f, nil
	}
	c := *j
	return f, &c
}

// beginAttempt notes the start of attempt n (from 1) of the request and
// returns its flight, and the outcome of the attempt before if there was
// one. A flight without attempts (another kind of request's) is not one.
func (t *flightTable) beginAttempt(id string, n int, now time.Time) (f *flight, prev attemptOutcome, hadPrev bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	f = t.flights[id]
	if f == nil || f.attempts == nil {
		return nil, prev, false
	}
	if len(f.outcomes) > 0 && n > 1 {
		prev, hadPrev = f.outcomes[len(f.outcomes)-1], true
	}
	if n >= 1 && n <= len(f.attempts.Attempts) {
		ref := f.attempts.Attempts[n-1]
		f.outcomes = append(f.outcomes, attemptOutcome{Provider: ref.Provider, Model: ref.Model, Key: ref.Key})
	}
	return f, prev, hadPrev
}

// answered records the status of the flight's latest attempt.
func (t *flightTable) answered(f *flight, status int, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(f.outcomes) > 0 {
		o := &f.outcomes[len(f.outcomes)-1]
		o.Status, o.Duration, o.Ms = status, took, float64(took.Microseconds())/1000
	}
}

// endAttempts marks the request answered and returns its attempts.
func (t *flightTable) endAttempts(f *flight, now time.Time) []attemptOutcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	f.ended = now
	return slices.Clone(f.outcomes)
}

// len is how many flights are kept.
func (t *flightTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.flights)
}

// sweepLocked drops, at most once a sweepInterval, the flights that ended
// endedFlightAge ago and those older than maxFlightAge.
func (t *flightTable) sweepLocked(now time.Time) {
	if now.Sub(t.lastSweep) <= sweepInterval {
		return
	}
	t.lastSweep = now
	for id, f := range t.flights {
		switch {
		case !f.ended.IsZero():
			if now.Sub(f.ended) > endedFlightAge {
				delete(t.flights, id)
			}
		case now.Sub(f.started) > maxFlightAge:
			delete(t.flights, id)
			if t.expired != nil {
				t.expired()
			}
			if f.trace != nil {
				// No stream will end it: it ends here, so it is exported.
				f.trace.span.Abandoned(now)
			}
		}
	}
}
