package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/routing"
)

// Where a request's session key came from: the values of the source label
// of switchyard_session_requests_total.
const (
	sessionFromHeader = "x-session-id"
	sessionFromClaude = "claude_code"
	sessionFromCodex  = "codex"
	sessionFromHook   = "hook"
)

var sessionSources = []string{sessionFromHeader, sessionFromClaude, sessionFromCodex, sessionFromHook}

// sessionHeaders are the session headers of a request (routing.SessionHeaders).
type sessionHeaders struct {
	explicit, claude, codex string
}

func sessionHeadersFrom(h map[string]string) sessionHeaders {
	return sessionHeaders{explicit: h[routing.SessionHeader], claude: h[routing.ClaudeSessionHeader], codex: h[routing.CodexSessionHeader]}
}

// sessionKey derives a request's session key, in order: the explicit
// x-session-id header; Claude Code's session header or the metadata.user_id
// it sends; Codex's session header or prompt_cache_key; else none ("").
// A key read from the body is a copy: kept in the session set, a string
// pointing into the body would keep the whole body alive.
func sessionKey(h sessionHeaders, f *bodyFields) (key, source string) {
	switch {
	case h.explicit != "":
		return h.explicit, sessionFromHeader
	case h.claude != "":
		return h.claude, sessionFromClaude
	}
	if f.metadata.IsObject() {
		if u := f.metadata.Get("user_id"); u.Type == gjson.String && u.Str != "" {
			return strings.Clone(u.Str), sessionFromClaude
		}
	}
	if h.codex != "" {
		return h.codex, sessionFromCodex
	}
	if k := f.promptCacheKey; k.Type == gjson.String && k.Str != "" {
		return strings.Clone(k.Str), sessionFromCodex
	}
	return "", ""
}

// sessionLogID is what logs show of a session key: a hash, so that a log
// line ties requests of one session together without holding the key
// (metadata.user_id, for one, names the user's account).
func sessionLogID(session string) string {
	if session == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(session))
	return hex.EncodeToString(sum[:8])
}

// sessionSet remembers the sessions seen lately, to count each once
// (switchyard_sessions_seen_total): a session idle for sessionIdle counts
// again when it returns. Memory is bounded: past maxSessions remembered,
// expired ones are dropped, and if none has expired a new session is
// counted without being remembered (the count then over-counts).
type sessionSet struct {
	seed   maphash.Seed
	shards [sessionShards]sessionShard
}

type sessionShard struct {
	mu        sync.Mutex
	lastSeen  map[uint64]int64 // session hash → unix seconds
	lastSweep int64
}

const (
	sessionShards = 16
	maxSessions   = 100_000
	sessionIdle   = time.Hour
)

func newSessionSet() *sessionSet {
	s := &sessionSet{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].lastSeen = map[uint64]int64{}
	}
	return s
}

// seen notes a request of session and reports whether the session is new.
func (s *sessionSet) seen(session string, now time.Time) bool {
	h := maphash.String(s.seed, session)
	sh := &s.shards[h%sessionShards]
	t := now.Unix()
	idle := int64(sessionIdle / time.Second)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	last, ok := sh.lastSeen[h]
	if ok && t-last < idle {
		sh.lastSeen[h] = t
		return false
	}
	if !ok && len(sh.lastSeen) >= maxSessions/sessionShards && t-sh.lastSweep > 1 {
		for k, v := range sh.lastSeen {
			if t-v >= idle {
				delete(sh.lastSeen, k)
			}
		}
		sh.lastSweep = t
	}
	if ok || len(sh.lastSeen) < maxSessions/sessionShards {
		sh.lastSeen[h] = t
	}
	return true
}
