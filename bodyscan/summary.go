package bodyscan

import "bytes"

// Summary appends to dst the members of body that planning reads
// (processor's bodyFields but the conversation: "model", "stream",
// "stream_options.include_usage", "background", "metadata",
// "prompt_cache_key") as a small
// JSON object, which processor.readBody reads as it reads body. Envoy's body module
// (cmd/bodymodule) makes it from one scan of a body Envoy keeps, so that
// extproc can plan the request without the body. ok is false for a body
// the scan refuses (not JSON, not UTF-8, too deep, not an object, no model
// or more than one, a key it reads named twice or in another case):
// extproc's readBody must see that body itself, to refuse it in its own
// words. So is a body whose "stream" is not a boolean: a lenient provider
// may stream for "true" or 1, and the gateway, which did not ask for the
// stream's usage, would count none.
func Summary(dst, body []byte) (summary []byte, ok bool) {
	return AppendSummary(dst, Scan(body), func(dst []byte, v Span) []byte { return append(dst, body[v.Start:v.End]...) })
}

// AppendSummary is Summary of the body s is the scan of (a Stream's, for
// Envoy's body module), whose bytes value appends.
func AppendSummary(dst []byte, s Result, value func(dst []byte, v Span) []byte) (summary []byte, ok bool) {
	if s.Verdict != Valid || s.BadUTF8 || !s.Object || s.Models != 1 || s.ambiguous != fieldOther || s.StreamNotBool {
		return dst, false
	}
	from := len(dst)
	defer func() { summary = headerSafe(summary, from) }()
	member := func(name string, v Span) {
		if v.OK() {
			dst = append(dst, `,"`+name+`":`...)
			dst = value(dst, v)
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
	if s.Background {
		dst = append(dst, `,"background":true`...)
	}
	member("metadata", s.Metadata)
	member("prompt_cache_key", s.PromptCacheKey)
	return append(dst, '}'), true
}

// headerSafe makes dst[from:], a valid summary, a header value, which is
// how a check carries it: a line break is whitespace between tokens (a
// string holds none raw) and goes; a DEL, which a string may hold raw,
// is escaped. The members read the same.
func headerSafe(dst []byte, from int) []byte {
	s := dst[from:]
	if bytes.IndexAny(s, "\r\n\x7f") < 0 {
		return dst
	}
	out := make([]byte, 0, len(s)+8)
	for _, b := range s {
		switch b {
		case '\r', '\n':
		case 0x7f:
			out = append(out, `\u007f`...)
		default:
			out = append(out, b)
		}
	}
	return append(dst[:from], out...)
}
