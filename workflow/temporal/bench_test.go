package temporal_test

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

var benchTargets = flag.Int("bench-targets", 1000, "no-op targets per rollout in the overhead benchmarks")

func noopTargets(n int) []workflow.Target {
	noop := func(context.Context) (workflow.StateFn, error) { return nil, nil }
	ts := make([]workflow.Target, n)
	for i := range ts {
		ts[i] = workflow.Target{Name: fmt.Sprintf("t%d", i), States: []workflow.State{{Name: "a", Fn: noop}}}
	}
	return ts
}

// BenchmarkOverheadRunner is the local Runner on -bench-targets no-op
// targets, concurrency 100: the baseline for BenchmarkOverheadDevServer.
// scripts/bench-temporal.sh runs both and prints the per-target overhead.
func BenchmarkOverheadRunner(b *testing.B) {
	targets := noopTargets(*benchTargets)
	b.ReportAllocs()
	for b.Loop() {
		r := workflow.Runner{Concurrency: 100}
		if _, err := r.Run(b.Context(), targets); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(targets)), "ns/target")
}

// BenchmarkOverheadDevServer runs the same rollout on a dev server on
// loopback with one in-process worker (skipped without the temporal CLI).
func BenchmarkOverheadDevServer(b *testing.B) {
	srv := startDevServer(b)
	c := srv.Client()
	targets := noopTargets(*benchTargets)
	def := &temporal.Definition{Targets: targets}
	w := worker.New(c, "bench", worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{"bench": def})
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	n := 0
	for b.Loop() {
		n++
		run, err := temporal.Start(b.Context(), c, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-%d", n), TaskQueue: "bench"}, def,
			temporal.Options{Definition: "bench", Concurrency: 100})
		if err != nil {
			b.Fatal(err)
		}
		if rep, _, err := temporal.Wait(b.Context(), run); err != nil || len(rep.Succeeded) != len(targets) {
			b.Fatalf("Wait = %d succeeded, %v", len(rep.Succeeded), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(targets)), "ns/target")
}
