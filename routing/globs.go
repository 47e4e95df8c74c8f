package routing

import (
	"slices"
	"strings"
)

// globIndex finds the first glob route, in config order, that matches a
// model. Globs are indexed by their literal prefix (what comes before the
// first '*' or '?'): a model is checked against only the globs whose prefix
// it starts with. The cost grows with the number of distinct prefix lengths
// (at most the model's length) and with the globs sharing one prefix, not
// with the number of globs: a million "vendor-N-*" globs cost a handful of
// map lookups, while a million globs starting with '*' are still tried one
// by one.
type globIndex struct {
	byPrefix map[string][]globEntry // each list in config order
	lens     []int                  // the distinct prefix lengths, ascending
	n        int                    // globs added
}

type globEntry struct {
	order int // the route's position among all globs
	rt    *route
}

func (g *globIndex) add(rt *route) {
	if g.byPrefix == nil {
		g.byPrefix = map[string][]globEntry{}
	}
	text := rt.pattern.text
	n := strings.IndexAny(text, "*?")
	prefix := text[:n]
	g.byPrefix[prefix] = append(g.byPrefix[prefix], globEntry{order: g.n, rt: rt})
	g.n++
	if i, found := slices.BinarySearch(g.lens, n); !found {
		g.lens = slices.Insert(g.lens, i, n)
	}
}

// match returns the first glob route matching model, or nil. It does not
// allocate.
func (g *globIndex) match(model string) *route {
	var best *globEntry
	for _, n := range g.lens {
		if n > len(model) {
			break
		}
		es := g.byPrefix[model[:n]]
		for i := range es {
			if best != nil && es[i].order >= best.order {
				break
			}
			if es[i].rt.pattern.match(model) {
				best = &es[i]
				break
			}
		}
	}
	if best == nil {
		return nil
	}
	return best.rt
}
