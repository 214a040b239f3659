package observe

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/internal/promreg"
)

// ClientMetrics holds the metrics of the calls of one API client. Several
// transports may share it. Build it with NewClientMetrics.
type ClientMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	rateLimited *prometheus.CounterVec
	waited      prometheus.Counter
	remaining   prometheus.Gauge
}

// NewClientMetrics registers the opskit_http_client_* metrics of the client
// called client ("gitlab", "freshdesk") on reg. Clients of different names
// may share a registry; registering the same name twice is an error, as is a
// nil reg.
func NewClientMetrics(reg prometheus.Registerer, client string) (*ClientMetrics, error) {
	cl := prometheus.Labels{"client": client}
	m := &ClientMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_http_client_requests_total", ConstLabels: cl,
			Help: "HTTP calls to the API by endpoint template, method and status code (\"error\" when no response came).",
		}, []string{"endpoint", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opskit_http_client_request_duration_seconds", ConstLabels: cl,
			Help:    "Time from sending an HTTP call to the API until its response headers arrived.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opskit_http_client_in_flight_requests", ConstLabels: cl,
			Help: "HTTP calls to the API waiting for their response headers.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opskit_http_client_rate_limited_total", ConstLabels: cl,
			Help: "HTTP calls the API answered with 429 Too Many Requests, by endpoint template.",
		}, []string{"endpoint"}),
		waited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opskit_http_client_rate_limit_wait_seconds_total", ConstLabels: cl,
			Help: "Seconds the API asked the client to wait in its 429 answers (Retry-After, else RateLimit-Reset).",
		}),
		remaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opskit_http_client_rate_limit_remaining", ConstLabels: cl,
			Help: "Requests left in the API's rate-limit window, from the last RateLimit-Remaining (or X-RateLimit-Remaining) header.",
		}),
	}
	if err := promreg.Register(reg, "observe: the metrics of client "+client,
		m.requests, m.duration, m.inFlight, m.rateLimited, m.waited, m.remaining); err != nil {
		return nil, err
	}
	return m, nil
}

// TransportConfig configures NewTransport. The zero value adds nothing.
type TransportConfig struct {
	// Metrics, when set, counts and times the calls.
	Metrics *ClientMetrics
	// TracerProvider, when set, opens a client span per call (otelhttp),
	// a child of the span in the request's context, named
	// "METHOD endpoint". nil means no spans.
	TracerProvider trace.TracerProvider
	// Propagator injects the span context into the request headers; nil
	// means W3C trace context (traceparent). It is used only with a
	// TracerProvider.
	Propagator propagation.TextMapPropagator
	// Endpoint names a request's endpoint template, for labels and span
	// names; nil means RESTEndpoint. It must map IDs and names to
	// placeholders, or each ID becomes a time series.
	Endpoint func(*http.Request) string
}

// NewTransport wraps base (nil means http.DefaultTransport) with the
// metrics and spans cfg asks for. The returned RoundTripper is safe for
// concurrent use; it does not read or buffer bodies.
func NewTransport(base http.RoundTripper, cfg TransportConfig) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if cfg.Endpoint == nil {
		cfg.Endpoint = RESTEndpoint
	}
	rt := base
	if cfg.TracerProvider != nil {
		prop := cfg.Propagator
		if prop == nil {
			prop = propagation.TraceContext{}
		}
		endpoint := cfg.Endpoint
		rt = otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(cfg.TracerProvider),
			otelhttp.WithPropagators(prop),
			otelhttp.WithMeterProvider(noop.NewMeterProvider()), // metrics are ours, on the caller's registry
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + endpoint(r) }),
		)
	}
	if cfg.Metrics == nil {
		return rt
	}
	return &transport{next: rt, m: cfg.Metrics, endpoint: cfg.Endpoint}
}

type transport struct {
	next     http.RoundTripper
	m        *ClientMetrics
	endpoint func(*http.Request) string
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ep := t.endpoint(r)
	t.m.inFlight.Inc()
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.inFlight.Dec()
	t.m.duration.WithLabelValues(ep, r.Method).Observe(time.Since(start).Seconds())
	if err != nil {
		t.m.requests.WithLabelValues(ep, r.Method, "error").Inc()
		return resp, err
	}
	t.m.requests.WithLabelValues(ep, r.Method, strconv.Itoa(resp.StatusCode)).Inc()
	remaining := resp.Header.Get("RateLimit-Remaining") // GitLab
	if remaining == "" {
		remaining = resp.Header.Get("X-RateLimit-Remaining") // Freshdesk
	}
	if v, err := strconv.ParseFloat(remaining, 64); err == nil {
		t.m.remaining.Set(v)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		t.m.rateLimited.WithLabelValues(ep).Inc()
		if d, ok := retryAfter(resp.Header, time.Now()); ok {
			t.m.waited.Add(d.Seconds())
		}
	}
	return resp, nil
}

// retryAfter is the wait a 429 answer asks for: Retry-After (seconds or an
// HTTP date), else RateLimit-Reset (a Unix time, as GitLab sends it).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := h.Get("RateLimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(time.Unix(s, 0).Sub(now), 0), true
		}
	}
	return 0, false
}

var apiPrefix = regexp.MustCompile(`^/api/v[0-9]+$`)

// singletons are path segments of GitLab's and Freshdesk's APIs that are
// not followed by an ID.
var singletons = map[string]bool{"repository": true, "user": true, "me": true, "search": true, "version": true, "metadata": true}

// RESTEndpoint returns r's path as a template: after an /api/vN prefix, a
// REST path alternates collection names and IDs
// (/projects/7/issues/12/notes), so every second segment becomes ":id"
// whatever it holds (a number, a URL-encoded "group%2Fproject", a tag
// name). Segments known to take no ID (repository, user, search) do not
// count in the alternation. The query is left out, and paths past 12
// segments are cut, so the label's values stay few.
func RESTEndpoint(r *http.Request) string {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	var b strings.Builder
	i := 0
	if len(segs) >= 2 && segs[0] == "api" && apiPrefix.MatchString("/"+segs[0]+"/"+segs[1]) {
		b.WriteString("/" + segs[0] + "/" + segs[1])
		i = 2
	}
	pos := 0
	for n := 0; i < len(segs) && n < 12; i, n = i+1, n+1 {
		s := segs[i]
		b.WriteByte('/')
		switch {
		case pos%2 == 1:
			b.WriteString(":id")
			pos++
		case singletons[s]:
			b.WriteString(s)
		default:
			b.WriteString(s)
			pos++
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}
