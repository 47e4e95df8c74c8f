package bedrock

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// refreshBefore is how long before they expire credentials are replaced;
// retryEvery how soon a failed fetch is tried again.
const (
	refreshBefore = 5 * time.Minute
	retryEvery    = 5 * time.Second
	firstFetch    = 2 * time.Second
)

// Credentials holds the current credentials of one region and profile,
// fetched from the AWS default chain by a goroutine of its own: reading
// them never waits for the network.
type Credentials struct {
	current  atomic.Pointer[aws.Credentials]
	problem  atomic.Pointer[string]
	provider aws.CredentialsProvider
	// grace is how much earlier than their real expiry the provider says
	// credentials expire: the SDK's cache moves Expires back by its expiry
	// window (refreshBefore), so that it fetches new ones that early.
	grace time.Duration
	// region and profile, for the log.
	region, profile string
}

var (
	sourcesMu sync.Mutex
	sources   = map[string]*Credentials{}
	noFetch   bool
	logger    atomic.Pointer[slog.Logger]
)

// SetLogger is where failures to fetch credentials are logged (their
// detail can name internal endpoints, so clients only learn that there are
// none); nil: nowhere.
func SetLogger(l *slog.Logger) { logger.Store(l) }

// NoFetch makes For return credentials that are never fetched, for a
// process that only reads the configuration (rendering Envoy's).
func NoFetch() {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	noFetch = true
}

// For returns the credentials of region and profile ("" for the default
// chain's choice), shared by every config that names them, so that a
// reload keeps what was fetched. The first call waits briefly for a first
// fetch (environment and files answer at once).
func For(region, profile string) *Credentials { return ForRole(region, profile, "") }

// ForRole is For with the role roleARN assumed through STS ("" for none)
// with the credentials of region and profile, kept fresh the same way.
func ForRole(region, profile, roleARN string) *Credentials {
	key := region + "\x00" + profile + "\x00" + roleARN
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	if c, ok := sources[key]; ok {
		return c
	}
	if noFetch {
		return &Credentials{}
	}
	c := newCredentials(region, profile, roleARN)
	if c.provider != nil {
		// A configuration that could not be loaded (a profile not in the
		// files yet) is tried again at the next reload.
		sources[key] = c
	}
	return c
}

func newCredentials(region, profile, roleARN string) *Credentials {
	c := &Credentials{}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region),
		awsconfig.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = refreshBefore })}
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		c.setProblem(region, profile, "loading the AWS configuration: "+err.Error())
		return c
	}
	c.region, c.profile = region, profile
	c.provider, c.grace = cfg.Credentials, refreshBefore
	if roleARN != "" {
		c.provider = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN),
			func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = refreshBefore })
	}
	done := make(chan struct{})
	go c.keepFresh(done)
	select {
	case <-done:
	case <-time.After(firstFetch):
	}
	return c
}

// keepFresh fetches credentials now and again before they expire, for the
// life of the process; done closes after the first attempt.
func (c *Credentials) keepFresh(done chan struct{}) {
	first := true
	for {
		wait := c.fetch()
		if first {
			close(done)
			first = false
		}
		time.Sleep(wait)
	}
}

// fetch gets credentials once and returns how long to wait before the next.
func (c *Credentials) fetch() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	creds, err := c.provider.Retrieve(ctx)
	if err != nil {
		c.setProblem(c.region, c.profile, "fetching AWS credentials: "+err.Error())
		return retryEvery
	}
	c.current.Store(&creds)
	c.problem.Store(nil)
	if !creds.CanExpire {
		return time.Hour // static ones: a long nap, then a look at the files again
	}
	return max(time.Until(creds.Expires.Add(c.grace-refreshBefore)), retryEvery)
}

// setProblem notes that there are no credentials and logs why, once per
// new reason.
func (c *Credentials) setProblem(region, profile, p string) {
	if old := c.problem.Swap(&p); old != nil && *old == p {
		return
	}
	if l := logger.Load(); l != nil {
		l.Warn("no AWS credentials for Bedrock", slog.String("region", region), slog.String("profile", profile), slog.String("reason", p))
	}
}

// ErrNoCredentials is returned while no credentials could be fetched.
var ErrNoCredentials = errors.New("no AWS credentials (the gateway's log says why)")

// Get returns the current credentials, or ErrNoCredentials (the reason is
// in the log).
func (c *Credentials) Get() (aws.Credentials, error) {
	if cr := c.current.Load(); cr != nil && (!cr.CanExpire || time.Now().Before(cr.Expires.Add(c.grace))) {
		return *cr, nil
	}
	return aws.Credentials{}, ErrNoCredentials
}

// Static returns credentials that never change, for tests and benchmarks.
func Static(creds aws.Credentials) *Credentials {
	c := &Credentials{}
	c.current.Store(&creds)
	return c
}

// Preset makes For return c for region and profile: for tests, and for
// programs that bring credentials of their own.
func Preset(region, profile string, c *Credentials) {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	sources[region+"\x00"+profile+"\x00"] = c
}

// StaticKeys returns the credentials of a static key pair (token "" for
// none), as a credential pool names them.
func StaticKeys(accessKeyID, secret, token string) *Credentials {
	return Static(aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secret, SessionToken: token, Source: "switchyard"})
}
