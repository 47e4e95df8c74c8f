package routing

import (
	"crypto/sha256"
	"time"

	"switchyard/config"
)

// Digest is the SHA-256 of a client key. Keys are found by their digest in
// a map, so finding one costs the same with 10 keys or 1,000,000, and
// nothing but digests needs to be kept (see README, "Keys and teams").
type Digest [sha256.Size]byte

// DigestOf returns the digest of a presented key.
func DigestOf(key string) Digest {
	// A key of usual length is hashed from a stack buffer, so Authenticate
	// does not allocate.
	var buf [256]byte
	if len(key) <= len(buf) {
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}

// ClientKey is one client key as a key store holds it: its digest, never
// the key itself.
type ClientKey struct {
	Name   string
	Digest Digest
	// Team names the key's team ("" for none); the team's budgets apply
	// to the key on top of its own.
	Team       string
	TeamLimits config.LimitsConfig
	// Models are the allowed model patterns; empty allows every model.
	Models []string
	Limits config.LimitsConfig
	// LoopGuard replaces the config's top-level loop guard; nil keeps it.
	LoopGuard *config.LoopGuard
	// Expires is when the key stops working; zero: never.
	Expires  time.Time
	Disabled bool
}

// TeamBudgetPrefix starts the budget name a team's limits are counted
// under; key names cannot contain ':', so a team's budget never shares a
// counter with a key's.
const TeamBudgetPrefix = "team:"

// KeySet is an immutable set of client keys found by digest or name. A
// store builds a new one for each change and swaps it in.
type KeySet struct {
	byDigest map[Digest]*clientKey
	byName   map[string]*clientKey
}

// NewKeySet compiles keys. A later key with the digest or name of an
// earlier one is left out.
func NewKeySet(keys []ClientKey) *KeySet {
	s := &KeySet{byDigest: make(map[Digest]*clientKey, len(keys)), byName: make(map[string]*clientKey, len(keys))}
	for i := range keys {
		k := &keys[i]
		ck := &clientKey{name: k.Name, hash: k.Digest, limits: k.Limits, loopGuard: k.LoopGuard,
			team: k.Team, teamLimits: k.TeamLimits, expires: k.Expires, disabled: k.Disabled}
		if k.Team != "" {
			ck.teamBudget = TeamBudgetPrefix + k.Team
		}
		for _, m := range k.Models {
			ck.models = append(ck.models, newPattern(m))
		}
		s.add(ck)
	}
	return s
}

func (s *KeySet) add(k *clientKey) bool {
	if s.byDigest[k.hash] != nil || s.byName[k.name] != nil {
		return false
	}
	s.byDigest[k.hash] = k
	s.byName[k.name] = k
	return true
}

// Len is the number of keys in the set.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byDigest)
}

// Has reports whether the set holds a key with this name.
func (s *KeySet) Has(name string) bool { return s != nil && s.byName[name] != nil }

func (s *KeySet) lookup(d Digest) *clientKey {
	if s == nil {
		return nil
	}
	return s.byDigest[d]
}

// AuthenticateWith is Authenticate over the config's keys and then store's
// (nil: none). A key of the store whose name a config key also has is
// refused: the config wins. With a store every request needs a key, even
// while the store is empty.
func (r *Router) AuthenticateWith(store *KeySet, presented string) (Principal, error) {
	if r.keys.Len() == 0 && store == nil {
		return Principal{loopGuard: r.loopGuard}, nil
	}
	if presented == "" {
		return Principal{}, Errorf(KindAuthentication, "missing API key: send it as a bearer token or in the x-api-key header")
	}
	d := DigestOf(presented)
	k := r.keys.lookup(d)
	if k == nil {
		if k = store.lookup(d); k != nil && r.keys.Has(k.name) {
			k = nil
		}
	}
	if k == nil {
		return Principal{}, Errorf(KindAuthentication, "invalid API key")
	}
	if k.disabled {
		return Principal{}, Errorf(KindAuthentication, "API key %q is disabled", k.name)
	}
	if !k.expires.IsZero() && time.Now().After(k.expires) {
		return Principal{}, Errorf(KindAuthentication, "API key %q has expired", k.name)
	}
	p := k.principal()
	if p.loopGuard == nil {
		p.loopGuard = r.loopGuard
	}
	return p, nil
}

// Authenticate maps the key a client presented to its Principal, looking it
// up by digest among the config's keys. With no client keys configured
// everyone is the anonymous zero Principal.
func (r *Router) Authenticate(presented string) (Principal, error) {
	return r.AuthenticateWith(nil, presented)
}

// PrincipalNamed returns the principal of the client key with this name, as
// Authenticate would for its key.
func (r *Router) PrincipalNamed(name string) (Principal, bool) {
	if r.keys == nil || r.keys.byName[name] == nil {
		return Principal{}, false
	}
	return r.keys.byName[name].principal(), true
}
