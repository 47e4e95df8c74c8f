package limits

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Domain is the rate-limit service domain Switchyard's counters live in.
// The service's own config must declare it (ServiceConfig writes that file).
const Domain = "switchyard"

// Descriptor entry keys: a counter is named by the client key and the budget,
// [{switchyard_key: team-a}, {limit: tokens_per_minute}].
const (
	KeyEntry   = "switchyard_key"
	LimitEntry = "limit"
	// MonthEntry names the calendar month of a usd_per_month counter.
	MonthEntry = "month"
)

// DefaultTimeout bounds one call to the rate-limit service.
const DefaultTimeout = 100 * time.Millisecond

// ErrNoLimit is returned when the service answered but applied no limit to
// a descriptor Switchyard sent: its config lacks the switchyard domain.
var ErrNoLimit = errors.New("the rate-limit service applied no limit; its config must declare domain " + Domain + " (extproc ratelimit-config)")

// GlobalOptions configure a Global limiter.
type GlobalOptions struct {
	// Address is the service's gRPC address: host:port or unix:/path.
	Address string
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Deny refuses requests while the service cannot be asked; otherwise
	// they are admitted.
	Deny bool
}

// Global keeps the counts in Envoy's rate-limit service (envoyproxy/ratelimit)
// so that every replica talking to the same service and Redis shares them.
//
// The service counts integers up to 2^32-1 per window: money is counted in
// micro-dollars, or for a budget above $4294.967295 in the smallest power
// of ten of micro-dollars that fits (usdScale), each charge rounded up to
// that unit.
//
// The budgets travel in each call as the descriptor's limit override, so
// the service's config only declares the domain, and a reload of
// Switchyard's config changes a budget at once. Requests count with
// hits_addend 1 on the requests-per-minute descriptor; token budgets are
// checked with a per-descriptor hits_addend of 0, which the service reads as
// "check without adding"; Charge adds the tokens with hits_addend = tokens.
//
// The service refuses when a count after adding exceeds the limit. For a
// check without adding that means spent > limit, where Local refuses at
// spent >= limit; the token overrides are therefore sent as budget - 1 so
// both refuse once the budget is spent.
//
// A request refused because of a token budget was still counted against
// requests_per_minute by the same call (the service adds to every
// descriptor it is sent): at worst one request of the minute's count for
// each request refused for tokens.
type Global struct {
	client  rlsv3.RateLimitServiceClient
	conn    *grpc.ClientConn
	timeout time.Duration
	deny    bool
}

// NewGlobal returns a limiter over the service at opts.Address. It does not
// connect yet: the first call does, and a service that is down is a
// failure of that call, decided by opts.Deny.
func NewGlobal(opts GlobalOptions) (*Global, error) {
	conn, err := grpc.NewClient(opts.Address,
		// The service listens on loopback or a unix socket beside the gateway.
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting to the rate-limit service %s: %w", opts.Address, err)
	}
	g := &Global{client: rlsv3.NewRateLimitServiceClient(conn), conn: conn, timeout: opts.Timeout, deny: opts.Deny}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	return g, nil
}

// Close closes the connection to the service.
func (g *Global) Close() error {
	return g.conn.Close()
}

// Admit asks the service to count one request of key and check its token
// budgets. When the service cannot answer, the error says why and the
// decision is the failure mode's: admitted, or refused with Which "".
func (g *Global) Admit(ctx context.Context, key string, lim Limits) (Decision, error) {
	if !lim.Any() {
		return Decision{OK: true}, nil
	}
	var ds []*ratelimitv3.RateLimitDescriptor
	var which []string
	var limit, scale []int64
	add := func(name string, budget int64, unit typev3.RateLimitUnit, hits uint64) {
		if budget <= 0 {
			return
		}
		ds = append(ds, descriptor(key, name, budget, unit, hits))
		which, limit, scale = append(which, name), append(limit, budget), append(scale, 1)
	}
	add(RequestsPerMinute, lim.RequestsPerMinute, typev3.RateLimitUnit_MINUTE, 1)
	add(TokensPerMinute, lim.TokensPerMinute, typev3.RateLimitUnit_MINUTE, 0)
	add(TokensPerDay, lim.TokensPerDay, typev3.RateLimitUnit_DAY, 0)
	now := time.Now()
	for _, b := range usdBudgets(lim) {
		ds = append(ds, usdDescriptor(key, b, now, 0))
		which, limit, scale = append(which, b.which), append(limit, b.micro), append(scale, usdScale(b.micro))
	}

	resp, err := g.call(ctx, ds)
	if err == nil && len(resp.GetStatuses()) != len(ds) {
		err = fmt.Errorf("asking the rate-limit service: %d statuses for %d descriptors", len(resp.GetStatuses()), len(ds))
	}
	if err != nil {
		return Decision{OK: !g.deny}, err
	}
	var ok Decision
	for i, st := range resp.GetStatuses() {
		if st.GetCurrentLimit() == nil {
			return Decision{OK: !g.deny}, ErrNoLimit
		}
		d := Decision{Which: which[i], Limit: limit[i], Remaining: int64(st.GetLimitRemaining()), Reset: st.GetDurationUntilReset().AsDuration()}
		if which[i] != RequestsPerMinute {
			d.Remaining = (d.Remaining + 1) * scale[i] // the override was budget - 1, in units of scale
		}
		if which[i] == USDPerMonth {
			d.Reset = monthStart(now).AddDate(0, 1, 0).Sub(now) // the service's window is a year
		}
		if st.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
			d.Remaining = 0
			return d, nil
		}
		if which[i] == RequestsPerMinute {
			ok = d
		}
	}
	ok.OK, ok.Which = true, ""
	return ok, nil
}

// Charge adds a response's tokens and cost to key's budgets in the
// service, in one call.
func (g *Global) Charge(ctx context.Context, key string, lim Limits, s Spent) error {
	var ds []*ratelimitv3.RateLimitDescriptor
	if s.Tokens > 0 && lim.TokensPerMinute > 0 {
		ds = append(ds, descriptor(key, TokensPerMinute, lim.TokensPerMinute, typev3.RateLimitUnit_MINUTE, uint64(s.Tokens)))
	}
	if s.Tokens > 0 && lim.TokensPerDay > 0 {
		ds = append(ds, descriptor(key, TokensPerDay, lim.TokensPerDay, typev3.RateLimitUnit_DAY, uint64(s.Tokens)))
	}
	if s.MicroUSD > 0 {
		now := time.Now()
		for _, b := range usdBudgets(lim) {
			ds = append(ds, usdDescriptor(key, b, now, s.MicroUSD))
		}
	}
	if len(ds) == 0 {
		return nil
	}
	_, err := g.call(ctx, ds)
	return err
}

func (g *Global) call(ctx context.Context, ds []*ratelimitv3.RateLimitDescriptor) (*rlsv3.RateLimitResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := g.client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: Domain, Descriptors: ds})
	if err != nil {
		return nil, fmt.Errorf("asking the rate-limit service: %w", err)
	}
	return resp, nil
}

// descriptor names key's counter for one budget, carrying the budget as
// the limit override and the hits to add.
func descriptor(key, which string, budget int64, unit typev3.RateLimitUnit, hits uint64) *ratelimitv3.RateLimitDescriptor {
	perUnit := budget
	if which != RequestsPerMinute {
		perUnit-- // see Global: refuse once spent >= budget, as Local does
	}
	return &ratelimitv3.RateLimitDescriptor{
		Entries: []*ratelimitv3.RateLimitDescriptor_Entry{
			{Key: KeyEntry, Value: key},
			{Key: LimitEntry, Value: which},
		},
		Limit:      &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: uint32(perUnit), Unit: unit},
		HitsAddend: wrapperspb.UInt64(hits),
	}
}

// usdBudget is one money budget of a key, in micro-dollars.
type usdBudget struct {
	which string
	micro int64
}

func usdBudgets(lim Limits) []usdBudget {
	var bs []usdBudget
	if lim.MicroUSDPerDay > 0 {
		bs = append(bs, usdBudget{USDPerDay, lim.MicroUSDPerDay})
	}
	if lim.MicroUSDPerMonth > 0 {
		bs = append(bs, usdBudget{USDPerMonth, lim.MicroUSDPerMonth})
	}
	return bs
}

// usdScale is the unit a money budget is counted in by the service, in
// micro-dollars: 1, or the smallest power of ten that brings the budget
// within the service's 32-bit limit (a budget above $4294.967295).
func usdScale(micro int64) int64 {
	s := int64(1)
	for micro/s > math.MaxUint32 {
		s *= 10
	}
	return s
}

// usdDescriptor names key's counter for a money budget and adds micro
// micro-dollars to it, rounded up to the budget's unit (usdScale). A
// budget counted in a unit other than micro-dollars names it in the
// counter ("usd_per_day/100"), so that a reload changing the unit starts
// a new count rather than misreading the old one.
//
// A month budget's counter carries the month ("2026-12") and lives in the
// service's year window (the service's MONTH is 30 days from the Unix
// epoch, not a calendar month): it starts afresh on the first of the
// month, and also when the service's year window turns, once a year.
func usdDescriptor(key string, b usdBudget, now time.Time, micro int64) *ratelimitv3.RateLimitDescriptor {
	scale := usdScale(b.micro)
	unit, value := typev3.RateLimitUnit_DAY, b.which
	if scale > 1 {
		value += "/" + strconv.FormatInt(scale, 10)
	}
	entries := []*ratelimitv3.RateLimitDescriptor_Entry{{Key: KeyEntry, Value: key}, {Key: LimitEntry, Value: value}}
	if b.which == USDPerMonth {
		unit = typev3.RateLimitUnit_YEAR
		entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: MonthEntry, Value: now.UTC().Format("2006-01")})
	}
	return &ratelimitv3.RateLimitDescriptor{
		Entries: entries,
		// budget - 1: see Global.
		Limit:      &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: uint32(b.micro/scale - 1), Unit: unit},
		HitsAddend: wrapperspb.UInt64(uint64((micro + scale - 1) / scale)),
	}
}

// ServiceConfig is the rate-limit service's config file for Switchyard: the
// domain only, since every budget travels in the calls.
func ServiceConfig() string {
	return "# envoyproxy/ratelimit config for Switchyard (extproc ratelimit-config).\n" +
		"# The budgets travel in each call from Switchyard's own config; this file\n" +
		"# only declares the domain the counters live in.\n" +
		"domain: " + Domain + "\n"
}
