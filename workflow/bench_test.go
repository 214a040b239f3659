package workflow_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/opskit/opskit/workflow"
)

const (
	benchTargets     = 10000
	benchConcurrency = 100
)

func noop(context.Context) (workflow.StateFn, error) { return nil, nil }

// BenchmarkRollout10k measures the runner's overhead: 10,000 no-op targets
// at concurrency 100, against a bare errgroup loop doing the same. SetBytes
// counts targets, so MB/s reads as millions of targets per second.
// make bench-workflow prints the ratio of the two.
func BenchmarkRollout10k(b *testing.B) {
	targets := make([]workflow.Target, benchTargets)
	for i := range targets {
		targets[i] = workflow.Target{Name: fmt.Sprintf("t%d", i), States: []workflow.State{{Name: "noop", Fn: noop}}}
	}
	b.Run("runner", func(b *testing.B) {
		b.SetBytes(benchTargets)
		b.ReportAllocs()
		r := workflow.Runner{Concurrency: benchConcurrency}
		for b.Loop() {
			rep, err := r.Run(b.Context(), targets)
			if err != nil || len(rep.Succeeded) != benchTargets {
				b.Fatalf("Run = %v, %d succeeded", err, len(rep.Succeeded))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchTargets), "ns/target")
	})
	// The same with a Control, which follows every event for Status (not
	// part of the runner/errgroup ratio).
	b.Run("controlled", func(b *testing.B) {
		b.SetBytes(benchTargets)
		b.ReportAllocs()
		r := workflow.Runner{Concurrency: benchConcurrency, Control: &workflow.Control{}}
		for b.Loop() {
			rep, err := r.Run(b.Context(), targets)
			if err != nil || len(rep.Succeeded) != benchTargets {
				b.Fatalf("Run = %v, %d succeeded", err, len(rep.Succeeded))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchTargets), "ns/target")
	})
	b.Run("errgroup", func(b *testing.B) {
		b.SetBytes(benchTargets)
		b.ReportAllocs()
		for b.Loop() {
			g, ctx := errgroup.WithContext(b.Context())
			g.SetLimit(benchConcurrency)
			for i := range targets {
				fn := targets[i].States[0].Fn
				g.Go(func() error { _, err := fn(ctx); return err })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchTargets), "ns/target")
	})
}

// BenchmarkRolloutJournal is the same rollout with every transition
// fsync'd to a journal (3 records per target), on 1,000 targets.
func BenchmarkRolloutJournal(b *testing.B) {
	const n = 1000
	targets := make([]workflow.Target, n)
	for i := range targets {
		targets[i] = workflow.Target{Name: fmt.Sprintf("t%d", i), States: []workflow.State{{Name: "noop", Fn: noop}}}
	}
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		j, err := workflow.OpenJournal(b.TempDir() + "/journal")
		if err != nil {
			b.Fatal(err)
		}
		r := workflow.Runner{Concurrency: benchConcurrency, Journal: j}
		if _, err := r.Run(b.Context(), targets); err != nil {
			b.Fatal(err)
		}
		j.Close()
	}
}
