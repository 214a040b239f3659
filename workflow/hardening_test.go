package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

// TestHardening01ResumeReadsOnlyLatestRollout (issue 14, item 1): a
// journal reused by a second rollout must not make that rollout's targets
// look done because the first one finished them; resuming with another
// plan or rollout ID is refused unless asked for.
func TestHardening01ResumeReadsOnlyLatestRollout(t *testing.T) {
	backends := []string{"web1", "web2", "web3", "web4"}
	// version builds the targets of one release; installed records which
	// version each backend ended up with.
	installed := map[string]string{}
	version := func(v string, cancelAfter string, cancel context.CancelFunc) []workflow.Target {
		var ts []workflow.Target
		for _, b := range backends {
			ts = append(ts, workflow.Target{Name: b, States: []workflow.State{
				{Name: "install", Fn: func(ctx context.Context) (workflow.StateFn, error) {
					installed[b] = v
					if b == cancelAfter && cancel != nil {
						cancel()
					}
					return nil, nil
				}},
			}})
		}
		return ts
	}
	path := filepath.Join(t.TempDir(), "rollout.journal")
	j := openJournal(t, path)

	// v1 everywhere.
	r := workflow.Runner{CanaryNum: 1, Journal: j}
	rep, err := r.Run(t.Context(), version("v1", "", nil))
	require.NoError(t, err)
	require.Equal(t, backends, rep.Succeeded)
	v1 := rep.Rollout
	require.NotEmpty(t, v1, "Run reports the rollout ID it journaled")

	// v2, canceled after the canary web1.
	ctx, cancel := context.WithCancel(t.Context())
	rep, err = r.Run(ctx, version("v2", "web1", cancel))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []string{"web1"}, rep.Succeeded)
	require.NotEqual(t, v1, rep.Rollout, "each Run is a new rollout")
	ep, ok := j.Epoch()
	require.True(t, ok)
	assert.Equal(t, rep.Rollout, ep.Rollout)
	st, ok := j.Status("web2")
	assert.False(t, ok, "web2 has no record in the v2 rollout; got %+v", st)

	// Resume v2 in a new process: web2..web4 must get v2.
	require.NoError(t, j.Close())
	j = openJournal(t, path)
	r.Journal = j
	rep, err = r.Resume(t.Context(), version("v2", "", nil))
	require.NoError(t, err)
	assert.Equal(t, workflow.ESSuccess, rep.State)
	assert.Equal(t, []string{"web1"}, rep.Skipped)
	assert.Equal(t, []string{"web2", "web3", "web4"}, rep.Succeeded)
	for _, b := range backends {
		assert.Equal(t, "v2", installed[b], "%s after resuming v2", b)
	}

	t.Run("plan changed", func(t *testing.T) {
		other := version("v3", "", nil)
		other[2].States = append(other[2].States, workflow.State{Name: "verify", Fn: func(context.Context) (workflow.StateFn, error) { return nil, nil }})
		var events []workflow.Event
		r := workflow.Runner{Journal: j, OnEvent: func(ev workflow.Event) { events = append(events, ev) }}
		clear(installed)
		for _, call := range []func(context.Context, []workflow.Target) (workflow.Report, error){r.Resume, r.RetryFailed} {
			_, err := call(t.Context(), other)
			var pm *workflow.PlanMismatchError
			require.ErrorAs(t, err, &pm)
			assert.ErrorIs(t, err, workflow.ErrPlanMismatch)
			assert.Equal(t, workflow.PlanDigest(version("v2", "", nil)), pm.Journaled.Plan)
			assert.Equal(t, workflow.PlanDigest(other), pm.Plan)
			assert.Contains(t, err.Error(), "AllowPlanChange")
		}
		assert.Empty(t, installed, "nothing ran")
		assert.Empty(t, events, "nothing was journaled")

		r.AllowPlanChange = true
		rep, err := r.Resume(t.Context(), other)
		require.NoError(t, err, "AllowPlanChange continues the journaled rollout")
		assert.Equal(t, []string{"web1", "web2", "web3", "web4"}, rep.Skipped)
		ep, _ := j.Epoch()
		assert.Equal(t, workflow.PlanDigest(other), ep.Plan, "the journal now holds the plan it was resumed with")
	})

	t.Run("rollout ID changed", func(t *testing.T) {
		r := workflow.Runner{Journal: j, RolloutID: "app v9"}
		_, err := r.Resume(t.Context(), version("v9", "", nil))
		var pm *workflow.PlanMismatchError
		require.ErrorAs(t, err, &pm)
		assert.Contains(t, err.Error(), `"app v9"`)
	})

	t.Run("retry failed reads only the latest rollout", func(t *testing.T) {
		jr := openJournal(t, filepath.Join(t.TempDir(), "journal"))
		failing := true
		mk := func(v string) []workflow.Target {
			ts := version(v, "", nil)
			ts[2].States[0].Fn = func(context.Context) (workflow.StateFn, error) {
				if failing {
					return nil, errBoom
				}
				installed["web3"] = v
				return nil, nil
			}
			return ts
		}
		r := workflow.Runner{Journal: jr, RolloutID: "v1", MaxFailures: 1}
		rep, err := r.Run(t.Context(), mk("v1"))
		require.NoError(t, err)
		require.Len(t, rep.Failures, 1)
		failing = false
		r.RolloutID = "v2"
		rep, err = r.Run(t.Context(), mk("v2"))
		require.NoError(t, err)
		require.Equal(t, backends, rep.Succeeded)
		clear(installed)
		rep, err = r.RetryFailed(t.Context(), mk("v2"))
		require.NoError(t, err)
		assert.Equal(t, backends, rep.Skipped, "web3 failed only in v1")
		assert.Equal(t, "v2", rep.Rollout)
		assert.Empty(t, installed)
	})

	t.Run("legacy journal without a header", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "journal")
		require.NoError(t, os.WriteFile(p, []byte(`{"time":"2026-01-02T03:04:05Z","kind":"done","target":"web1"}`+"\n"), 0o644))
		r := workflow.Runner{Journal: openJournal(t, p)}
		_, err := r.Resume(t.Context(), version("v2", "", nil))
		require.ErrorIs(t, err, workflow.ErrPlanMismatch)
		r.AllowPlanChange = true
		rep, err := r.Resume(t.Context(), version("v2", "", nil))
		require.NoError(t, err)
		assert.Equal(t, []string{"web1"}, rep.Skipped)
	})
}

// TestHardening07PanickingStateFailsTarget (issue 14, item 7): a panic in
// a state is that target's failure, with the stack in its error, counted
// against the budget; the process survives, and so does Resume.
func TestHardening07PanickingStateFailsTarget(t *testing.T) {
	rec := newRecorder()
	mk := func() []workflow.Target {
		var ts []workflow.Target
		for _, n := range names("t", 4) {
			ts = append(ts, machine(rec, n, "", nil))
		}
		ts[2].States[1].Fn = func(context.Context) (workflow.StateFn, error) {
			var ts []workflow.Target
			return ts[len(names("t", 4))].States[0].Fn, nil // index out of range
		}
		return ts
	}
	path := filepath.Join(t.TempDir(), "journal")
	j := openJournal(t, path)
	var rollbacks int
	targets := mk()
	targets[2].Rollback = func(context.Context) (workflow.StateFn, error) { rollbacks++; return nil, nil }
	r := workflow.Runner{Concurrency: 2, MaxFailures: 1, Journal: j}
	rep, err := r.Run(t.Context(), targets)
	require.NoError(t, err, "one panic is within a budget of one")
	assert.Equal(t, workflow.ESSuccess, rep.State)
	assert.Equal(t, []string{"t0", "t1", "t3"}, rep.Succeeded)
	require.Len(t, rep.Failures, 1)
	f := rep.Failures[0]
	assert.Equal(t, "t2", f.Target)
	assert.Equal(t, "b", f.State, "the failure is in the state that panicked")
	var pe *workflow.PanicError
	require.ErrorAs(t, f, &pe)
	assert.Contains(t, f.Error(), "index out of range")
	assert.Contains(t, string(pe.Stack), "TestHardening07PanickingStateFailsTarget", "the stack names the panicking function")
	assert.Equal(t, 1, rollbacks, "a panicked target is rolled back like a failed one")
	st, _ := j.Status("t2")
	assert.Equal(t, workflow.StatusFailed, st.Status)
	assert.Contains(t, st.Err, "index out of range", "the journal records the panic")

	// The budget counts panics: with none tolerated, the rollout stops.
	r0 := workflow.Runner{MaxFailures: 0}
	rep, err = r0.Run(t.Context(), mk())
	assert.Equal(t, workflow.ESMaxFailures, rep.State)
	assert.ErrorAs(t, err, &pe)
	assert.Equal(t, []string{"t3"}, rep.NotStarted)

	// Resume in a new process retries t2 at b; it panics again, as a failure.
	ranA := rec.count("t2", "a")
	require.NoError(t, j.Close())
	r.Journal = openJournal(t, path)
	r.MaxFailures = 0
	rep, err = r.RetryFailed(t.Context(), mk())
	assert.Equal(t, workflow.ESMaxFailures, rep.State)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, ranA, rec.count("t2", "a"), "state a did not run again: the retry restarted at b")

	// A panicking check or gate is a failure of the rollout, not a crash.
	rc := workflow.Runner{Preconditions: []workflow.Check{{Name: "lb", Fn: func(context.Context) error { panic("no lb") }}}}
	rep, err = rc.Run(t.Context(), mk())
	assert.Equal(t, workflow.ESPreconditionFailure, rep.State)
	assert.ErrorContains(t, err, "no lb")
	rc = workflow.Runner{CanaryNum: 1, Gate: func(context.Context, workflow.Phase) error { panic(errors.New("gate down")) }}
	rep, err = rc.Run(t.Context(), mk())
	assert.Equal(t, workflow.ESPreconditionFailure, rep.State)
	assert.ErrorContains(t, err, "gate down")
}

// TestHardening14OpenJournalAppliesOnlyKept (issue 14, item 14): a last
// record without its newline is cut from the file, so it must not be
// applied in memory either; what Status says is what the file says.
func TestHardening14OpenJournalAppliesOnlyKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	start := `{"time":"2026-01-02T03:04:05Z","kind":"start","target":"web1"}` + "\n"
	state := `{"time":"2026-01-02T03:04:06Z","kind":"state","target":"web1","state":"copy"}` + "\n"
	doneNoNewline := `{"time":"2026-01-02T03:04:07Z","kind":"done","target":"web1"}`
	require.NoError(t, os.WriteFile(path, []byte(start+state+doneNoNewline), 0o644))

	j := openJournal(t, path)
	st, ok := j.Status("web1")
	require.True(t, ok)
	assert.Equal(t, workflow.TargetStatus{Status: workflow.StatusRunning, State: "copy"}, st,
		"the unacknowledged done record is not applied")

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, start+state, string(b), "the file keeps only whole lines")
	recs, err := workflow.ReadJournal(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Len(t, recs, 2)
	recs, err = workflow.ReadJournal(strings.NewReader(start + state + doneNoNewline))
	require.NoError(t, err)
	assert.Len(t, recs, 2, "ReadJournal drops the same torn tail as OpenJournal")

	// Resume restarts web1 at copy rather than skipping it.
	var ran []string
	tg := workflow.Target{Name: "web1", States: []workflow.State{
		{Name: "stop", Fn: func(context.Context) (workflow.StateFn, error) {
			ran = append(ran, "stop")
			return workflow.Goto("copy"), nil
		}},
		{Name: "copy", Fn: func(context.Context) (workflow.StateFn, error) { ran = append(ran, "copy"); return nil, nil }},
	}}
	r := workflow.Runner{Journal: j, AllowPlanChange: true} // the hand-written journal has no header
	rep, err := r.Resume(t.Context(), []workflow.Target{tg})
	require.NoError(t, err)
	assert.Equal(t, []string{"web1"}, rep.Succeeded)
	assert.Equal(t, []string{"copy"}, ran)
}
