package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
)

// maxMessage bounds one event-stream message (AWS's own limit is 16 MiB):
// a larger length is a broken stream, not a reason to buffer.
const maxMessage = 16 << 20

// Stream turns InvokeModelWithResponseStream's event-stream messages into
// the Messages API's server-sent events as they arrive: a message whole in
// the chunks so far is converted at once, the rest waits for the next
// chunk. Every message's CRCs are checked. It has translate.Stream's
// methods.
type Stream struct {
	buf     []byte
	payload []byte
	dec     *eventstream.Decoder
	stopped bool // message_stop (or an error) has been sent
	failed  bool
	// converse converts ConverseStream's events; nil for InvokeModel's.
	converse *converseEvents
}

// NewStream returns a converter for one answer.
func NewStream() *Stream { return &Stream{dec: eventstream.NewDecoder()} }

// Write takes the next chunk, cut anywhere, and returns the events of the
// messages it completes.
func (s *Stream) Write(chunk []byte) []byte {
	if s.failed {
		return nil
	}
	s.buf = append(s.buf, chunk...)
	var out []byte
	for len(s.buf) >= 4 {
		n := int(binary.BigEndian.Uint32(s.buf))
		if n < 16 || n > maxMessage {
			return append(out, s.fail("the upstream sent a broken event stream")...)
		}
		if len(s.buf) < n {
			break
		}
		msg, err := s.dec.Decode(bytes.NewReader(s.buf[:n]), s.payload[:0])
		if err != nil {
			return append(out, s.fail("the upstream sent a broken event stream: "+err.Error())...)
		}
		s.payload = msg.Payload
		out = s.message(out, msg)
		s.buf = s.buf[n:]
	}
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0] // let a large chunk go
	}
	return out
}

// Close ends the stream: an answer cut before message_stop ends with an
// error event.
func (s *Stream) Close() []byte {
	if s.stopped || s.failed {
		return nil
	}
	if c := s.converse; c != nil && c.stopped {
		// Stopped without its metadata event: no usage to report.
		s.stopped = true
		return c.end(nil, msgUsage{})
	}
	return s.fail("the upstream stream ended before the response was complete")
}

// message appends the events of one message.
func (s *Stream) message(out []byte, msg eventstream.Message) []byte {
	switch header(msg, ":message-type") {
	case "event":
		if s.converse != nil {
			var done bool
			out, done = s.converse.event(out, header(msg, ":event-type"), msg.Payload)
			s.stopped = s.stopped || done
			return out
		}
		if header(msg, ":event-type") != "chunk" {
			return out
		}
		data, err := base64.StdEncoding.DecodeString(gjson.GetBytes(msg.Payload, "bytes").String())
		if err != nil || !gjson.ValidBytes(data) {
			return append(out, s.fail("the upstream sent an event that is not JSON")...)
		}
		if bytes.ContainsAny(data, "\r\n") {
			// A line break would end the SSE data line: JSON allows it
			// between tokens, SSE does not.
			var b bytes.Buffer
			_ = json.Compact(&b, data) // valid, checked above
			data = b.Bytes()
		}
		typ := gjson.GetBytes(data, "type").String()
		if typ == "message_stop" {
			s.stopped = true
		}
		return appendEvent(out, eventName(typ), data)
	case "exception":
		typ := header(msg, ":exception-type")
		_, body := errorFor(exceptionType(typ), 0, msg.Payload)
		s.stopped = true
		return appendEvent(out, "error", body)
	default: // "error": a protocol error
		return append(out, s.fail("the upstream stream failed: "+header(msg, ":error-message"))...)
	}
}

func (s *Stream) fail(message string) []byte {
	s.failed, s.stopped = true, true
	return appendEvent(nil, "error", anthropicError("api_error", message))
}

// eventName is the SSE event name of a Messages event type: a type that
// could break the event's first line (a line break) names it "message".
func eventName(typ string) string {
	if strings.ContainsAny(typ, "\r\n") {
		return "message"
	}
	return typ
}

func header(msg eventstream.Message, name string) string {
	if v := msg.Headers.Get(name); v != nil {
		return v.String()
	}
	return ""
}

func appendEvent(out []byte, name string, data []byte) []byte {
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	out = append(out, data...)
	return append(out, "\n\n"...)
}

func anthropicError(typ, message string) []byte {
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}{Type: "error", Error: struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}{typ, message}})
	return b
}

// StreamContentType is the content type of InvokeModelWithResponseStream's answer.
const StreamContentType = "application/vnd.amazon.eventstream"
