package gitlabx

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/internal/promreg"
)

// The answers of opskit_gitlabx_deliveries_total: what Hooks.ServeHTTP
// answered GitLab, named rather than numbered because several answers share
// a status code.
const (
	AnswerAccepted         = "accepted"           // 202: the Intake stored the delivery
	AnswerDuplicate        = "duplicate"          // 200: a redelivery, dropped by its dedupe key
	AnswerIgnored          = "ignored"            // 200: unknown event, no handler, the bot's own event
	AnswerDropped          = "dropped"            // 202: the in-memory queue was full or shut down; the delivery is lost (logged)
	AnswerUnauthorized     = "unauthorized"       // 401: wrong token or signature
	AnswerMalformed        = "malformed"          // 400: not a valid payload
	AnswerTooLarge         = "too_large"          // 413
	AnswerUnavailable      = "unavailable"        // 503: a durable Intake could not store it
	AnswerMethodNotAllowed = "method_not_allowed" // 405: not a POST
)

// Metrics counts what a Hooks receives and handles, on a registry the
// caller owns. Build it with NewMetrics and set HooksConfig.Metrics; one
// Metrics serves one Hooks. It is safe for concurrent use; a nil *Metrics
// counts nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	duplicates prometheus.Counter
	dropped    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	intake     *intakeCollector
}

// NewMetrics registers the webhook receiver's metrics on reg (never pass
// prometheus.DefaultRegisterer unless you mean it):
//
//	opskit_gitlabx_deliveries_total{event,answer}       deliveries answered, by X-Gitlab-Event ("other" for events GitLab does not document) and answer (the Answer* constants)
//	opskit_gitlabx_duplicate_deliveries_total           redeliveries dropped by their dedupe key
//	opskit_gitlabx_dropped_deliveries_total{reason}     deliveries answered 202 but lost: reason busy (queue full) or shutdown
//	opskit_gitlabx_handler_duration_seconds{handler}    time a handler took for one delivery, its retries included
//	opskit_gitlabx_handler_errors_total{handler}        deliveries a handler failed on after its last attempt
//	opskit_gitlabx_intake_pending_deliveries            deliveries stored and not yet handled (IntakeStats.Pending; JetStream: the stream's depth)
//	opskit_gitlabx_intake_pending_bytes                 their size (IntakeStats.PendingBytes)
//	opskit_gitlabx_intake_redeliveries_total            deliveries handed to a handler again (IntakeStats.Redelivered; JetStream only)
//
// The handler label is the registered function's name without its module
// path, "gitlabx.VersionCheck.HandleMergeRequest" for a method value. The
// intake metrics are read from Hooks.Stats at each scrape; the JetStream
// depth is then left out when JetStream does not answer within a second.
// GitLab API calls are counted by observe.NewTransport on the client's HTTP
// client. Registering twice on one registry is an error, as is a nil reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_gitlabx_deliveries_total",
			Help: "Webhook deliveries answered, by event (X-Gitlab-Event, other when unknown) and answer: accepted (202, stored), duplicate and ignored (200), dropped (202 but lost), unauthorized (401), malformed (400), too_large (413), unavailable (503), method_not_allowed (405).",
		}, []string{"event", "answer"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_gitlabx_duplicate_deliveries_total",
			Help: "Redeliveries dropped because a delivery with the same dedupe key (webhook-id, Idempotency-Key, event UUID or body) was stored before.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_gitlabx_dropped_deliveries_total",
			Help: "Deliveries answered 202 but not kept by the in-memory intake, by reason: busy (queue or byte budget full), shutdown. Each is logged with its event UUID; redeliver it from GitLab.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opskit_gitlabx_handler_duration_seconds",
			Help:    "Time one registered handler took for one delivery, its retries and their backoff included.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"handler"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_gitlabx_handler_errors_total",
			Help: "Deliveries a registered handler failed on (returned an error or panicked) after its last attempt.",
		}, []string{"handler"}),
		intake: &intakeCollector{
			pending: prometheus.NewDesc("opskit_gitlabx_intake_pending_deliveries",
				"Deliveries the intake stores that are not handled yet (in memory: queued or running; JetStream: the stream's depth across replicas).", nil, nil),
			bytes: prometheus.NewDesc("opskit_gitlabx_intake_pending_bytes",
				"Size of the deliveries the intake stores that are not handled yet.", nil, nil),
			redelivered: prometheus.NewDesc("opskit_gitlabx_intake_redeliveries_total",
				"Deliveries handed to this replica's handlers again, after a replica crashed or stopped while handling them (JetStream).", nil, nil),
		},
	}
	if err := promreg.Register(reg, "gitlabx: the webhook metrics", m.deliveries, m.duplicates, m.dropped, m.duration, m.errors, m.intake); err != nil {
		return nil, err
	}
	// Series alerts watch exist from the start, so the first increase shows.
	m.dropped.WithLabelValues("busy")
	m.dropped.WithLabelValues("shutdown")
	return m, nil
}

// attach binds m to the Hooks whose intake it reports; one Hooks only.
func (m *Metrics) attach(h *Hooks) error {
	if m == nil {
		return nil
	}
	if !m.intake.hooks.CompareAndSwap(nil, h) {
		return fmt.Errorf("%w: the Metrics already serve another Hooks", ErrConfig)
	}
	return nil
}

func (m *Metrics) answered(event, answer string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(eventLabel(event), answer).Inc()
	switch answer {
	case AnswerDuplicate:
		m.duplicates.Inc()
	}
}

func (m *Metrics) droppedDelivery(err error) {
	if m == nil {
		return
	}
	reason := "busy"
	if errors.Is(err, ErrShutdown) {
		reason = "shutdown"
	}
	m.dropped.WithLabelValues(reason).Inc()
}

func (m *Metrics) handlerRegistered(name string) {
	if m != nil {
		m.errors.WithLabelValues(name)
	}
}

func (m *Metrics) handled(name string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(name).Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues(name).Inc()
	}
}

// intakeCollector reads the intake's state at each scrape.
type intakeCollector struct {
	pending, bytes, redelivered *prometheus.Desc
	hooks                       atomic.Pointer[Hooks]
}

func (c *intakeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.bytes
	ch <- c.redelivered
}

func (c *intakeCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.hooks.Load()
	if h == nil {
		return
	}
	s := h.intake.Stats()
	if s.Pending >= 0 {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending))
	}
	if s.PendingBytes >= 0 {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.PendingBytes))
	}
	ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.CounterValue, float64(s.Redelivered))
}

// knownEvents are the X-Gitlab-Event values GitLab documents; any other
// value (the header is the sender's to choose) is counted as "other", so a
// stranger cannot add series.
var knownEvents = map[string]bool{
	"Push Hook": true, "Tag Push Hook": true, "Issue Hook": true, "Confidential Issue Hook": true,
	"Note Hook": true, "Confidential Note Hook": true, "Merge Request Hook": true, "Wiki Page Hook": true,
	"Pipeline Hook": true, "Job Hook": true, "Deployment Hook": true, "Feature Flag Hook": true,
	"Release Hook": true, "Milestone Hook": true, "Emoji Hook": true, "Resource Access Token Hook": true,
	"Member Hook": true, "Subgroup Hook": true, "Project Hook": true, "Vulnerability Hook": true,
	"Service Hook": true, "System Hook": true, "Build Hook": true,
}

func eventLabel(event string) string {
	if knownEvents[event] {
		return event
	}
	return "other"
}

// handlerName names fn for the handler label: its function name without
// the module path and the method-value suffix.
func handlerName(fn any) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if f == nil {
		return "unknown"
	}
	n := f.Name()
	if i := strings.LastIndex(n, "/"); i >= 0 {
		n = n[i+1:]
	}
	n = strings.TrimSuffix(n, "-fm")
	return strings.NewReplacer("(*", "", ")", "").Replace(n)
}

// tracerName is the instrumentation scope of the delivery spans.
const tracerName = "github.com/opskit/opskit/gitlabx"

// startDelivery opens the span of one delivery's handling, or returns a nil
// span without a TracerProvider.
func (h *Hooks) startDelivery(ctx context.Context, e *Envelope) (context.Context, trace.Span) {
	if h.tracer == nil {
		return ctx, nil
	}
	return h.tracer.Start(ctx, "gitlab webhook "+eventLabel(string(e.Event)),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("gitlab.event", string(e.Event)),
			attribute.String("gitlab.event_uuid", e.EventUUID),
			attribute.String("gitlab.webhook_uuid", e.WebhookUUID),
			attribute.String("opskit.partition", e.Partition),
		))
}

// endDelivery records the handlers' outcome on span and ends it.
func endDelivery(span trace.Span, handlers int, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int("opskit.handlers", handlers))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
