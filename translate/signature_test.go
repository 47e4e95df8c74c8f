package translate

import (
	"regexp"
	"testing"
)

// TestThoughtSignatureInID: a signature goes into a tool call id in
// Anthropic's id alphabet and comes back as Gemini sends it, whatever
// base64 Gemini used and whatever its own id holds; an id the client
// changed brings no signature back.
func TestThoughtSignatureInID(t *testing.T) {
	const std = "Cvv/Ab4+/z9xRw=="
	anthropicID := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	for _, tc := range []struct{ id, sig, wantSig string }{
		{"call_x_0", std, std},
		{"call_x_0", "Cvv/Ab4+/z9xRw", std},   // unpadded
		{"call_x_0", "Cvv_Ab4-_z9xRw==", std}, // URL-safe
		{"fc__sig_abcd", std, std},            // Gemini's id holds the mark
		{"fc__sig_abcd", "", ""},              // and its call has no signature
		{"fc__sig_abcd", "not base64!", ""},
		{"call_x_0", "", ""},
		{"call_x_0", "not base64!", ""},
	} {
		id := withSignature(tc.id, tc.sig)
		if !anthropicID.MatchString(id) {
			t.Errorf("withSignature(%q, %q) = %q: not an Anthropic tool id", tc.id, tc.sig, id)
		}
		gotID, gotSig := splitSignature(id)
		if gotSig != tc.wantSig || gotID != tc.id {
			t.Errorf("splitSignature(%q) = %q, %q; want %q, %q", id, gotID, gotSig, tc.id, tc.wantSig)
		}
	}
	for _, id := range []string{"call_x_0__sig_!!", "call_x_0__sig_", "toolu_01"} {
		if _, sig := splitSignature(id); sig != "" {
			t.Errorf("splitSignature(%q) found signature %q", id, sig)
		}
	}
}
