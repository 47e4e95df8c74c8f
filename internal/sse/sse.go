// Package sse reads and writes server-sent events (the text/event-stream
// format both OpenAI and Anthropic stream in). A Scanner takes a stream in
// chunks cut anywhere — inside a line, between "\r" and "\n", inside a UTF-8
// character — and yields whole events; Append writes one back.
package sse

import "bytes"

// Event is one server-sent event: its type (the "event:" field, empty when
// absent) and its data (the "data:" lines joined by "\n"). Comments, "id:"
// and "retry:" are read past.
type Event struct {
	Name string
	Data []byte
}

// maxPending bounds the bytes a Scanner holds for one unfinished line; a
// line longer than this is dropped rather than buffered without end.
const maxPending = 8 << 20

// Scanner splits a stream fed in arbitrary chunks into events. The zero
// value is ready to use.
type Scanner struct {
	pending []byte // an unfinished line
	skipLF  bool   // the last chunk ended with "\r": a leading "\n" ends nothing
	name    string
	last    string // the last event name read: streams repeat a few names
	data    []byte
	hasData bool
	// Overflowed reports that a line past maxPending was dropped.
	Overflowed bool
}

// Feed reads p and calls emit for each event it completes. The event's Data
// is valid only during the call.
func (s *Scanner) Feed(p []byte, emit func(Event)) {
	for len(p) > 0 {
		if s.skipLF {
			s.skipLF = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.hold(p)
			return
		}
		line := p[:i]
		if len(s.pending) > 0 {
			s.pending = append(s.pending, line...)
			line = s.pending
		}
		if p[i] == '\r' {
			if i+1 < len(p) {
				if p[i+1] == '\n' {
					i++
				}
			} else {
				s.skipLF = true
			}
		}
		p = p[i+1:]
		s.line(line, emit)
		s.pending = s.pending[:0]
	}
}

// Flush ends the stream: an event whose blank line never came is emitted.
func (s *Scanner) Flush(emit func(Event)) {
	if len(s.pending) > 0 {
		s.line(s.pending, emit)
		s.pending = s.pending[:0]
	}
	s.line(nil, emit)
}

func (s *Scanner) hold(p []byte) {
	if len(s.pending)+len(p) > maxPending {
		s.Overflowed = true
		s.pending = s.pending[:0]
		return
	}
	s.pending = append(s.pending, p...)
}

// line handles one complete line; an empty line dispatches the event.
func (s *Scanner) line(line []byte, emit func(Event)) {
	if len(line) == 0 {
		if s.hasData || s.name != "" {
			emit(Event{Name: s.name, Data: s.data})
		}
		s.name, s.data, s.hasData = "", s.data[:0], false
		return
	}
	if line[0] == ':' {
		return
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		if string(value) != s.last { // compared without a copy
			s.last = string(value)
		}
		s.name = s.last
	case "data":
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		s.hasData = true
	}
}

// Append writes one event in wire form ("event: name\ndata: ...\n\n"),
// one "data:" line per line of data. An empty name writes no event line.
func Append(dst []byte, name string, data []byte) []byte {
	if name != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, name...)
		dst = append(dst, '\n')
	}
	for {
		i := bytes.IndexByte(data, '\n')
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		data = data[i+1:]
	}
	return append(dst, '\n', '\n')
}
