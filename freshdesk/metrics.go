package freshdesk

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/opskit/opskit/internal/promreg"
	"github.com/opskit/opskit/observe"
)

// The results of opskit_freshdesk_escalations_total.
const (
	EscalationCreated     = "created"      // the issue was created
	EscalationUpdated     = "updated"      // notes or attachments were added to the existing issue
	EscalationUnchanged   = "unchanged"    // nothing was new
	EscalationNotFound    = "not_found"    // the ticket does not exist
	EscalationRateLimited = "rate_limited" // Freshdesk kept answering 429 (a *RateLimitError)
	EscalationError       = "error"        // any other failure
)

// The kinds and results of opskit_freshdesk_sync_actions_total.
const (
	SyncClose  = "close"  // an issue was closed
	SyncReopen = "reopen" // an issue was reopened
	SyncNote   = "note"   // a comment was made on an issue

	SyncSynced    = "synced"    // the ticket was told (a note, a reply, a status)
	SyncDuplicate = "duplicate" // the ticket had been told already (a redelivered event)
	SyncIgnored   = "ignored"   // not for the ticket: another project, an issue not escalated, a comment without NotePrefix, an internal or the bridge's own comment, a stale event
	SyncError     = "error"     // the ticket could not be told; the webhook delivery fails and is retried
)

// Metrics counts what a Bridge does, on a registry the caller owns. Build it
// with NewMetrics and set BridgeConfig.Metrics. It is safe for concurrent
// use; a nil *Metrics counts nothing.
type Metrics struct {
	escalations *prometheus.CounterVec
	duration    prometheus.Histogram
	inFlight    prometheus.Gauge
	notes       prometheus.Counter
	attachments prometheus.Counter
	tooLarge    prometheus.Counter
	sync        *prometheus.CounterVec
}

// NewMetrics registers the bridge's metrics on reg (never pass
// prometheus.DefaultRegisterer unless you mean it):
//
//	opskit_freshdesk_escalations_total{result}           escalations ended, result created, updated, unchanged, not_found, rate_limited, error
//	opskit_freshdesk_escalation_duration_seconds         time from the call to Escalate until it returned
//	opskit_freshdesk_escalations_in_flight               escalations running now
//	opskit_freshdesk_notes_copied_total                  conversations copied to GitLab as notes
//	opskit_freshdesk_attachments_copied_total            files uploaded into GitLab
//	opskit_freshdesk_attachments_linked_total            files too large for GitLab, linked to the ticket instead
//	opskit_freshdesk_sync_actions_total{kind,result}     webhook events handled, kind close, reopen, note; result synced, duplicate, ignored, error
//
// The Freshdesk and GitLab API calls themselves are counted by
// observe.NewTransport on the clients' HTTP clients (see Endpoint).
// Registering twice on one registry is an error, as is a nil reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_freshdesk_escalations_total",
			Help: "Escalations of tickets to GitLab that ended, by result: created (new issue), updated (notes or files added), unchanged, not_found (no such ticket), rate_limited (Freshdesk kept answering 429), error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opskit_freshdesk_escalation_duration_seconds",
			Help:    "Time one escalation took, from the call until the issue was up to date or the escalation failed.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opskit_freshdesk_escalations_in_flight",
			Help: "Escalations running now, waiting for their ticket's turn included.",
		}),
		notes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_freshdesk_notes_copied_total",
			Help: "Ticket conversations copied into GitLab as issue notes (one per conversation, never twice).",
		}),
		attachments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_freshdesk_attachments_copied_total",
			Help: "Ticket attachments uploaded into GitLab.",
		}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_freshdesk_attachments_linked_total",
			Help: "Ticket attachments larger than the GitLab upload limit (or refused with 413), linked to the ticket instead of copied.",
		}),
		sync: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_freshdesk_sync_actions_total",
			Help: "GitLab events handled to keep tickets up to date, by kind (close, reopen, note) and result: synced (the ticket was told), duplicate (told before), ignored (not the ticket's), error.",
		}, []string{"kind", "result"}),
	}
	if err := promreg.Register(reg, "freshdesk: the bridge's metrics", m.escalations, m.duration, m.inFlight, m.notes, m.attachments, m.tooLarge, m.sync); err != nil {
		return nil, err
	}
	// Every series exists from the start, so rate() and alerts see the
	// first increase.
	for _, r := range []string{EscalationCreated, EscalationUpdated, EscalationUnchanged, EscalationNotFound, EscalationRateLimited, EscalationError} {
		m.escalations.WithLabelValues(r)
	}
	for _, k := range []string{SyncClose, SyncReopen, SyncNote} {
		for _, r := range []string{SyncSynced, SyncDuplicate, SyncIgnored, SyncError} {
			m.sync.WithLabelValues(k, r)
		}
	}
	return m, nil
}

func (m *Metrics) escalationStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) escalationEnded(result string, esc Escalation, d time.Duration) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	m.escalations.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
	m.notes.Add(float64(esc.NotesAdded))
	m.attachments.Add(float64(esc.AttachmentsCopied))
}

func (m *Metrics) attachmentLinked() {
	if m != nil {
		m.tooLarge.Inc()
	}
}

func (m *Metrics) synced(kind, result string) {
	if m != nil {
		m.sync.WithLabelValues(kind, result).Inc()
	}
}

// escalationResult names the result of an escalation for the metrics.
func escalationResult(esc Escalation, err error) string {
	var rl *RateLimitError
	switch {
	case err == nil && esc.Created:
		return EscalationCreated
	case err == nil && (esc.NotesAdded > 0 || esc.AttachmentsCopied > 0):
		return EscalationUpdated
	case err == nil:
		return EscalationUnchanged
	case errors.As(err, &rl):
		return EscalationRateLimited
	case isTicketNotFound(err):
		return EscalationNotFound
	}
	return EscalationError
}

// isTicketNotFound reports whether err is Freshdesk's 404 for the ticket
// itself (not for an agent or an attachment).
func isTicketNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound && ticketPathRE.MatchString(ae.Path)
}

// tracerName is the instrumentation scope of the bridge's spans.
const tracerName = "github.com/opskit/opskit/freshdesk"

var ticketPathRE = regexp.MustCompile(`/tickets/[0-9]+$`)

func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(tracerName)
	}
	return tp.Tracer(tracerName)
}

// endSpan records err on span and ends it.
func endSpan(span trace.Span, result string, err error) {
	span.SetAttributes(attribute.String("opskit.result", result))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Endpoint names a request of a Freshdesk client for
// observe.TransportConfig.Endpoint: API calls by their path template
// ("/api/v2/tickets/:id/conversations", as observe.RESTEndpoint), and
// attachment downloads, whose pre-signed URLs hold IDs and file names, as
// "attachment".
func Endpoint(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return observe.RESTEndpoint(r)
	}
	return "attachment"
}

// startSpan starts a span of the bridge, a child of ctx's span.
func (b *Bridge) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return b.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}
