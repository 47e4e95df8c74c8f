package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// Redis names.
const (
	redisKeys    = "switchyard:keys"         // hash: key name -> Key as JSON
	redisTeams   = "switchyard:teams"        // hash: team name -> Team as JSON
	redisVersion = "switchyard:keys:version" // counter, incremented by every change
)

// Redis keeps the state in Redis, shared by every replica. Each change is
// one MULTI/EXEC that also increments a version counter, guarded by WATCH
// so that two replicas changing at once cannot lose either change; replicas
// poll the counter and reload when it moves.
type Redis struct {
	read *redisConn
	// write is used only under writeMu: WATCH holds for the connection
	// until EXEC.
	writeMu sync.Mutex
	write   *redisConn
}

// RedisOptions configure a Redis backend.
type RedisOptions struct {
	// Timeout bounds each call.
	Timeout time.Duration
	// Password is sent with AUTH on each connection; "" for none.
	Password string
}

// NewRedis returns a backend over the Redis at addr (host:port or
// unix:/path). It connects on first use.
func NewRedis(addr string, o RedisOptions) *Redis {
	conn := func() *redisConn { return &redisConn{addr: addr, timeout: o.Timeout, password: o.Password} }
	return &Redis{read: conn(), write: conn()}
}

// Load reads the state in one transaction, so keys and teams agree with
// the version.
func (r *Redis) Load(ctx context.Context) (State, int64, error) {
	return r.load(ctx, r.read)
}

func (r *Redis) load(ctx context.Context, c *redisConn) (State, int64, error) {
	out, err := c.pipeline(ctx, []string{"MULTI"}, []string{"GET", redisVersion}, []string{"HGETALL", redisKeys}, []string{"HGETALL", redisTeams}, []string{"EXEC"})
	if err != nil {
		return State{}, 0, err
	}
	res, ok := out[4].([]any)
	if !ok || len(res) != 3 {
		return State{}, 0, fmt.Errorf("reading key store from redis: unexpected reply %v", out[4])
	}
	return decodeState(res)
}

// loadWatched watches the version and reads the state on the write
// connection, in one pipeline: plain reads, since an EXEC here would end
// the WATCH; the EXEC that writes fails if anything changed since.
func (r *Redis) loadWatched(ctx context.Context) (State, int64, error) {
	res, err := r.write.pipeline(ctx, []string{"WATCH", redisVersion}, []string{"GET", redisVersion}, []string{"HGETALL", redisKeys}, []string{"HGETALL", redisTeams})
	if err != nil {
		return State{}, 0, err
	}
	if e, ok := res[0].(redisError); ok {
		return State{}, 0, e
	}
	return decodeState(res[1:])
}

// decodeState decodes the replies to GET version, HGETALL keys and
// HGETALL teams.
func decodeState(res []any) (State, int64, error) {
	for _, v := range res {
		if e, ok := v.(redisError); ok {
			return State{}, 0, e
		}
	}
	var version int64
	if s, ok := res[0].(string); ok {
		if _, err := fmt.Sscan(s, &version); err != nil {
			return State{}, 0, fmt.Errorf("reading key store version: %w", err)
		}
	}
	s := newState()
	if err := decodeHash(res[1], s.Keys); err != nil {
		return State{}, 0, err
	}
	if err := decodeHash(res[2], s.Teams); err != nil {
		return State{}, 0, err
	}
	return s, version, nil
}

func decodeHash[V any](reply any, into map[string]V) error {
	fields, _ := reply.([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		raw, _ := fields[i+1].(string)
		var v V
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return fmt.Errorf("decoding %q from redis: %w", name, err)
		}
		into[name] = v
	}
	return nil
}

// Version reads the counter.
func (r *Redis) Version(ctx context.Context) (int64, error) {
	v, err := r.read.do(ctx, "GET", redisVersion)
	if err != nil || v == nil {
		return 0, err
	}
	var n int64
	_, err = fmt.Sscan(v.(string), &n)
	return n, err
}

// errConflict: another replica changed the store between our read and
// write; the update is tried again.
var errConflict = errors.New("the key store changed during the update")

// Update reads, applies fn and writes back only what changed, retrying
// when another replica changed the store in between.
func (r *Redis) Update(ctx context.Context, fn func(*State) error) (State, int64, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	for range 10 {
		s, v, err := r.tryUpdate(ctx, fn)
		if !errors.Is(err, errConflict) {
			return s, v, err
		}
	}
	return State{}, 0, errConflict
}

func (r *Redis) tryUpdate(ctx context.Context, fn func(*State) error) (State, int64, error) {
	old, _, err := r.loadWatched(ctx)
	if err != nil {
		return State{}, 0, err
	}
	s := old.clone()
	if err := fn(&s); err != nil {
		_, _ = r.write.do(ctx, "UNWATCH")
		return State{}, 0, err
	}
	cmds := [][]string{{"MULTI"}}
	cmds = appendDiff(cmds, redisKeys, old.Keys, s.Keys)
	cmds = appendDiff(cmds, redisTeams, old.Teams, s.Teams)
	cmds = append(cmds, []string{"INCR", redisVersion}, []string{"EXEC"})
	out, err := r.write.pipelineWatched(ctx, cmds...)
	if err != nil {
		return State{}, 0, err
	}
	exec := out[len(out)-1]
	if exec == nil {
		return State{}, 0, errConflict
	}
	res, ok := exec.([]any)
	if !ok || len(res) == 0 {
		return State{}, 0, fmt.Errorf("writing key store to redis: unexpected reply %v", exec)
	}
	for _, v := range res {
		if e, ok := v.(redisError); ok {
			return State{}, 0, e
		}
	}
	version, _ := res[len(res)-1].(int64)
	return s, version, nil
}

// appendDiff adds the HSET and HDEL that turn old into cur.
func appendDiff[V any](cmds [][]string, hash string, old, cur map[string]V) [][]string {
	set := []string{"HSET", hash}
	for name, v := range cur {
		if o, ok := old[name]; ok && reflect.DeepEqual(o, v) {
			continue
		}
		b, _ := json.Marshal(v)
		set = append(set, name, string(b))
	}
	if len(set) > 2 {
		cmds = append(cmds, set)
	}
	del := []string{"HDEL", hash}
	for name := range old {
		if _, ok := cur[name]; !ok {
			del = append(del, name)
		}
	}
	if len(del) > 2 {
		cmds = append(cmds, del)
	}
	return cmds
}

// Close closes the connections.
func (r *Redis) Close() error {
	r.read.close()
	r.write.close()
	return nil
}
