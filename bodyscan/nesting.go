package bodyscan

// NestsDeeperThan reports whether arrays and objects in body nest deeper
// than limit, without recursion. Brackets inside strings do not count; the
// body need not be valid JSON. gjson validates recursively, and ten million
// '[' exhaust a goroutine's stack, which no recover catches: JSON a client
// sends is checked with this (or Scan) before gjson reads it.
func NestsDeeperThan[T string | []byte](body T, limit int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > limit {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}
