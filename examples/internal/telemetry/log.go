package telemetry

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogFormatFlag registers -log-format (text or json, default text) on fs
// and returns its value, for [NewLogger].
func LogFormatFlag(fs *flag.FlagSet) *string {
	return fs.String("log-format", "text", "log `format`: text or json (json adds trace_id and span_id when a span is active)")
}

// NewLogger returns a logger writing records of level and above to w in
// format, "text" (slog's key=value) or "json" (slog's JSON). Both add
// trace_id and span_id to a record logged with a context carrying a valid
// span (slog's *Context methods, or Log with a context). An unknown format is
// an error.
func NewLogger(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("telemetry: log format %q (want text or json)", format)
	}
	return slog.New(traceHandler{h}), nil
}

// traceHandler adds the active span's IDs to each record.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
