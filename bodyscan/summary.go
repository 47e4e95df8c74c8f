package bodyscan

// Summary appends to dst the members of body that planning reads
// (processor's bodyFields but the conversation: "model", "stream",
// "stream_options.include_usage", "metadata", "prompt_cache_key") as a small
// JSON object, which processor.readBody reads as it reads body. Envoy's body module
// (cmd/bodymodule) makes it from one scan of a body Envoy keeps, so that
// extproc can plan the request without the body. ok is false for a body
// the scan refuses (not JSON, not UTF-8, too deep, not an object, no model
// or more than one, a key it reads named twice or in another case):
// extproc's readBody must see that body itself, to refuse it in its own
// words.
func Summary(dst, body []byte) (summary []byte, ok bool) {
	return AppendSummary(dst, Scan(body), func(dst []byte, v Span) []byte { return append(dst, body[v.Start:v.End]...) })
}

// AppendSummary is Summary of the body s is the scan of (a Stream's, for
// Envoy's body module), whose bytes value appends.
func AppendSummary(dst []byte, s Result, value func(dst []byte, v Span) []byte) (summary []byte, ok bool) {
	if s.Verdict != Valid || s.BadUTF8 || !s.Object || s.Models != 1 || s.ambiguous != fieldOther {
		return dst, false
	}
	member := func(name string, v Span) {
		if v.OK() {
			dst = append(dst, `,"`+name+`":`...)
			start := len(dst)
			dst = value(dst, v)
			// A valid value's line breaks are whitespace between its
			// tokens (a string holds none raw): leaving them out keeps
			// the summary one line, which a check carries in a header.
			dst = dst[:start+len(bytesWithout(dst[start:], '\r', '\n'))]
		}
	}
	dst = append(dst, `{"model":`...)
	dst = value(dst, s.Model)
	if s.Stream {
		dst = append(dst, `,"stream":true`...)
	}
	if s.IncludeUsage {
		dst = append(dst, `,"stream_options":{"include_usage":true}`...)
	}
	member("metadata", s.Metadata)
	member("prompt_cache_key", s.PromptCacheKey)
	return append(dst, '}'), true
}

// bytesWithout returns b without the bytes a and c, in place.
func bytesWithout(b []byte, a, c byte) []byte {
	out := b[:0]
	for _, x := range b {
		if x != a && x != c {
			out = append(out, x)
		}
	}
	return out
}
