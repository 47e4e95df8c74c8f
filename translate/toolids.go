package translate

import (
	"crypto/sha256"
	"encoding/base64"
)

// A conversation keeps the tool call ids its earlier answers gave it,
// whichever provider gave them, and the APIs' rules for them differ:
// OpenAI refuses an id longer than 40 characters, Anthropic one longer
// than 64 or holding a character outside [A-Za-z0-9_-]. A conversation
// that moves between providers carries ids the next one refuses: a Gemini
// 3 call's id holds its thought signature (withSignature), hundreds of
// characters, and some OpenAI-compatible servers name calls
// "functions.Bash:0". A request translated for OpenAI or Anthropic gives
// such an id one the upstream accepts, made from it: the same on a call and
// on its result, different for different ids. Ids the upstream accepts are
// left alone; a request translated for Gemini keeps them all (a Gemini 3
// call's signature goes back with it).

const (
	openAIToolIDMax    = 40
	anthropicToolIDMax = 64
)

// openAIToolID is id as an OpenAI upstream accepts it.
func openAIToolID(id string) string {
	if len(id) <= openAIToolIDMax {
		return id
	}
	return toolIDFrom("call_", id, openAIToolIDMax)
}

// AnthropicToolID is id as Anthropic accepts it, and Bedrock's Converse
// API, whose toolUseId has Anthropic's rule.
func AnthropicToolID(id string) string {
	if id != "" && len(id) <= anthropicToolIDMax && anthropicIDChars(id) {
		return id
	}
	return toolIDFrom("toolu_", id, anthropicToolIDMax)
}

// anthropicIDChars reports whether id holds only [A-Za-z0-9_-].
func anthropicIDChars(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// toolIDFrom is prefix and the SHA-256 of id in base64url (in Anthropic's
// alphabet), cut at max characters.
func toolIDFrom(prefix, id string, max int) string {
	sum := sha256.Sum256([]byte(id))
	s := prefix + base64.RawURLEncoding.EncodeToString(sum[:])
	return s[:min(len(s), max)]
}
