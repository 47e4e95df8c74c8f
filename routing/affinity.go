package routing

import "math"

// Session affinity: a request with a session key picks among weighted
// candidates by rendezvous (highest random weight) hashing, so every request
// of a session lands on the same one, the split over many sessions follows
// the weights, and adding or removing a candidate moves only the sessions
// that candidate gains or loses. Each candidate's id comes from what it is
// (provider, model), not from its position, so a reload that removes
// another candidate leaves it where it was.

// SessionHash is the FNV-1a hash of a session key; 0 means no session. It
// allocates nothing.
func SessionHash(session string) uint64 {
	if session == "" {
		return 0
	}
	h := fnvString(fnvOffset, session)
	if h == 0 {
		h = 1
	}
	return h
}

const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// candidateID names a candidate for rendezvous hashing by its parts; n
// tells apart candidates that are otherwise the same.
func candidateID(n int, parts ...string) uint64 {
	h := fnvOffset
	for _, p := range parts {
		h = fnvString(h, p)
		h = fnvString(h, "\x00")
	}
	h ^= uint64(n)
	return mix64(h * fnvPrime)
}

// mix64 is SplitMix64's finalizer: every input bit reaches every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rendezvousScore is a candidate's weighted score for a session: the
// candidate with the highest score wins. -w/ln(u) with u uniform in (0, 1)
// makes each candidate's chance of the highest score proportional to w.
func rendezvousScore(session, id uint64, weight int) float64 {
	u := (float64(mix64(session^id)>>11) + 0.5) / (1 << 53)
	return float64(weight) / -math.Log(u)
}
