package processor

import (
	"net/http"

	"switchyard/bedrock"
	"switchyard/config"
	"switchyard/routing"
	"switchyard/translate"
)

// rewriter turns a translated request's answer into the client's API: a
// stream event by event as chunks arrive; a JSON answer or an error whole,
// at its end.
type rewriter struct {
	status   int // the status the client gets
	upstream int // the status the provider sent
	client   config.API
	gemini   bool   // the provider speaks Gemini's API (else the client's other one)
	model    string // the model the client named
	stream   translate.Stream
	buf      []byte
	// errorType is Bedrock's x-amzn-errortype; events converts Bedrock's
	// event stream (nil for other providers).
	errorType         string
	bedrock, converse bool
	events            *bedrockEvents
}

func newRewriter(j *responseJob, status int, stream bool) *rewriter {
	w := &rewriter{status: status, upstream: status, client: j.clientAPI, model: j.model,
		gemini: j.upstream == config.APIGemini, bedrock: j.bedrock, converse: j.converse}
	if j.bedrock {
		w.bedrockStream(status, stream)
		return w
	}
	switch {
	case status >= 400: // an error is translated whole, its status with it
	case stream && w.gemini:
		w.stream = newGeminiStream(w.client, j.model)
	case stream && w.client == config.APIOpenAI:
		w.stream = translate.NewMessagesToChatStream(j.model)
	case stream:
		w.stream = translate.NewChatToMessagesStream(j.model)
	}
	return w
}

// whole reports whether the answer is translated whole at its end (JSON
// answers and errors), rather than chunk by chunk.
func (w *rewriter) whole() bool { return w.stream == nil }

// write takes the next chunk and returns the client's bytes in its place.
func (w *rewriter) write(chunk []byte, eos bool) []byte {
	if w.stream != nil {
		out := w.stream.Write(chunk)
		if eos {
			out = append(out, w.stream.Close()...)
		}
		return out
	}
	w.buf = append(w.buf, chunk...)
	if !eos {
		return []byte{}
	}
	if w.upstream >= 400 {
		var b []byte
		w.status, b = w.errorBody(w.buf)
		return b
	}
	if w.converse {
		b, err := bedrock.ConverseAnswerToMessages(w.buf, w.model)
		if err != nil {
			w.status = http.StatusBadGateway
			return newAPIError(routing.KindAPI, "translation_failed", "the provider's answer could not be translated: "+err.Error()).body(w.client)
		}
		w.buf = b
	}
	if w.bedrock && w.client == config.APIAnthropic {
		return w.buf // an InvokeModel answer is a Messages answer
	}
	var (
		out []byte
		err error
	)
	if w.gemini {
		out, err = geminiResponse(w.client, w.buf, w.model)
	} else if w.client == config.APIOpenAI {
		out, err = translate.MessagesResponseToChat(w.buf, w.model)
	} else {
		out, err = translate.ChatResponseToMessages(w.buf, w.model)
	}
	if err != nil {
		w.status = http.StatusBadGateway
		return newAPIError(routing.KindAPI, "translation_failed", "the provider's answer could not be translated: "+err.Error()).body(w.client)
	}
	return out
}

func (w *rewriter) errorBody(body []byte) (int, []byte) {
	if w.gemini {
		return geminiError(w.client, w.upstream, body)
	}
	if w.bedrock {
		status, b := bedrock.ErrorToMessages(w.errorType, w.upstream, body)
		if w.client == config.APIAnthropic {
			return status, b
		}
		return translate.ErrorToChat(status, b)
	}
	if w.client == config.APIOpenAI {
		return translate.ErrorToChat(w.upstream, body)
	}
	return translate.ErrorToMessages(w.upstream, body)
}
