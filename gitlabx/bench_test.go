package gitlabx_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/gitlabx/jetstream"
	"github.com/opskit/opskit/observe"
)

// BenchmarkAckUnderLoad measures how fast a delivery is answered while
// every GitLab API call takes 2 s (fake latency) and hundreds of accepted
// deliveries are in flight (queued or being handled), each for its own MR
// whose versions differ (four API calls: two file reads, the notes list,
// the note). Eight senders post the b.N deliveries back to back, as GitLab's
// webhook workers do. It reports p50 and p99 of the ack latency and the
// deliveries in flight when the median ack came back, then shuts the
// receiver down and checks that every accepted delivery left its note.
//
// Sub-benchmark "hooks" is gitlabx.Hooks with its in-memory intake;
// "jetstream" is gitlabx.Hooks with the JetStream intake on an embedded
// server with file storage (acks after the PubAck); "synchronous" is the
// same version check run inside the HTTP handler before answering, as a
// naive receiver does, for comparison. "hooks-observed" and
// "jetstream-observed" are the first two with metrics and tracing on, as
// examples/gitlab-hooks runs (gitlabx.Metrics and observe.NewTransport
// metrics on a registry, a span per delivery and per API call, sampled and
// batched to an exporter that drops them), for the instrumentation's
// overhead (issue 20). Run it with make bench-gitlabx (b.N = deliveries);
// scripts/bench-gitlabx.sh prints each mode and the overhead side by side.
func BenchmarkAckUnderLoad(b *testing.B) {
	for _, mode := range []string{"hooks", "hooks-observed", "jetstream", "jetstream-observed", "synchronous"} {
		b.Run(mode, func(b *testing.B) { benchAck(b, mode) })
	}
}

func benchAck(b *testing.B, name string) {
	mode, observed := strings.CutSuffix(name, "-observed")
	const senders = 8
	latency := 2 * time.Second
	srv := gitlabtest.NewServer(b)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	srv.SetFile(proj, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(proj, "feature", "VERSION", []byte("1.0.1\n"))
	bodies := make([][]byte, b.N)
	size := 0
	for i := range b.N {
		mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "feature", AuthorID: 42})
		body, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "open"})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
		size += len(body)
	}
	b.SetBytes(int64(size / b.N))
	b.ReportAllocs()
	glClient := srv.Client()
	var reg *prometheus.Registry
	var metrics *gitlabx.Metrics
	var tp *sdktrace.TracerProvider
	if observed {
		reg = prometheus.NewRegistry()
		glm, err := observe.NewClientMetrics(reg, "gitlab")
		if err != nil {
			b.Fatal(err)
		}
		if metrics, err = gitlabx.NewMetrics(reg); err != nil {
			b.Fatal(err)
		}
		tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer tp.Shutdown(context.Background())
		glClient = srv.Client(gitlab.WithHTTPClient(&http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: glm, TracerProvider: tp})}))
	}
	check, err := gitlabx.NewVersionCheck(glClient, gitlabx.VersionCheckConfig{})
	if err != nil {
		b.Fatal(err)
	}
	var handler http.Handler
	var hooks *gitlabx.Hooks
	switch mode {
	case "hooks", "jetstream":
		cfg := gitlabx.HooksConfig{Token: hookToken, Workers: benchWorkers(), QueueSize: b.N + 1, Metrics: metrics}
		if tp != nil {
			cfg.TracerProvider = tp
		}
		if mode == "jetstream" {
			emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Close()
			in, err := jetstream.New(context.Background(), jetstream.Config{Conn: emb.Conn(), Partitions: benchWorkers()})
			if err != nil {
				b.Fatal(err)
			}
			cfg.Intake = in
		}
		hooks, err = gitlabx.NewHooks(cfg)
		if err != nil {
			b.Fatal(err)
		}
		check.Register(hooks)
		if err := hooks.Start(); err != nil {
			b.Fatal(err)
		}
		handler = hooks
	case "synchronous":
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			ev, err := gitlab.ParseWebhook(gitlab.HookEventType(r), body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := check.HandleMergeRequest(r.Context(), ev.(*gitlab.MergeEvent)); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	hs := httptest.NewServer(handler)
	defer hs.Close()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	srv.SetLatency(latency)

	lat := make([]time.Duration, b.N)
	codes := make([]int, b.N)
	inFlight := make([]int64, b.N) // accepted but not finished, after each ack
	sem := make(chan struct{}, senders)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range b.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			resp, err := gitlabtest.SendWebhook(context.Background(), hs.URL, gitlabtest.MergeRequestHook, bodies[i],
				gitlabtest.WebhookOptions{Token: hookToken, Client: client})
			lat[i] = time.Since(start)
			if hooks != nil {
				st := hooks.Stats()
				inFlight[i] = st.Accepted - st.Done
			}
			if err != nil {
				b.Error(err)
				return
			}
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	b.StopTimer()

	var lost, notes int
	if hooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := hooks.Idle(ctx); err != nil {
			b.Fatal(err)
		}
		if err := hooks.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
	}
	srv.SetLatency(0)
	accepted := 0
	for i, c := range codes {
		if c >= 200 && c < 300 {
			accepted++
			if len(versionNotes(srv, int64(i+1))) == 1 {
				notes++
			} else {
				lost++
			}
		}
	}
	if observed {
		// The metrics saw what the senders saw.
		got := counterSum(b, reg, "opskit_gitlabx_deliveries_total", "answer", "accepted")
		if got != float64(accepted) {
			b.Errorf("opskit_gitlabx_deliveries_total{answer=accepted} = %v; want %d", got, accepted)
		}
	}
	slices.Sort(lat)
	slices.Sort(inFlight)
	b.ReportMetric(float64(inFlight[len(inFlight)/2]), "in-flight-p50")
	b.ReportMetric(float64(inFlight[len(inFlight)-1]), "in-flight-max")
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ack-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ack-ms")
	b.ReportMetric(float64(accepted), "accepted")
	b.ReportMetric(float64(lost), "lost")
	fmt.Fprintf(benchOut{b}, "%s: %d deliveries from %d senders, API latency %s, in flight p50 %d max %d: ack p50 %s p99 %s; accepted %d, notes %d, lost %d",
		name, b.N, senders, latency, inFlight[len(inFlight)/2], inFlight[len(inFlight)-1], p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), accepted, notes, lost)
	if lost > 0 {
		b.Errorf("%d accepted deliveries left no note", lost)
	}
}

// counterSum sums the samples of the counter name whose label has value.
func counterSum(b *testing.B, g prometheus.Gatherer, name, label, value string) float64 {
	fams, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// benchOut logs one line through b.Log.
type benchOut struct{ b *testing.B }

func (o benchOut) Write(p []byte) (int, error) { o.b.Log(string(p)); return len(p), nil }

// benchWorkers is HooksConfig.Workers for the benchmark: $GITLABX_BENCH_WORKERS or 64.
func benchWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("GITLABX_BENCH_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 64
}
