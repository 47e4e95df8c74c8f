package keys

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis names.
const (
	redisKeys    = "switchyard:keys"         // hash: key name -> Key as JSON
	redisTeams   = "switchyard:teams"        // hash: team name -> Team as JSON
	redisVersion = "switchyard:keys:version" // counter, incremented by every change
	redisChanged = "switchyard:keys:changed" // channel: a message after every change
)

// maxUpdateAttempts bounds the retries of an update that keeps losing
// its WATCH to other replicas.
const maxUpdateAttempts = 10

// Redis keeps the state in Redis, shared by every replica. Each change is
// one MULTI/EXEC that also increments a version counter, guarded by WATCH
// so that two replicas changing at once cannot lose either change, and
// publishes a message that tells the other replicas to reload at once;
// they also poll the counter, for a message lost while a subscription
// reconnects.
type Redis struct {
	c *redis.Client
}

// RedisOptions configure a Redis backend.
type RedisOptions struct {
	// Timeout bounds dialing and each read and write; 0: go-redis's
	// defaults. A timeout set in a URL's query wins.
	Timeout time.Duration
	// Password authenticates each connection; "" keeps the URL's, if any.
	Password string
	// CAFile is a PEM file of the CAs that sign the server's certificate
	// (rediss:// only); "": the system's roots.
	CAFile string
}

// NewRedis returns a backend over the Redis at addr: host:port,
// unix:/path, or a redis://, rediss:// (TLS) or unix:// URL. It connects
// on first use, through a pool of connections.
func NewRedis(addr string, o RedisOptions) (*Redis, error) {
	opt, err := redisOptions(addr, o)
	if err != nil {
		return nil, err
	}
	return &Redis{c: redis.NewClient(opt)}, nil
}

// redisOptions turns an address and the options into go-redis's.
func redisOptions(addr string, o RedisOptions) (*redis.Options, error) {
	var opt *redis.Options
	switch {
	case strings.Contains(addr, "://"):
		p, err := redis.ParseURL(addr)
		if err != nil {
			// A url.Error quotes the whole URL, password included.
			if ue := (*url.Error)(nil); errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("reading the Redis URL: %w", err)
		}
		opt = p
	case strings.HasPrefix(addr, "unix:"):
		opt = &redis.Options{Network: "unix", Addr: strings.TrimPrefix(addr, "unix:")}
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("reading the Redis address %q: want host:port, unix:/path or a redis://, rediss:// or unix:// URL", addr)
		}
		opt = &redis.Options{Network: "tcp", Addr: addr}
	}
	if o.Password != "" {
		opt.Password = o.Password
	}
	if o.CAFile != "" {
		if opt.TLSConfig == nil {
			return nil, errors.New("a CA file for Redis needs a rediss:// address")
		}
		pool, err := readCAs(o.CAFile)
		if err != nil {
			return nil, err
		}
		opt.TLSConfig.RootCAs = pool
	}
	setDefault(&opt.DialTimeout, o.Timeout)
	setDefault(&opt.ReadTimeout, o.Timeout)
	setDefault(&opt.WriteTimeout, o.Timeout)
	// A call's context deadline bounds it too; one retry covers a pooled
	// connection the server closed while idle, and one dial per attempt
	// lets a Redis that is down show in the next poll rather than seconds
	// later.
	opt.ContextTimeoutEnabled = true
	setDefault(&opt.MaxRetries, 1)
	setDefault(&opt.DialerRetries, 1)
	// The poll, the admin API's reads and its changes: a few at a time.
	setDefault(&opt.PoolSize, 4)
	return opt, nil
}

func setDefault[T comparable](field *T, v T) {
	var zero T
	if *field == zero {
		*field = v
	}
}

func readCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Redis CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading the Redis CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// Load reads the state in one transaction, so keys and teams agree with
// the version.
func (r *Redis) Load(ctx context.Context) (State, int64, error) {
	var c stateCmds
	_, err := r.c.TxPipelined(ctx, c.queue(ctx))
	if err != nil && !errors.Is(err, redis.Nil) {
		return State{}, 0, err
	}
	return c.decode()
}

// stateCmds are the reads of the version and both hashes, queued on a
// pipeline or a transaction.
type stateCmds struct {
	version     *redis.StringCmd
	keys, teams *redis.MapStringStringCmd
}

func (c *stateCmds) queue(ctx context.Context) func(redis.Pipeliner) error {
	return func(p redis.Pipeliner) error {
		c.version = p.Get(ctx, redisVersion)
		c.keys = p.HGetAll(ctx, redisKeys)
		c.teams = p.HGetAll(ctx, redisTeams)
		return nil
	}
}

func (c *stateCmds) decode() (State, int64, error) {
	version, err := c.version.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return State{}, 0, fmt.Errorf("reading key store version: %w", err)
	}
	s := newState()
	if err := decodeHash(c.keys.Val(), s.Keys); err != nil {
		return State{}, 0, err
	}
	if err := decodeHash(c.teams.Val(), s.Teams); err != nil {
		return State{}, 0, err
	}
	return s, version, nil
}

func decodeHash[V any](fields map[string]string, into map[string]V) error {
	for name, raw := range fields {
		var v V
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return fmt.Errorf("decoding %q from redis: %w", name, err)
		}
		into[name] = v
	}
	return nil
}

// Version reads the counter; 0 before the first change.
func (r *Redis) Version(ctx context.Context) (int64, error) {
	n, err := r.c.Get(ctx, redisVersion).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// errConflict: other replicas kept changing the store between our read
// and write, maxUpdateAttempts times in a row.
var errConflict = errors.New("the key store changed during the update")

// Update reads, applies fn and writes back only what changed, trying again
// when another replica changed the store in between (the EXEC fails with
// redis.TxFailedErr: the WATCHed version moved).
func (r *Redis) Update(ctx context.Context, fn func(*State) error) (State, int64, error) {
	for range maxUpdateAttempts {
		var (
			s       State
			version int64
		)
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			var err error
			s, version, err = tryUpdate(ctx, tx, fn)
			return err
		}, redisVersion)
		if !errors.Is(err, redis.TxFailedErr) {
			return s, version, err
		}
	}
	return State{}, 0, errConflict
}

// tryUpdate runs on the connection that holds the WATCH: plain pipelined
// reads (an EXEC here would end the WATCH), fn, then one MULTI/EXEC with
// the difference and the version's increment.
func tryUpdate(ctx context.Context, tx *redis.Tx, fn func(*State) error) (State, int64, error) {
	var c stateCmds
	if _, err := tx.Pipelined(ctx, c.queue(ctx)); err != nil && !errors.Is(err, redis.Nil) {
		return State{}, 0, err
	}
	old, _, err := c.decode()
	if err != nil {
		return State{}, 0, err
	}
	s := old.clone()
	if err := fn(&s); err != nil {
		return State{}, 0, err
	}
	var incr *redis.IntCmd
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		writeDiff(ctx, p, redisKeys, old.Keys, s.Keys)
		writeDiff(ctx, p, redisTeams, old.Teams, s.Teams)
		incr = p.Incr(ctx, redisVersion)
		p.Publish(ctx, redisChanged, "")
		return nil
	})
	if err != nil {
		return State{}, 0, err
	}
	return s, incr.Val(), nil
}

// writeDiff queues the HSET and HDEL that turn old into cur.
func writeDiff[V any](ctx context.Context, p redis.Pipeliner, hash string, old, cur map[string]V) {
	var set []any
	for name, v := range cur {
		if o, ok := old[name]; ok && reflect.DeepEqual(o, v) {
			continue
		}
		b, _ := json.Marshal(v)
		set = append(set, name, string(b))
	}
	if len(set) > 0 {
		p.HSet(ctx, hash, set...)
	}
	var del []string
	for name := range old {
		if _, ok := cur[name]; !ok {
			del = append(del, name)
		}
	}
	if len(del) > 0 {
		p.HDel(ctx, hash, del...)
	}
}

// Changes sends after each change any replica makes, as Redis publishes
// it, until ctx ends. go-redis resubscribes after a lost connection; what
// was published meanwhile is lost, and the store's poll finds it.
func (r *Redis) Changes(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	sub := r.c.Subscribe(ctx, redisChanged)
	go func() {
		defer sub.Close()
		in := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default: // a reload is due already
				}
			}
		}
	}()
	return out
}

// Close closes the pool's connections.
func (r *Redis) Close() error { return r.c.Close() }

// SetRedisLogger sends go-redis's own messages (a failed dial, a dropped
// connection) to log at debug level: the store already reports an
// unreachable Redis once, and go-redis's default writes plain text to
// stderr. go-redis has one logger per process.
func SetRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.DebugContext(ctx, "redis client", "msg_detail", fmt.Sprintf(format, v...))
	}
}
