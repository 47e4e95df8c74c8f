package processor

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/config"
	"switchyard/routing"
)

// loopGuard refuses a client stuck repeating itself: within a window, at
// most max_repeats requests with the same fingerprint (the model and the
// last message or tool result) from one client key and session pass; the
// next get 429 until the window that the first of them opened has passed.
// It is off unless the config sets loop_guard, and costs nothing then.
type loopGuard struct {
	seed      maphash.Seed
	mu        sync.Mutex
	entries   map[uint64]*loopEntry
	lastSweep time.Time
}

type loopEntry struct {
	until   time.Time // the window's end
	count   int       // identical requests seen in the window
	refused bool      // one of them was refused
}

// maxLoopEntries bounds the guard's memory: past it, requests that would
// open a new window pass unwatched until old windows expire.
const maxLoopEntries = 200_000

func newLoopGuard() *loopGuard {
	return &loopGuard{seed: maphash.MakeSeed(), entries: map[uint64]*loopEntry{}}
}

// fingerprint identifies a request for the loop guard: the client key, the
// session, the API, the model, the conversation's last item (chat and
// Messages: the last of messages; Responses: input, or its last item)
// and the tool calls of the item before it, without the ids that tie a
// tool result to its call, which a model makes afresh for each call
// (writeWithoutIDs). Two commands with the same output ("(no output)") are
// two requests; a stuck agent repeats the call and its result. A body
// with none of these counts whole.
func (g *loopGuard) fingerprint(keyName, session string, api config.API, f *bodyFields, body []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	for _, s := range []string{keyName, session, string(api), f.model} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	if prev, last, ok := lastItems(f); ok {
		writeToolCalls(&h, prev)
		h.WriteByte(0)
		writeWithoutIDs(&h, last)
	} else {
		h.Write(body)
	}
	return h.Sum64()
}

// writeToolCalls writes to h the tools an item calls, with their inputs:
// an assistant turn's tool_use blocks (Messages) or tool_calls (chat), or
// a function_call (Responses). Not the rest of the turn: its text and
// thinking differ from one try of a stuck agent to the next.
func writeToolCalls(h *maphash.Hash, item string) {
	if item == "" {
		return
	}
	v := gjson.Parse(item)
	call := func(name, input gjson.Result) {
		h.WriteString(name.Str)
		h.WriteByte(0)
		h.WriteString(input.Raw)
		h.WriteByte(0)
	}
	v.Get("content").ForEach(func(_, b gjson.Result) bool {
		if b.Get("type").Str == "tool_use" {
			call(b.Get("name"), b.Get("input"))
		}
		return true
	})
	v.Get("tool_calls").ForEach(func(_, c gjson.Result) bool {
		call(c.Get("function.name"), c.Get("function.arguments"))
		return true
	})
	if v.Get("type").Str == "function_call" {
		call(v.Get("name"), v.Get("arguments"))
	}
}

// lastItems is the raw JSON of the conversation's last item that is not a
// system or developer entry, and of the one before it: Claude Code ends
// each request with a system reminder (the tokens left) that changes
// every turn, and would hide a repeated tool result. readBody found the
// last two items; only when one of them is such an entry is the
// conversation walked again.
func lastItems(f *bodyFields) (prev, last string, ok bool) {
	conv, prev, last := f.messages, f.messagesPrev, f.messagesLast
	if !conv.Exists() {
		conv, prev, last = f.input, f.inputPrev, f.inputLast
	}
	switch {
	case conv.IsArray():
		if instruction(gjson.Get(last, "role").Str) || instruction(gjson.Get(prev, "role").Str) {
			prev, last = "", ""
			conv.ForEach(func(_, v gjson.Result) bool {
				if !instruction(v.Get("role").Str) {
					prev, last = last, v.Raw
				}
				return true
			})
		}
		return prev, last, last != ""
	case conv.Exists():
		return "", conv.Raw, true
	}
	return "", "", false
}

// writeWithoutIDs writes the raw JSON item to h but for the values of the
// keys that name a tool call (callIDKeys): an agent stuck on a failing tool
// sends the same result every turn, each for a call with a new id. It reads
// the bytes as they are, as fast as hashing them: in valid JSON a quote
// inside a string is escaped, so an unescaped "id" followed by a colon is a
// key.
func writeWithoutIDs(h *maphash.Hash, item string) {
	for from := 0; ; {
		i := strings.Index(item[from:], `id"`)
		if i < 0 {
			h.WriteString(item)
			return
		}
		end := from + i + len(`id"`)
		if start, stop, ok := idValue(item, end); ok {
			h.WriteString(item[:start])
			item, from = item[stop:], 0
			continue
		}
		from = end
	}
}

// callIDKeys name a tool call: OpenAI chat's tool_call_id, Anthropic's
// tool_use_id (and a tool_use block's id), Responses' call_id.
var callIDKeys = [...]string{`"tool_call_id"`, `"tool_use_id"`, `"call_id"`, `"id"`}

// idValue reports where the string value of a key of callIDKeys that ends
// at item[end] lies: [start, stop).
func idValue(item string, end int) (start, stop int, ok bool) {
	key := ""
	for _, k := range callIDKeys {
		if strings.HasSuffix(item[:end], k) {
			key = k
			break
		}
	}
	if key == "" || escapedAt(item, end-len(key)) {
		return 0, 0, false
	}
	i := skipBlanks(item, end)
	if i == len(item) || item[i] != ':' {
		return 0, 0, false
	}
	start = skipBlanks(item, i+1)
	if start == len(item) || item[start] != '"' {
		return 0, 0, false
	}
	for stop = start + 1; stop < len(item); stop++ {
		if item[stop] == '"' && !escapedAt(item, stop) {
			return start, stop + 1, true
		}
	}
	return 0, 0, false
}

// escapedAt reports whether the quote at s[i] follows an odd number of
// backslashes.
func escapedAt(s string, i int) bool {
	n := 0
	for i > 0 && s[i-1] == '\\' {
		n, i = n+1, i-1
	}
	return n%2 == 1
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// instruction reports whether a conversation entry of this role is the
// client's instructions rather than a turn.
func instruction(role string) bool { return role == "system" || role == "developer" }

// allow reports whether a request with this fingerprint may pass under
// policy, and counts it unless it is no repeat of its own: a retry of an
// attempt that got no answer (an overloaded provider's 529, a timeout) is
// the client's SDK, not the agent, asking again.
func (g *loopGuard) allow(fp uint64, policy *config.LoopGuard, count bool, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.lastSweep) > sweepInterval {
		for k, e := range g.entries {
			if !now.Before(e.until) {
				delete(g.entries, k)
			}
		}
		g.lastSweep = now
	}
	e := g.entries[fp]
	if !count {
		return e == nil || !now.Before(e.until) || !e.refused
	}
	if e == nil || !now.Before(e.until) {
		if e == nil && len(g.entries) >= maxLoopEntries {
			return true
		}
		g.entries[fp] = &loopEntry{until: now.Add(policy.Window), count: 1}
		return true
	}
	if e.count >= policy.MaxRepeats {
		e.refused = true
		return false
	}
	e.count++
	return true
}

// isRetry reports whether a routing.RetryCountHeader value numbers a retry.
func isRetry(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n > 0
}

// loopDetected is the code of the loop guard's refusal.
const loopDetected = "loop_detected"

// loopRefusal is the client's answer when the loop guard refuses.
func loopRefusal(policy *config.LoopGuard) *apiError {
	return newAPIError(routing.KindRateLimit, loopDetected,
		"an identical request (same model and last message) was repeated "+strconv.Itoa(policy.MaxRepeats)+
			" times within "+seconds(policy.Window)+"; the gateway refuses further repeats until the window has passed")
}

// seconds writes a window as the config does: "60s", not "1m0s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
