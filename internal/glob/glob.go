// Package glob matches model names against patterns where "*" is any run
// of characters (also none) and "?" exactly one character; nothing else is
// special. Routes, client keys' model lists and the price table use it.
package glob

import "unicode/utf8"

// Match reports whether name matches pat. It does not allocate.
//
// It runs in O(len(pat)*len(name)) by remembering only the last star
// (a later star subsumes any earlier backtracking point).
func Match(pat, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, 0
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		// Mismatch: let the last star swallow one more character.
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}
