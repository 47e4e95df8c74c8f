package limits

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fakeService answers ShouldRateLimit from a script and records what it
// was asked, in a form easy to compare.
type fakeService struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu     sync.Mutex
	asked  []string
	answer func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)
}

func (f *fakeService) ShouldRateLimit(_ context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	f.mu.Lock()
	for _, d := range r.Descriptors {
		s := r.Domain
		for _, e := range d.Entries {
			s += " " + e.Key + "=" + e.Value
		}
		s += " limit=" + d.Limit.String() + " hits="
		if d.HitsAddend == nil {
			s += "unset"
		} else {
			s += strconv.FormatUint(d.HitsAddend.Value, 10)
		}
		f.asked = append(f.asked, s)
	}
	f.mu.Unlock()
	return f.answer(r)
}

func startFake(t *testing.T, answer func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)) (*fakeService, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "rls.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeService{answer: answer}
	gs := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(gs, f)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return f, "unix:" + sock
}

// statuses answers each descriptor with the code of the same index.
func statuses(codes ...rlsv3.RateLimitResponse_Code) func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	return func(r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
		for i, d := range r.Descriptors {
			resp.Statuses = append(resp.Statuses, &rlsv3.RateLimitResponse_DescriptorStatus{
				Code:               codes[i],
				CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: d.Limit.RequestsPerUnit},
				LimitRemaining:     7,
				DurationUntilReset: durationpb.New(12 * time.Second),
			})
		}
		return resp, nil
	}
}

func TestGlobalSendsBudgetsAndHits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ok, over := rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT
	f, addr := startFake(t, statuses(ok, over, ok))
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	lim := Limits{RequestsPerMinute: 10, TokensPerMinute: 1000, TokensPerDay: 50000}

	d, err := g.Admit(ctx, "team-a", lim)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Decision{Which: TokensPerMinute, Limit: 1000, Reset: 12 * time.Second}, d); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
	if err := g.Charge(ctx, "team-a", lim, Spent{Tokens: 321}); err != nil {
		t.Fatal(err)
	}
	// A request counts 1; token budgets are checked with 0 (check without
	// adding) and sent as budget - 1; Charge adds the tokens.
	want := []string{
		"switchyard switchyard_key=team-a limit=requests_per_minute limit=requests_per_unit:10 unit:MINUTE hits=1",
		"switchyard switchyard_key=team-a limit=tokens_per_minute limit=requests_per_unit:999 unit:MINUTE hits=0",
		"switchyard switchyard_key=team-a limit=tokens_per_day limit=requests_per_unit:49999 unit:DAY hits=0",
		"switchyard switchyard_key=team-a limit=tokens_per_minute limit=requests_per_unit:999 unit:MINUTE hits=321",
		"switchyard switchyard_key=team-a limit=tokens_per_day limit=requests_per_unit:49999 unit:DAY hits=321",
	}
	if diff := cmp.Diff(want, normalize(f.asked)); diff != "" {
		t.Errorf("asked (-want +got):\n%s", diff)
	}
}

// normalize evens out the spaces prototext puts in its String forms.
func normalize(v []string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		b := []byte{}
		space := false
		for _, c := range []byte(s) {
			if c == ' ' {
				if !space {
					b = append(b, c)
				}
				space = true
				continue
			}
			space = false
			b = append(b, c)
		}
		out[i] = string(b)
	}
	return out
}

func TestGlobalAdmitted(t *testing.T) {
	t.Parallel()
	_, addr := startFake(t, statuses(rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK))
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d, err := g.Admit(context.Background(), "k", Limits{RequestsPerMinute: 10, TokensPerDay: 5})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Decision{OK: true, Limit: 10, Remaining: 7, Reset: 12 * time.Second}, d); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
}

func TestGlobalFailureModes(t *testing.T) {
	t.Parallel()
	failing := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return nil, status.Error(codes.Unavailable, "redis down")
	}
	slow := func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		time.Sleep(2 * time.Second)
		return nil, errors.New("too late")
	}
	noDomain := func(r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return &rlsv3.RateLimitResponse{Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: rlsv3.RateLimitResponse_OK}}}, nil
	}
	_, failAddr := startFake(t, failing)
	_, slowAddr := startFake(t, slow)
	_, noDomainAddr := startFake(t, noDomain)
	for _, tc := range []struct {
		name    string
		address string
		timeout time.Duration
		deny    bool
	}{
		{name: "service errors, allow", address: failAddr},
		{name: "service errors, deny", address: failAddr, deny: true},
		{name: "service slow, allow", address: slowAddr, timeout: 50 * time.Millisecond},
		{name: "service slow, deny", address: slowAddr, timeout: 50 * time.Millisecond, deny: true},
		{name: "no service, allow", address: "unix:" + filepath.Join(t.TempDir(), "none.sock")},
		{name: "no service, deny", address: "unix:" + filepath.Join(t.TempDir(), "none.sock"), deny: true},
		{name: "domain missing, allow", address: noDomainAddr},
		{name: "domain missing, deny", address: noDomainAddr, deny: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := NewGlobal(GlobalOptions{Address: tc.address, Timeout: tc.timeout, Deny: tc.deny})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			start := time.Now()
			d, err := g.Admit(context.Background(), "k", Limits{RequestsPerMinute: 1})
			if err == nil {
				t.Fatal("no error reported")
			}
			if d.OK == tc.deny || d.Which != "" {
				t.Errorf("decision %+v with deny %v", d, tc.deny)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v: the timeout did not bound the call", took)
			}
		})
	}
}

func TestGlobalMoneyBudgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ok := rlsv3.RateLimitResponse_OK
	f, addr := startFake(t, statuses(ok, ok))
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// $2.50 a day in micro-dollars; $10,000 a month is past 2^32
	// micro-dollars: counted in units of 10.
	lim := Limits{MicroUSDPerDay: 2_500_000, MicroUSDPerMonth: 10_000_000_000}
	d, err := g.Admit(ctx, "team-a", lim)
	if err != nil {
		t.Fatal(err)
	}
	if !d.OK {
		t.Fatalf("admitted: %+v", d)
	}
	if err := g.Charge(ctx, "team-a", lim, Spent{Tokens: 40, MicroUSD: 1234}); err != nil {
		t.Fatal(err)
	}
	month := time.Now().UTC().Format("2006-01")
	want := []string{
		"switchyard switchyard_key=team-a limit=usd_per_day limit=requests_per_unit:2499999 unit:DAY hits=0",
		"switchyard switchyard_key=team-a limit=usd_per_month/10 month=" + month + " limit=requests_per_unit:999999999 unit:YEAR hits=0",
		"switchyard switchyard_key=team-a limit=usd_per_day limit=requests_per_unit:2499999 unit:DAY hits=1234",
		// 1234 micro-dollars rounded up to the unit of 10.
		"switchyard switchyard_key=team-a limit=usd_per_month/10 month=" + month + " limit=requests_per_unit:999999999 unit:YEAR hits=124",
	}
	if diff := cmp.Diff(want, normalize(f.asked)); diff != "" {
		t.Errorf("asked (-want +got):\n%s", diff)
	}
}

func TestUSDScale(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ micro, want int64 }{
		{1, 1}, {4_294_967_295, 1}, {4_294_967_296, 10}, {10_000_000_000_000, 10_000},
	} {
		if got := usdScale(c.micro); got != c.want {
			t.Errorf("usdScale(%d) = %d, want %d", c.micro, got, c.want)
		}
	}
}
