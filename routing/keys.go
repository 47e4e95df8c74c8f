package routing

import (
	"crypto/sha256"
	"strings"
	"time"
	"unsafe"

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
	// MCPTools are the allowed MCP tools, "server/tool" patterns; empty
	// allows every tool.
	MCPTools []string
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
//
// It is laid out for a million keys: the keys sit in one slice with no
// pointers and their names in one byte arena, and what keys share (model
// lists, loop guards, teams) is kept once in small tables. The garbage
// collector then has almost nothing to scan however many keys there are,
// and a key costs about 150 bytes.
type KeySet struct {
	keys     []clientKey
	byDigest map[Digest]int32
	byName   map[string]int32 // keys are slices of names
	names    []byte
	models   [][]pattern
	mcpTools [][]mcpToolPattern
	guards   []*config.LoopGuard
	teams    []keyTeam
}

// clientKey is one key of a KeySet; the int32 fields index its tables, -1
// for none.
type clientKey struct {
	nameOff, nameLen uint32
	hash             Digest
	limits           config.LimitsConfig
	models           int32
	mcpTools         int32
	loopGuard        int32 // -1: the config's top-level loop guard
	team             int32
	expires          int64 // Unix nanoseconds; 0: never
	disabled         bool
}

type keyTeam struct {
	name, budget string
	limits       config.LimitsConfig
}

// NewKeySet compiles keys. A later key with the digest or name of an
// earlier one is left out.
func NewKeySet(keys []ClientKey) *KeySet {
	b := newKeySetBuilder(keys)
	for i := range keys {
		b.add(&keys[i])
	}
	return b.set
}

// keySetBuilder fills a KeySet, sharing what keys have in common.
type keySetBuilder struct {
	set      *KeySet
	models   map[string]int32
	mcpTools map[string]int32
	guards   map[config.LoopGuard]int32
	teams    map[keyTeam]int32
}

func newKeySetBuilder(keys []ClientKey) *keySetBuilder {
	size := 0
	for i := range keys {
		size += len(keys[i].Name)
	}
	return &keySetBuilder{
		// The arena is sized once: the names in byName point into it.
		set: &KeySet{keys: make([]clientKey, 0, len(keys)), byDigest: make(map[Digest]int32, len(keys)),
			byName: make(map[string]int32, len(keys)), names: make([]byte, 0, size)},
		models: map[string]int32{}, mcpTools: map[string]int32{}, guards: map[config.LoopGuard]int32{}, teams: map[keyTeam]int32{},
	}
}

// add adds k unless a key with its digest or name is there already; it
// returns the name of that key then.
func (b *keySetBuilder) add(k *ClientKey) (dupOf string, ok bool) {
	s := b.set
	if i, dup := s.byDigest[k.Digest]; dup {
		return s.name(&s.keys[i]), false
	}
	if i, dup := s.byName[k.Name]; dup {
		return s.name(&s.keys[i]), false
	}
	if len(s.names)+len(k.Name) > cap(s.names) {
		panic("routing: KeySet name arena too small") // sized in newKeySetBuilder
	}
	ck := clientKey{nameOff: uint32(len(s.names)), nameLen: uint32(len(k.Name)), hash: k.Digest, limits: k.Limits,
		models: b.modelsIndex(k.Models), mcpTools: b.mcpToolsIndex(k.MCPTools), loopGuard: b.guardIndex(k.LoopGuard), team: b.teamIndex(k), disabled: k.Disabled}
	if !k.Expires.IsZero() {
		ck.expires = k.Expires.UnixNano()
	}
	s.names = append(s.names, k.Name...)
	i := int32(len(s.keys))
	s.keys = append(s.keys, ck)
	s.byDigest[k.Digest] = i
	s.byName[s.name(&s.keys[i])] = i
	return "", true
}

func (b *keySetBuilder) modelsIndex(models []string) int32 {
	if len(models) == 0 {
		return -1
	}
	id := strings.Join(models, "\x00")
	if i, ok := b.models[id]; ok {
		return i
	}
	ps := make([]pattern, len(models))
	for j, m := range models {
		ps[j] = newPattern(m)
	}
	i := int32(len(b.set.models))
	b.set.models = append(b.set.models, ps)
	b.models[id] = i
	return i
}

// mcpToolsIndex is modelsIndex for MCP tool allow-lists.
func (b *keySetBuilder) mcpToolsIndex(tools []string) int32 {
	if len(tools) == 0 {
		return -1
	}
	id := strings.Join(tools, "\x00")
	if i, ok := b.mcpTools[id]; ok {
		return i
	}
	i := int32(len(b.set.mcpTools))
	b.set.mcpTools = append(b.set.mcpTools, compileMCPTools(tools))
	b.mcpTools[id] = i
	return i
}

func (b *keySetBuilder) guardIndex(g *config.LoopGuard) int32 {
	if g == nil {
		return -1
	}
	if i, ok := b.guards[*g]; ok {
		return i
	}
	i := int32(len(b.set.guards))
	b.set.guards = append(b.set.guards, g)
	b.guards[*g] = i
	return i
}

func (b *keySetBuilder) teamIndex(k *ClientKey) int32 {
	if k.Team == "" {
		return -1
	}
	t := keyTeam{name: k.Team, budget: TeamBudgetPrefix + k.Team, limits: k.TeamLimits}
	if i, ok := b.teams[t]; ok {
		return i
	}
	i := int32(len(b.set.teams))
	b.set.teams = append(b.set.teams, t)
	b.teams[t] = i
	return i
}

func (s *KeySet) name(k *clientKey) string {
	if k.nameLen == 0 {
		return ""
	}
	return unsafe.String(&s.names[k.nameOff], int(k.nameLen))
}

func (s *KeySet) principal(k *clientKey) Principal {
	p := Principal{Name: s.name(k), Limits: k.limits}
	if k.models >= 0 {
		p.models = s.models[k.models]
	}
	if k.mcpTools >= 0 {
		p.mcpTools = s.mcpTools[k.mcpTools]
	}
	if k.loopGuard >= 0 {
		p.loopGuard = s.guards[k.loopGuard]
	}
	if k.team >= 0 {
		t := &s.teams[k.team]
		p.Team, p.TeamBudget, p.TeamLimits = t.name, t.budget, t.limits
	}
	return p
}

// Len is the number of keys in the set.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Has reports whether the set holds a key with this name.
func (s *KeySet) Has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.byName[name]
	return ok
}

func (s *KeySet) lookup(d Digest) *clientKey {
	if s == nil {
		return nil
	}
	if i, ok := s.byDigest[d]; ok {
		return &s.keys[i]
	}
	return nil
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
	set := r.keys
	k := set.lookup(d)
	if k == nil {
		if k, set = store.lookup(d), store; k != nil && r.keys.Has(set.name(k)) {
			k = nil
		}
	}
	if k == nil {
		return Principal{}, Errorf(KindAuthentication, "invalid API key")
	}
	if k.disabled {
		return Principal{}, Errorf(KindAuthentication, "API key %q is disabled", set.name(k))
	}
	if k.expires != 0 && time.Now().UnixNano() > k.expires {
		return Principal{}, Errorf(KindAuthentication, "API key %q has expired", set.name(k))
	}
	p := set.principal(k)
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
	if !r.keys.Has(name) {
		return Principal{}, false
	}
	p := r.keys.principal(&r.keys.keys[r.keys.byName[name]])
	if p.loopGuard == nil {
		p.loopGuard = r.loopGuard
	}
	return p, true
}
