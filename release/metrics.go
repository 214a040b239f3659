package release

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/opskit/opskit/internal/promreg"
)

// The results of opskit_release_uploads_total and of the opskit.result
// attribute of an upload span.
const (
	UploadCreated      = "created"      // 201: the release was stored and its hook succeeded
	UploadIdentical    = "identical"    // 200: the same product/version/checksum was stored before
	UploadConflict     = "conflict"     // 409: the version is stored with other content
	UploadMismatch     = "mismatch"     // 422, or 460 for a resumable chunk: the checksum did not match the bytes received
	UploadUnauthorized = "unauthorized" // 401: wrong or missing secret
	UploadTooLarge     = "too_large"    // 413: over MaxSize, or the form fields over their budget
	UploadBusy         = "busy"         // 503: MaxConcurrentUploads uploads (or 64 unfinished resumable ones) in progress
	UploadInvalid      = "invalid"      // 400, 404, 405, 412, 415, a resumable 409 offset: a bad, truncated or stalled request
	UploadHookFailed   = "hook_failed"  // 500: the hook failed, the release was removed again
	UploadError        = "error"        // 500 or 507: storing failed
)

// The results of opskit_release_hooks_total.
const (
	HookSucceeded = "succeeded" // the Hook returned nil
	HookFailed    = "failed"    // the Hook returned an error; its release was removed
)

var uploadResults = []string{UploadCreated, UploadIdentical, UploadConflict, UploadMismatch, UploadUnauthorized,
	UploadTooLarge, UploadBusy, UploadInvalid, UploadHookFailed, UploadError}

// Metrics counts what a Receiver receives, on a registry the caller owns.
// Build it with NewMetrics and set ReceiverConfig.Metrics. It is safe for
// concurrent use (receivers sharing one add up); a nil *Metrics counts
// nothing.
type Metrics struct {
	uploads      *prometheus.CounterVec
	bytes        prometheus.Counter
	duration     prometheus.Histogram
	inFlight     prometheus.Gauge
	hooks        *prometheus.CounterVec
	hookDuration prometheus.Histogram
}

// NewMetrics registers the receiver's metrics on reg (never pass
// prometheus.DefaultRegisterer unless you mean it):
//
//	opskit_release_uploads_total{result}         upload requests answered, by result (the Upload* constants)
//	opskit_release_received_bytes_total          release file bytes read from clients, as they arrive
//	opskit_release_upload_duration_seconds       time of the uploads answered 201 or 200, from their first byte until the answer
//	opskit_release_uploads_in_flight             uploads holding one of MaxConcurrentUploads slots now
//	opskit_release_hooks_total{result}           hooks run, result succeeded or failed
//	opskit_release_hook_duration_seconds         time one hook ran
//
// Counted in opskit_release_uploads_total: every POST /release, and of a
// resumable upload (Receiver.Uploads) the POST or PATCH refused with an
// error and the PATCH that completes the file; HEAD, DELETE, OPTIONS and
// the answers that let the upload go on (201 to the creating POST, 204 to
// a PATCH) are not. A resumable upload's duration runs from its creating
// POST. Hooks run again by RunPendingHooks are counted too. Registering
// twice on one registry is an error, as is a nil reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_release_uploads_total",
			Help: "Release upload requests answered, by result: created (201), identical (200, stored before), conflict (409, version stored with other content), mismatch (422 or 460, checksum does not match), unauthorized (401), too_large (413), busy (503, all upload slots taken), invalid (other 4xx: bad, truncated or stalled request), hook_failed (500, release removed), error (500 or 507, storing failed).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_release_received_bytes_total",
			Help: "Bytes of release files read from clients (form file parts and resumable PATCH bodies), counted as they arrive, whatever the upload's result.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opskit_release_upload_duration_seconds",
			Help:    "Time of one upload answered 201 or 200, from the start of its request (a resumable upload: its creating POST) until the answer, the hook included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opskit_release_uploads_in_flight",
			Help: "Authenticated uploads in progress now, each holding one of MaxConcurrentUploads slots (their hook included); when all are taken, further uploads get 503.",
		}),
		hooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_release_hooks_total",
			Help: "Hooks run for newly stored releases (also again after a restart), by result: succeeded, failed (the release was removed and the upload answered 500).",
		}, []string{"result"}),
		hookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opskit_release_hook_duration_seconds",
			Help:    "Time one hook ran, until it returned or failed.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
	}
	if err := promreg.Register(reg, "release: the receiver's metrics", m.uploads, m.bytes, m.duration, m.inFlight, m.hooks, m.hookDuration); err != nil {
		return nil, err
	}
	// Every series exists from the start, so rate() and alerts see the
	// first increase.
	for _, r := range uploadResults {
		m.uploads.WithLabelValues(r)
	}
	m.hooks.WithLabelValues(HookSucceeded)
	m.hooks.WithLabelValues(HookFailed)
	return m, nil
}

func (m *Metrics) slotTaken() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) slotFreed() {
	if m != nil {
		m.inFlight.Dec()
	}
}

func (m *Metrics) uploaded(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.uploads.WithLabelValues(result).Inc()
	if result == UploadCreated || result == UploadIdentical {
		m.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) hookRan(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.hookDuration.Observe(d.Seconds())
	if err != nil {
		m.hooks.WithLabelValues(HookFailed).Inc()
	} else {
		m.hooks.WithLabelValues(HookSucceeded).Inc()
	}
}

// received counts file bytes as they are read from r.
func (m *Metrics) received(r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return &countingReader{r: r, c: m.bytes}
}

type countingReader struct {
	r io.Reader
	c prometheus.Counter
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.c.Add(float64(n))
	}
	return n, err
}

// uploadResult names the result of an answered upload request.
func uploadResult(created bool, err error) string {
	if err == nil {
		if created {
			return UploadCreated
		}
		return UploadIdentical
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		return UploadError
	}
	if ae.result != "" {
		return ae.result
	}
	switch ae.status {
	case http.StatusUnauthorized:
		return UploadUnauthorized
	case http.StatusConflict:
		return UploadConflict
	case http.StatusRequestEntityTooLarge:
		return UploadTooLarge
	case http.StatusUnprocessableEntity, statusChecksumNG:
		return UploadMismatch
	case http.StatusServiceUnavailable:
		return UploadBusy
	}
	if ae.status >= 500 {
		return UploadError
	}
	return UploadInvalid
}

// tracerName is the instrumentation scope of the receiver's spans.
const tracerName = "github.com/opskit/opskit/release"

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(tracerName)
	}
	return tp.Tracer(tracerName)
}

// observation is one counted request: its span and start.
type observation struct {
	rc    *Receiver
	span  trace.Span
	start time.Time
	done  bool
}

// observe starts the span of an upload request and returns r with it in
// its context. The caller must call end or abandon.
func (rc *Receiver) observe(r *http.Request, name string, attrs ...attribute.KeyValue) (*http.Request, *observation) {
	ctx, span := rc.tracer.Start(r.Context(), name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(append(attrs, attribute.String("http.request.method", r.Method))...))
	return r.WithContext(ctx), &observation{rc: rc, span: span, start: time.Now()}
}

// end counts the request and ends its span, just before it is answered
// (so a client that has its answer finds it counted). rel names the
// release where known.
func (o *observation) end(rel Release, created bool, err error) {
	if o == nil || o.done {
		return
	}
	o.done = true
	result := uploadResult(created, err)
	o.rc.metrics.uploaded(result, time.Since(o.start))
	attrs := []attribute.KeyValue{attribute.String("opskit.result", result)}
	if rel.Product != "" {
		attrs = append(attrs, attribute.String("release.product", rel.Product), attribute.String("release.version", rel.Version))
	}
	if err == nil {
		attrs = append(attrs, attribute.String("release.sha256", rel.SHA256), attribute.Int64("release.size", rel.Size))
	}
	var ae *apiError
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if err != nil {
		status = http.StatusInternalServerError
		if errors.As(err, &ae) {
			status = ae.status
		}
	}
	attrs = append(attrs, attribute.Int("http.response.status_code", status))
	o.span.SetAttributes(attrs...)
	if result == UploadHookFailed || result == UploadError {
		cause := err
		if ae != nil && ae.err != nil {
			cause = ae.err
		}
		o.span.RecordError(cause)
		o.span.SetStatus(codes.Error, err.Error())
	}
	o.span.End()
}

// partial ends the span of a resumable request that lets the upload go on,
// without counting it.
func (o *observation) partial(attrs ...attribute.KeyValue) {
	if o == nil || o.done {
		return
	}
	o.done = true
	o.span.SetAttributes(attrs...)
	o.span.End()
}

// abandon ends the span of a request that got no answer (its client went
// away while it waited), unless end or partial did.
func (o *observation) abandon() {
	if o == nil || o.done {
		return
	}
	o.done = true
	o.span.End()
}

// startHook starts the span of one hook, a child of ctx's span.
func (rc *Receiver) startHook(ctx context.Context, rel Release) (context.Context, trace.Span) {
	return rc.tracer.Start(ctx, "release hook", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("release.product", rel.Product), attribute.String("release.version", rel.Version)))
}

// endHook records the hook's outcome on span and ends it.
func endHook(span trace.Span, err error) {
	result := HookSucceeded
	if err != nil {
		result = HookFailed
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attribute.String("opskit.result", result))
	span.End()
}
