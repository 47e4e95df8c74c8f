// Package translate converts between the OpenAI Chat Completions API and the
// Anthropic Messages API, in both directions: request bodies, JSON response
// bodies, error bodies and streams event by event. It is pure data: no Envoy,
// no protos, no I/O. The translation table — what maps to what, what is
// dropped and what is refused — is in README.md beside this file.
//
// Requests:
//
//	ChatToMessages(body, upstreamModel)   // OpenAI client -> Anthropic upstream
//	MessagesToChat(body, upstreamModel)   // Anthropic client -> OpenAI upstream
//
// Responses, in the other direction of the same exchange:
//
//	MessagesResponseToChat(body, clientModel)
//	ChatResponseToMessages(body, clientModel)
//	ErrorToChat(status, body) / ErrorToMessages(status, body)
//	NewMessagesToChatStream(clientModel) / NewChatToMessagesStream(clientModel)
//
// A request that cannot be translated without changing its meaning is
// refused with an *Error (status 400) saying which field and why.
//
// A request translator takes a body its caller has found to be JSON and
// UTF-8, as the gateway's one scan of every body has (processor.readBody,
// before any plan), and does not check it again: at 256 KB that check was a
// tenth of extproc's CPU on a translated request. A body that is not JSON
// is the caller's to refuse. Responses and streams come from upstreams and
// are checked here.
//
// A request is read in place and written in one pass (rawjson.go), its
// strings passed on as the client escaped them: a quarter to a third of the
// time the decoding and encoding took on an agent's conversation
// (docs/PERFORMANCE.md, "Twenty-seventh round"). A chat request for Gemini
// is written as a Messages request first, and that is written for Gemini,
// so that what a chat conversation means as Anthropic turns is said once.
// Answers, errors and streams are read and written with
// github.com/goccy/go-json, which takes encoding/json's API, tags and
// results at less than half its time (docs/PERFORMANCE.md, "Translating
// an agent's conversation with another JSON library").
package translate
