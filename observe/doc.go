// Package observe is opskit's observability plumbing for code that calls
// HTTP APIs and for batch jobs: a RoundTripper that counts and times every
// call by endpoint template and status, notes rate limiting, and opens an
// OpenTelemetry client span per call; and a writer of node_exporter's
// textfile-collector format.
//
//	m, err := observe.NewClientMetrics(reg, "gitlab") // reg is yours, never the global registry
//	if err != nil {
//		return err
//	}
//	hc := &http.Client{Transport: observe.NewTransport(http.DefaultTransport, observe.TransportConfig{
//		Metrics:        m,
//		TracerProvider: tp, // nil: no spans
//	})}
//	gl, err := gitlab.NewClient(token, gitlab.WithBaseURL(url), gitlab.WithHTTPClient(hc))
//
// Metrics (label client is NewClientMetrics' name, endpoint the path
// template from TransportConfig.Endpoint, RESTEndpoint by default:
// "/api/v4/projects/:id/issues/:id/notes"):
//
//	opskit_http_client_requests_total{client,endpoint,method,code}   code is the status, or "error" when no response came
//	opskit_http_client_request_duration_seconds{client,endpoint,method}   until the response headers
//	opskit_http_client_in_flight_requests{client}
//	opskit_http_client_rate_limited_total{client,endpoint}   429 answers
//	opskit_http_client_rate_limit_wait_seconds_total{client}   the waits those answers asked for (Retry-After, else RateLimit-Reset)
//	opskit_http_client_rate_limit_remaining{client}   the last RateLimit-Remaining (GitLab) or X-RateLimit-Remaining (Freshdesk) header seen
//
// A client that waits on its own limiter before sending (client-go's
// rate.Limiter) waits where no transport can see it; the wait the server
// asked for is what is counted.
//
// Batch jobs that end before Prometheus could scrape them write their
// registry with WriteTextfile into node_exporter's --collector.textfile.directory.
//
// # Testing
//
// The tests run the transport against a loopback server with testutil and an
// in-memory span recorder (go.opentelemetry.io/otel/sdk/trace/tracetest).
package observe
