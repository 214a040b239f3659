package workflowmetrics_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/workflowmetrics"
)

// value gathers reg and returns the gauge or counter of name whose labels
// include want; ok is false when there is none.
func value(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	return promtest.Lookup(t, reg, name, want)
}

func must(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := value(t, reg, name, want)
	require.True(t, ok, "no %s%v", name, want)
	return v
}

// targets builds n targets with one state, "deploy". Targets named in fail
// fail there while *failing is set; each has a rollback that returns
// rollbackErr[name]. hook, if set, runs inside every deploy.
func targets(n int, fail map[string]bool, failing *atomic.Bool, rollbackErr map[string]error, hook func(name string)) []workflow.Target {
	var ts []workflow.Target
	for i := range n {
		name := string(rune('a' + i))
		ts = append(ts, workflow.Target{
			Name: name,
			States: []workflow.State{{Name: "deploy", Fn: func(ctx context.Context) (workflow.StateFn, error) {
				if hook != nil {
					hook(name)
				}
				if fail[name] && failing.Load() {
					return nil, errors.New("deploy failed")
				}
				return nil, nil
			}}},
			Rollback: func(ctx context.Context) (workflow.StateFn, error) { return nil, rollbackErr[name] },
		})
	}
	return ts
}

// TestRunThenRetryFailed observes a real rollout with two tolerated
// failures (one rollback failing), then a RetryFailed that fixes them.
func TestRunThenRetryFailed(t *testing.T) {
	j, err := workflow.OpenJournal(filepath.Join(t.TempDir(), "journal"))
	require.NoError(t, err)
	defer j.Close()
	reg := prometheus.NewRegistry()
	m := workflowmetrics.New(workflowmetrics.Config{MaxFailures: 2, Targets: 6, Labels: prometheus.Labels{"rollout": "web"}})
	reg.MustRegister(m)

	var failing atomic.Bool
	failing.Store(true)
	var duringPhase, duringRunning float64
	hook := func(name string) {
		if name == "e" { // a non-canary target, while it runs
			duringPhase = must(t, reg, "opskit_workflow_phase", map[string]string{"phase": "rollout"})
			duringRunning = must(t, reg, "opskit_workflow_targets", map[string]string{"status": "running"})
		}
	}
	ts := targets(6, map[string]bool{"c": true, "d": true}, &failing, map[string]error{"d": errors.New("rollback failed")}, hook)
	r := workflow.Runner{CanaryNum: 1, MaxFailures: 2, Journal: j, OnEvent: m.Observe}
	rep, err := r.Run(t.Context(), ts)
	require.NoError(t, err)
	require.Equal(t, workflow.ESSuccess, rep.State)

	assert.Equal(t, 1.0, duringPhase, "phase rollout while a non-canary target runs")
	assert.Equal(t, 1.0, duringRunning, "one target running (Concurrency 1)")
	for status, want := range map[string]float64{"pending": 0, "running": 0, "succeeded": 4, "failed": 2, "interrupted": 0, "skipped": 0} {
		assert.Equal(t, want, must(t, reg, "opskit_workflow_targets", map[string]string{"status": status, "rollout": "web"}), status)
	}
	assert.Equal(t, 2.0, must(t, reg, "opskit_workflow_budget_failures", nil))
	assert.Equal(t, 2.0, must(t, reg, "opskit_workflow_budget_max_failures", nil))
	assert.InDelta(t, 2.0/3, must(t, reg, "opskit_workflow_budget_used_ratio", nil), 1e-9)
	assert.Equal(t, 2.0, must(t, reg, "opskit_workflow_target_failures_total", map[string]string{"phase": "rollout"}))
	assert.Equal(t, 1.0, must(t, reg, "opskit_workflow_rollbacks_total", map[string]string{"result": "ok"}))
	assert.Equal(t, 1.0, must(t, reg, "opskit_workflow_rollbacks_total", map[string]string{"result": "error"}))
	assert.Equal(t, 1.0, must(t, reg, "opskit_workflow_end_state", map[string]string{"state": "ESSuccess"}))
	assert.Equal(t, 0.0, must(t, reg, "opskit_workflow_phase", map[string]string{"phase": "rollout"}), "no phase after the end")
	start := must(t, reg, "opskit_workflow_start_timestamp_seconds", nil)
	end := must(t, reg, "opskit_workflow_end_timestamp_seconds", nil)
	assert.LessOrEqual(t, start, end)

	failing.Store(false)
	rep, err = r.RetryFailed(t.Context(), ts)
	require.NoError(t, err)
	require.Equal(t, []string{"c", "d"}, rep.Succeeded)
	assert.Equal(t, 6.0, must(t, reg, "opskit_workflow_targets", map[string]string{"status": "succeeded"}), "the retried targets now succeeded")
	assert.Equal(t, 0.0, must(t, reg, "opskit_workflow_targets", map[string]string{"status": "failed"}))
	assert.Equal(t, 0.0, must(t, reg, "opskit_workflow_budget_failures", nil), "the budget counts afresh in each run")
	assert.Equal(t, 2.0, must(t, reg, "opskit_workflow_target_failures_total", map[string]string{"phase": "rollout"}), "the counter keeps earlier failures")

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
}

// TestBudgetTripAndTextfile: a tripped budget shows as ratio 1, the
// targets never started as pending, and the textfile says the same.
func TestBudgetTripAndTextfile(t *testing.T) {
	m := workflowmetrics.New(workflowmetrics.Config{MaxFailures: 0, Targets: 5})
	var failing atomic.Bool
	failing.Store(true)
	r := workflow.Runner{MaxFailures: 0, OnEvent: m.Observe}
	rep, err := r.Run(t.Context(), targets(5, map[string]bool{"b": true}, &failing, nil, nil))
	require.Error(t, err)
	require.Equal(t, workflow.ESMaxFailures, rep.State)

	path := filepath.Join(t.TempDir(), "rollout.prom")
	require.NoError(t, m.WriteTextfile(path))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err)
	get := func(name string, label, want string) float64 {
		t.Helper()
		for _, mm := range fams[name].GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == label && l.GetValue() == want {
					return mm.GetGauge().GetValue()
				}
			}
			if label == "" {
				return mm.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s{%s=%q} in the textfile", name, label, want)
		return 0
	}
	assert.Equal(t, 1.0, get("opskit_workflow_budget_used_ratio", "", ""))
	assert.Equal(t, 1.0, get("opskit_workflow_targets", "status", "succeeded"))
	assert.Equal(t, 1.0, get("opskit_workflow_targets", "status", "failed"))
	assert.Equal(t, 3.0, get("opskit_workflow_targets", "status", "pending"), "never started")
	assert.Equal(t, 1.0, get("opskit_workflow_end_state", "state", "ESMaxFailures"))
}
