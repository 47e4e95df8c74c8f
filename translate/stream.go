package translate

// Stream translates one streamed response as its chunks arrive. Write takes
// the next chunk of the upstream's bytes, cut anywhere, and returns the
// client's bytes to send now (often empty: an event is translated once it is
// whole). Close ends the stream and returns what is left to send: the
// closing events if the upstream ended without them, or an error event if
// the upstream stopped before its answer was complete. A Stream is not safe
// for concurrent use; Write after Close returns nothing.
type Stream interface {
	Write(chunk []byte) []byte
	Close() []byte
}

// streamEndedEarly is the message a client sees when the upstream stream
// stops before it says the answer is complete.
const streamEndedEarly = "the upstream stream ended before the response was complete"
