package processor

import (
	"errors"
	"time"

	"switchyard/bedrock"
	"switchyard/config"
	"switchyard/routing"
	"switchyard/translate"
)

// toBedrock makes a a Bedrock request of endpoint e for model: for an
// Anthropic model an InvokeModel call with the Messages body (without
// model and stream), for another a Converse call; the operation's path;
// and the SigV4 signature over that path, body and the Host Envoy sends.
// Called last, on the final body, for each attempt.
func (a *Attempt) toBedrock(e *bedrock.Endpoint, model string, betas []string) *apiError {
	var (
		body   []byte
		stream bool
		err    error
	)
	if bedrock.Anthropic(model) {
		body, stream, err = bedrock.InvokeBody(a.Body, betas)
		a.Path = bedrock.InvokePath(model, stream)
	} else {
		body, stream, err = bedrock.ConverseBody(a.Body)
		a.Path, a.Converse = bedrock.ConversePath(model, stream), true
	}
	var refusal *bedrock.Refusal
	if errors.As(err, &refusal) {
		e := newAPIError(routing.KindInvalidRequest, "translation_refused", refusal.Message)
		return e
	}
	if err != nil {
		return newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
	}
	signed, err := e.Sign(a.Path, body, time.Now())
	if err != nil {
		// The reason names the credential sources, never a secret.
		return newAPIError(routing.KindUnavailable, "provider_unavailable",
			"provider "+a.Provider+" cannot sign its requests: "+err.Error())
	}
	a.Body, a.BodyChanged, a.Bedrock = body, true, true
	a.SetHeaders = append(a.SetHeaders, routing.Header{Name: ":authority", Value: e.Host})
	for _, h := range signed {
		a.SetHeaders = append(a.SetHeaders, routing.Header{Name: h.Name, Value: h.Value})
	}
	a.Credential = routing.BedrockCredential
	// Bedrock takes the version in the body and no beta header, not even
	// one a hook set (its betas are in the body already).
	a.unset(routing.BetaHeader)
	a.RemoveHeaders = append(a.RemoveHeaders[:len(a.RemoveHeaders):len(a.RemoveHeaders)], routing.VersionHeader, routing.BetaHeader)
	return nil
}

// bedrockAttempts reports whether any attempt of d goes to Bedrock: its
// answer must then be read (event stream, errors), like a translated one.
func bedrockAttempts(d routing.Decision) bool {
	if d.Bedrock != nil {
		return true
	}
	for _, a := range d.Attempts {
		if a.Bedrock != nil {
			return true
		}
	}
	return false
}

// bedrockEvents is Bedrock's event stream turned into Messages events,
// then into the client's API when it is OpenAI's. last holds the Messages
// events of the latest chunk, which the token count reads.
type bedrockEvents struct {
	events *bedrock.Stream
	next   translate.Stream // nil: the client speaks Messages
	last   []byte
}

func (b *bedrockEvents) Write(chunk []byte) []byte {
	b.last = b.events.Write(chunk)
	if b.next == nil {
		return b.last
	}
	return b.next.Write(b.last)
}

// Close appends the closing events to last: the chunk that ends the
// stream is counted with them.
func (b *bedrockEvents) Close() []byte {
	end := b.events.Close()
	b.last = append(b.last, end...)
	if b.next == nil {
		return end
	}
	return append(b.next.Write(end), b.next.Close()...)
}

// bedrockStream sets up the rewriting of a Bedrock answer: a stream event
// by event; JSON answers and errors whole.
func (w *rewriter) bedrockStream(status int, stream bool) {
	if status >= 400 || !stream {
		return
	}
	w.events = &bedrockEvents{events: bedrock.NewStream()}
	if w.converse {
		w.events.events = bedrock.NewConverseStream(w.model)
	}
	if w.client == config.APIOpenAI {
		w.events.next = translate.NewMessagesToChatStream(w.model)
	}
	w.stream = w.events
}
