package tracing

import (
	"bytes"

	"google.golang.org/protobuf/encoding/protowire"
)

// OTLP field numbers (opentelemetry/proto: collector/trace/v1, trace/v1,
// common/v1, resource/v1), for the messages the exporter writes.
const (
	fReqResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	fRSResource   = 1 // ResourceSpans.resource
	fRSScopeSpans = 2 // ResourceSpans.scope_spans

	fResourceAttributes = 1 // Resource.attributes

	fSSScope = 1 // ScopeSpans.scope
	fSSSpans = 2 // ScopeSpans.spans

	fScopeName = 1 // InstrumentationScope.name

	fSpanTraceID    = 1
	fSpanSpanID     = 2
	fSpanParentID   = 4
	fSpanName       = 5
	fSpanKind       = 6
	fSpanStart      = 7 // fixed64
	fSpanEnd        = 8 // fixed64
	fSpanAttributes = 9
	fSpanStatus     = 15

	fStatusCode = 3 // Status.code

	fKVKey   = 1 // KeyValue.key
	fKVValue = 2 // KeyValue.value

	fAnyString = 1 // AnyValue.string_value
	fAnyInt    = 3 // AnyValue.int_value

	spanKindServer  = 2 // Span.SpanKind SPAN_KIND_SERVER
	statusCodeError = 2 // Status.StatusCode STATUS_CODE_ERROR
)

// encoder writes ExportTraceServiceRequest messages, reusing its buffers.
type encoder struct {
	spans   []byte // the ScopeSpans.spans fields written so far
	scratch []byte // one span, or one attribute
	attrs   []byte // the current span's attributes
	out     []byte
}

// reset starts a new request.
func (e *encoder) reset() { e.spans = e.spans[:0] }

// add appends one span.
func (e *encoder) add(s *Span) {
	e.attrs = e.attrs[:0]
	method := s.Method()
	path, query, _ := bytes.Cut(s.Target(), []byte{'?'})
	e.attrs = strAttr(e.attrs, fSpanAttributes, "http.request.method", method)
	e.attrs = strAttr(e.attrs, fSpanAttributes, "url.path", path)
	if len(query) > 0 {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "url.query", query)
	}
	e.attrs = intAttr(e.attrs, fSpanAttributes, "http.response.status_code", int64(s.Status))
	if s.Client.IsValid() {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "client.address", s.Client.Addr().AppendTo(e.scratch[:0]))
	}
	e.attrs = strAttr(e.attrs, fSpanAttributes, "flax.listener", []byte(s.Listener))
	if s.Route != "" {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "flax.route", []byte(s.Route))
	}
	if s.BackendGroup != "" {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "flax.backend_group", []byte(s.BackendGroup))
	}
	if s.Upstream.IsValid() {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "flax.upstream.address", s.Upstream.AppendTo(e.scratch[:0]))
	}
	if s.Attempts > 0 {
		e.attrs = intAttr(e.attrs, fSpanAttributes, "flax.upstream.attempts", int64(s.Attempts))
	}
	if s.Reason != "" {
		e.attrs = strAttr(e.attrs, fSpanAttributes, "flax.reason", []byte(s.Reason))
	}
	e.attrs = intAttr(e.attrs, fSpanAttributes, "flax.request_bytes", s.RequestBytes)
	e.attrs = intAttr(e.attrs, fSpanAttributes, "flax.response_bytes", s.ResponseBytes)

	b := e.scratch[:0]
	b = protowire.AppendTag(b, fSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, s.Trace[:])
	b = protowire.AppendTag(b, fSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, s.ID[:])
	if !s.Parent.IsZero() {
		b = protowire.AppendTag(b, fSpanParentID, protowire.BytesType)
		b = protowire.AppendBytes(b, s.Parent[:])
	}
	// The name is "METHOD route", or the method alone (semantic conventions:
	// low cardinality; the route names a rule of the configuration).
	b = protowire.AppendTag(b, fSpanName, protowire.BytesType)
	n := len(method)
	if s.Route != "" {
		n += 1 + len(s.Route)
	}
	b = protowire.AppendVarint(b, uint64(n))
	b = append(b, method...)
	if s.Route != "" {
		b = append(b, ' ')
		b = append(b, s.Route...)
	}
	b = protowire.AppendTag(b, fSpanKind, protowire.VarintType)
	b = protowire.AppendVarint(b, spanKindServer)
	b = protowire.AppendTag(b, fSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.Start))
	b = protowire.AppendTag(b, fSpanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.End))
	b = append(b, e.attrs...)
	if s.Status >= 500 {
		// Server spans are errors for 5xx answers only (OpenTelemetry HTTP
		// semantic conventions).
		b = protowire.AppendTag(b, fSpanStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, 2)
		b = protowire.AppendTag(b, fStatusCode, protowire.VarintType)
		b = protowire.AppendVarint(b, statusCodeError)
	}
	e.scratch = b
	e.spans = protowire.AppendTag(e.spans, fSSSpans, protowire.BytesType)
	e.spans = protowire.AppendBytes(e.spans, b)
}

// strAttr appends an attribute (a KeyValue as field f) with a string value.
func strAttr(dst []byte, f protowire.Number, key string, val []byte) []byte {
	anyLen := protowire.SizeTag(fAnyString) + protowire.SizeBytes(len(val))
	kv := protowire.SizeTag(fKVKey) + protowire.SizeBytes(len(key)) + protowire.SizeTag(fKVValue) + protowire.SizeBytes(anyLen)
	dst = protowire.AppendTag(dst, f, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(kv))
	dst = protowire.AppendTag(dst, fKVKey, protowire.BytesType)
	dst = protowire.AppendString(dst, key)
	dst = protowire.AppendTag(dst, fKVValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(anyLen))
	dst = protowire.AppendTag(dst, fAnyString, protowire.BytesType)
	return protowire.AppendBytes(dst, val)
}

// intAttr appends an attribute (a KeyValue as field f) with an integer value.
func intAttr(dst []byte, f protowire.Number, key string, val int64) []byte {
	anyLen := protowire.SizeTag(fAnyInt) + protowire.SizeVarint(uint64(val))
	kv := protowire.SizeTag(fKVKey) + protowire.SizeBytes(len(key)) + protowire.SizeTag(fKVValue) + protowire.SizeBytes(anyLen)
	dst = protowire.AppendTag(dst, f, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(kv))
	dst = protowire.AppendTag(dst, fKVKey, protowire.BytesType)
	dst = protowire.AppendString(dst, key)
	dst = protowire.AppendTag(dst, fKVValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(anyLen))
	dst = protowire.AppendTag(dst, fAnyInt, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(val))
}

// request returns the ExportTraceServiceRequest holding the spans added since
// reset, with a resource naming service and the instrumentation scope "flax".
func (e *encoder) request(service, version string) []byte {
	var res []byte
	res = strAttr(res, fResourceAttributes, "service.name", []byte(service))
	if version != "" {
		res = strAttr(res, fResourceAttributes, "service.version", []byte(version))
	}

	var scope []byte
	scope = protowire.AppendTag(scope, fScopeName, protowire.BytesType)
	scope = protowire.AppendString(scope, "flax")

	var ss []byte
	ss = protowire.AppendTag(ss, fSSScope, protowire.BytesType)
	ss = protowire.AppendBytes(ss, scope)
	ss = append(ss, e.spans...)

	var rs []byte
	rs = protowire.AppendTag(rs, fRSResource, protowire.BytesType)
	rs = protowire.AppendBytes(rs, res)
	rs = protowire.AppendTag(rs, fRSScopeSpans, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)

	e.out = protowire.AppendTag(e.out[:0], fReqResourceSpans, protowire.BytesType)
	e.out = protowire.AppendBytes(e.out, rs)
	return e.out
}
