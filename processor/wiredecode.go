package processor

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"
)

// decodeRequest decodes the ProcessingRequest messages Envoy sends on the
// request path without protobuf reflection: headers, body, the protocol
// configuration, observability mode and the metadata context Envoy sends
// with each of them (empty, or with string values only, as the body
// module's summary comes). go-control-plane ships
// vtprotobuf encoders for ext_proc but no decoders, so this is the decoding
// half of the fast path, written for the fields Envoy fills.
//
// It reports false, having set nothing the caller keeps, for anything else
// (attributes, other metadata, trailers, unknown or repeated fields, a string
// that is not UTF-8): the caller then decodes with the protobuf library,
// which gives the same message or the same error.
//
// With alias, the body is a slice of b (b must outlive the message and never
// change); without, it is copied.
func decodeRequest(b []byte, m *extprocv3.ProcessingRequest, alias bool) bool {
	var out extprocv3.ProcessingRequest
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == 2 || num == 3 || num == 4 || num == 5 || num == 11):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if num == 11 {
				if out.ProtocolConfig != nil {
					return false
				}
				pc, ok := decodeProtocolConfig(v)
				if !ok {
					return false
				}
				out.ProtocolConfig = pc
				continue
			}
			if out.Request != nil {
				return false // two of the oneof: the library merges or replaces
			}
			switch num {
			case 2, 3:
				h, ok := decodeHeaders(v)
				if !ok {
					return false
				}
				if num == 2 {
					out.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}
				} else {
					out.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}
				}
			case 4, 5:
				body, ok := decodeBody(v, alias)
				if !ok {
					return false
				}
				if num == 4 {
					out.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: body}
				} else {
					out.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: body}
				}
			}
		case typ == protowire.BytesType && num == 8:
			// Envoy sends a metadata_context on every message: empty, or
			// with the body module's summary. Two are merged by the library.
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || out.MetadataContext != nil {
				return false
			}
			b = b[n:]
			md, ok := decodeMetadata(v)
			if !ok {
				return false
			}
			out.MetadataContext = md
		case typ == protowire.VarintType && num == 10:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			out.ObservabilityMode = protowire.DecodeBool(v)
		default:
			return false
		}
	}
	m.Reset()
	m.Request, m.ProtocolConfig, m.ObservabilityMode, m.MetadataContext = out.Request, out.ProtocolConfig, out.ObservabilityMode, out.MetadataContext
	return true
}

// decodeMetadata decodes a metadata context whose namespaces hold string
// values only (the body module's summary, routing.BodyNamespace). Typed
// metadata, other values, a key given twice and map entries other than a
// key and then a value are the library's.
func decodeMetadata(b []byte) (*corev3.Metadata, bool) {
	fm, ok := decodeMap(b, func(v []byte) (*structpb.Struct, bool) {
		fields, ok := decodeMap(v, stringValue)
		return &structpb.Struct{Fields: fields}, ok
	})
	return &corev3.Metadata{FilterMetadata: fm}, ok
}

// decodeMap decodes the entries of a map field numbered 1 (mapEntry), each
// key once, their values with value.
func decodeMap[V any](b []byte, value func([]byte) (V, bool)) (map[string]V, bool) {
	var m map[string]V
	for len(b) > 0 {
		key, v, rest, ok := mapEntry(b)
		if _, twice := m[key]; !ok || twice {
			return nil, false
		}
		val, ok := value(v)
		if !ok {
			return nil, false
		}
		if m == nil {
			m = make(map[string]V, 1)
		}
		m[key] = val
		b = rest
	}
	return m, true
}

// mapEntry reads the entry of a map field numbered 1 that starts b: its
// key (field 1) and then its value (field 2), both length-delimited, the
// key UTF-8.
func mapEntry(b []byte) (key string, value, rest []byte, ok bool) {
	entry, rest, ok := bytesField(b, 1)
	if !ok {
		return "", nil, nil, false
	}
	k, entry, ok := bytesField(entry, 1)
	if !ok || !utf8.Valid(k) {
		return "", nil, nil, false
	}
	value, entry, ok = bytesField(entry, 2)
	if !ok || len(entry) > 0 {
		return "", nil, nil, false
	}
	return string(k), value, rest, true
}

// stringValue decodes a google.protobuf.Value that is a UTF-8 string.
func stringValue(b []byte) (*structpb.Value, bool) {
	v, rest, ok := bytesField(b, 3)
	if !ok || len(rest) > 0 || !utf8.Valid(v) {
		return nil, false
	}
	return structpb.NewStringValue(string(v)), true
}

// bytesField reads the length-delimited field num that starts b.
func bytesField(b []byte, num protowire.Number) (v, rest []byte, ok bool) {
	n, typ, l := protowire.ConsumeTag(b)
	if l < 0 || n != num || typ != protowire.BytesType {
		return nil, nil, false
	}
	v, m := protowire.ConsumeBytes(b[l:])
	if m < 0 {
		return nil, nil, false
	}
	return v, b[l+m:], true
}

// decodeHeaders decodes HttpHeaders without attributes.
func decodeHeaders(b []byte) (*extprocv3.HttpHeaders, bool) {
	h := &extprocv3.HttpHeaders{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType && h.Headers == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			hm, ok := decodeHeaderMap(v)
			if !ok {
				return nil, false
			}
			h.Headers = hm
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			h.EndOfStream = protowire.DecodeBool(v)
		default:
			return nil, false
		}
	}
	return h, true
}

// decodeHeaderMap decodes a HeaderMap; every header in one allocation.
func decodeHeaderMap(b []byte) (*corev3.HeaderMap, bool) {
	count := 0
	for rest := b; len(rest) > 0; count++ {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		_, m := protowire.ConsumeBytes(rest[n:])
		if m < 0 {
			return nil, false
		}
		rest = rest[n+m:]
	}
	values := make([]corev3.HeaderValue, count)
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, count)}
	for i := range count {
		_, _, n := protowire.ConsumeTag(b)
		v, m := protowire.ConsumeBytes(b[n:])
		b = b[n+m:]
		if !decodeHeaderValue(v, &values[i]) {
			return nil, false
		}
		hm.Headers[i] = &values[i]
	}
	return hm, true
}

func decodeHeaderValue(b []byte, hv *corev3.HeaderValue) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || num < 1 || num > 3 {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		switch num {
		case 1, 2:
			if !utf8.Valid(v) { // proto3 strings: the library refuses them
				return false
			}
			if num == 1 {
				hv.Key = string(v)
			} else {
				hv.Value = string(v)
			}
		case 3:
			hv.RawValue = append([]byte(nil), v...)
		}
	}
	return true
}

// decodeBody decodes HttpBody: the body and its end-of-stream flags.
func decodeBody(b []byte, alias bool) (*extprocv3.HttpBody, bool) {
	body := &extprocv3.HttpBody{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			switch {
			case len(v) == 0:
				body.Body = nil // as the library decodes an empty body
			case alias:
				body.Body = v[:len(v):len(v)] // an append must not write into what follows
			default:
				body.Body = append([]byte(nil), v...)
			}
		case num >= 2 && num <= 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			f := protowire.DecodeBool(v)
			switch num {
			case 2:
				body.EndOfStream = f
			case 3:
				body.EndOfStreamWithoutMessage = f
			case 4:
				body.GrpcMessageCompressed = f
			case 5:
				body.DrainComplete = f
			}
		default:
			return nil, false
		}
	}
	return body, true
}

func decodeProtocolConfig(b []byte) (*extprocv3.ProtocolConfiguration, bool) {
	pc := &extprocv3.ProtocolConfiguration{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType || num < 1 || num > 3 {
			return nil, false
		}
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return nil, false
		}
		b = b[n+m:]
		switch num {
		case 1:
			pc.RequestBodyMode = filterv3.ProcessingMode_BodySendMode(int32(v))
		case 2:
			pc.ResponseBodyMode = filterv3.ProcessingMode_BodySendMode(int32(v))
		case 3:
			pc.SendBodyWithoutWaitingForHeaderResponse = protowire.DecodeBool(v)
		}
	}
	return pc, true
}
