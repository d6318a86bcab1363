// Package tracing carries W3C Trace Context (traceparent) through the proxy and
// exports the spans of sampled requests over OTLP/HTTP.
//
// The request path only parses and writes traceparent values, decides sampling
// from the trace id, and copies a finished request's fixed-size Span into a
// bounded per-worker queue: no allocation, no lock, no system call. The
// Exporter's goroutine drains the queues, encodes the spans as an OTLP
// ExportTraceServiceRequest (protobuf, written with protowire, so the package
// links no gRPC or OpenTelemetry SDK) and posts them to the collector. A queue
// that is full drops the span and counts it; a failed post counts its spans as
// failed. Nothing the exporter does waits on a request or makes one wait.
package tracing
