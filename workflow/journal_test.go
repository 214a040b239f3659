package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

func openJournal(t testing.TB, path string) *workflow.Journal {
	t.Helper()
	j, err := workflow.OpenJournal(path)
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	return j
}

// TestRetryFailedResumesAtFailedState: a target that failed in state b is
// retried from b; states before it do not run again.
func TestRetryFailedResumesAtFailedState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	rec := newRecorder()
	failing := true
	flaky := workflow.Target{Name: "flaky", States: []workflow.State{
		{Name: "a", Fn: func(context.Context) (workflow.StateFn, error) {
			rec.call("flaky", "a")
			return workflow.Goto("b"), nil
		}},
		{Name: "b", Fn: func(context.Context) (workflow.StateFn, error) {
			if failing {
				return nil, errBoom
			}
			rec.call("flaky", "b")
			return workflow.Goto("c"), nil
		}},
		{Name: "c", Fn: func(context.Context) (workflow.StateFn, error) { rec.call("flaky", "c"); return nil, nil }},
	}}
	targets := []workflow.Target{machine(rec, "t0", "", nil), flaky, machine(rec, "t2", "", nil)}

	j1 := openJournal(t, path)
	r := workflow.Runner{MaxFailures: 1, Journal: j1}
	rep, err := r.Run(t.Context(), targets)
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1)
	assert.Equal(t, "b", rep.Failures[0].State, "failure records the state it failed in")
	require.NoError(t, j1.Close())

	// A new process: reopen the journal and retry.
	failing = false
	j2 := openJournal(t, path)
	st, ok := j2.Status("flaky")
	require.True(t, ok)
	assert.Equal(t, workflow.TargetStatus{Status: workflow.StatusFailed, State: "b", Err: "boom"}, st)

	r2 := workflow.Runner{Journal: j2}
	rep, err = r2.RetryFailed(t.Context(), targets)
	require.NoError(t, err)
	assert.Equal(t, []string{"flaky"}, rep.Succeeded)
	assert.Equal(t, []string{"t0", "t2"}, rep.Skipped)
	assert.Equal(t, 1, rec.count("flaky", "a"), "state a ran once: the retry resumed at b")
	assert.Equal(t, 1, rec.count("flaky", "b"))
	assert.Equal(t, 1, rec.count("flaky", "c"))
	assert.Equal(t, 1, rec.count("t0", "a"), "succeeded targets are not rerun")
}

// TestResumeAfterInterruption: a rollout canceled mid-way is resumed;
// succeeded targets are skipped, the interrupted one restarts at its state
// and the rest start fresh.
func TestResumeAfterInterruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	rec := newRecorder()
	ctx, cancel := context.WithCancel(t.Context())
	stop := true
	mk := func(name string) workflow.Target {
		tg := machine(rec, name, "", nil)
		if name == "t2" {
			tg.States[1].Fn = func(ctx context.Context) (workflow.StateFn, error) {
				if stop {
					cancel()
					<-ctx.Done()
					return nil, ctx.Err()
				}
				rec.call(name, "b")
				return workflow.Goto("c"), nil
			}
		}
		return tg
	}
	var targets []workflow.Target
	for _, n := range names("t", 5) {
		targets = append(targets, mk(n))
	}
	j1 := openJournal(t, path)
	r := workflow.Runner{CanaryNum: 1, Journal: j1}
	rep, err := r.Run(ctx, targets)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"t2"}, rep.Interrupted)
	require.NoError(t, j1.Close())

	stop = false
	r2 := workflow.Runner{CanaryNum: 1, Journal: openJournal(t, path)}
	var plan bytes.Buffer
	r2.DryRun, r2.PlanOutput = true, &plan
	_, err = r2.Resume(t.Context(), targets)
	require.NoError(t, err)
	assert.Contains(t, plan.String(), "skip t0\nskip t1\ncanary 1: t2: a → b → c (resumes at b)\nrollout: t3")

	r2.DryRun = false
	rep, err = r2.Resume(t.Context(), targets)
	require.NoError(t, err)
	assert.Equal(t, []string{"t0", "t1"}, rep.Skipped)
	assert.Equal(t, []string{"t2", "t3", "t4"}, rep.Succeeded)
	for _, n := range names("t", 5) {
		for _, s := range []string{"a", "b", "c"} {
			assert.Equal(t, 1, rec.count(n, s), "%s/%s ran once", n, s)
		}
	}
}

func TestReadJournal(t *testing.T) {
	line := func(target, kind string) string {
		return `{"time":"2026-01-02T03:04:05Z","kind":"` + kind + `","target":"` + target + `"}`
	}
	for _, tt := range []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"whole lines", line("a", "start") + "\n" + line("a", "done") + "\n", 2, ""},
		{"torn last line", line("a", "start") + "\n" + `{"time":"2026-01-02T0`, 1, ""},
		{"last line complete but no newline", line("a", "start") + "\n" + line("a", "done"), 1, ""},
		{"blank lines", "\n" + line("a", "start") + "\n\n", 1, ""},
		{"corrupt middle line", line("a", "start") + "\n{oops\n" + line("a", "done") + "\n", 0, "journal line 2"},
		{"corrupt last line with newline", line("a", "start") + "\nnot json\n", 0, "journal line 2"},
		{"unknown field", `{"kind":"start","bogus":1}` + "\n", 0, "journal line 1"},
		{"no kind", `{"target":"a"}` + "\n", 0, "record has no kind"},
		{"two values on a line", line("a", "start") + line("a", "done") + "\n", 0, "trailing data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := workflow.ReadJournal(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				var je *workflow.JournalError
				require.ErrorAs(t, err, &je)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Len(t, recs, tt.want)
		})
	}
}

func TestOpenJournalCutsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openJournal(t, path)
	require.NoError(t, j.Append(workflow.Record{Time: time.Unix(0, 0).UTC(), Kind: workflow.EventState, Target: "a", State: "copy"}))
	require.NoError(t, j.Close())
	// A crash in the middle of the next append.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"time":"1970-01-01T00:00:00Z","kind":"do`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	j = openJournal(t, path)
	st, _ := j.Status("a")
	assert.Equal(t, "copy", st.State)
	require.NoError(t, j.Append(workflow.Record{Time: time.Unix(0, 0).UTC(), Kind: workflow.EventDone, Target: "a"}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	recs, err := workflow.ReadJournal(bytes.NewReader(b))
	require.NoError(t, err, "journal after reopen:\n%s", b)
	assert.Len(t, recs, 2, "the torn line is gone, the new record is whole")

	_, err = workflow.OpenJournal(path)
	assert.ErrorIs(t, err, workflow.ErrJournalLocked, "a second controller on an open journal")
	require.NoError(t, j.Close())

	require.NoError(t, os.WriteFile(path, []byte("garbage\n"), 0o644))
	_, err = workflow.OpenJournal(path)
	var je *workflow.JournalError
	assert.ErrorAs(t, err, &je, "a corrupt journal is refused, not silently reset")
}

// TestJournalWriteFailure: a journal that cannot be written stops the
// rollout before any target; one that fails mid-run fails the target
// whose transition it could not record, before that state runs.
func TestJournalWriteFailure(t *testing.T) {
	rec := newRecorder()
	targets := []workflow.Target{machine(rec, "t0", "", nil), machine(rec, "t1", "", nil)}
	j := openJournal(t, filepath.Join(t.TempDir(), "journal"))
	require.NoError(t, j.Close())
	r := workflow.Runner{Journal: j}
	rep, err := r.Run(t.Context(), targets)
	assert.Equal(t, workflow.ESPreconditionFailure, rep.State)
	assert.ErrorContains(t, err, "journal closed")
	assert.Empty(t, rec.calls, "nothing ran")

	// The disk fails while the canary is in state a.
	j = openJournal(t, filepath.Join(t.TempDir(), "journal"))
	targets[0].States[0].Fn = func(context.Context) (workflow.StateFn, error) {
		j.Close()
		return workflow.Goto("b"), nil
	}
	r = workflow.Runner{CanaryNum: 1, Journal: j}
	rep, err = r.Run(t.Context(), targets)
	assert.Equal(t, workflow.ESCanaryFailure, rep.State)
	assert.ErrorContains(t, err, "journal closed")
	require.Len(t, rep.Failures, 1)
	assert.Equal(t, "a", rep.Failures[0].State, "the failure is in the last journaled state")
	assert.Zero(t, rec.count("t0", "b"), "state b did not run unjournaled")
	assert.Equal(t, []string{"t1"}, rep.NotStarted)
}

func sampleJournal() []byte {
	var buf bytes.Buffer
	for i, k := range []workflow.EventKind{workflow.EventStart, workflow.EventState, workflow.EventFail, workflow.EventDone} {
		b, _ := json.Marshal(workflow.Record{Time: time.Unix(int64(i), 0).UTC(), Kind: k, Phase: workflow.PhaseRollout, Target: "web1", State: "copy", Error: "exit status 1"})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// FuzzReadJournal: decoding never panics; whatever decodes re-encodes to
// records that decode the same; a valid journal cut anywhere (a crash
// mid-append) decodes without error to a prefix of its records.
func FuzzReadJournal(f *testing.F) {
	full := sampleJournal()
	f.Add(full, uint16(len(full)))
	f.Add(full, uint16(10))
	f.Add(full, uint16(len(full)/2))
	f.Add([]byte("{\"kind\":\"start\"}\n{"), uint16(0))
	f.Add([]byte("\n\n\xff"), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		recs, err := workflow.ReadJournal(bytes.NewReader(data))
		if err == nil {
			var buf bytes.Buffer
			for _, r := range recs {
				b, merr := json.Marshal(r)
				require.NoError(t, merr)
				buf.Write(b)
				buf.WriteByte('\n')
			}
			again, err := workflow.ReadJournal(&buf)
			require.NoError(t, err)
			require.Equal(t, len(recs), len(again))
		}
		n := min(int(cut), len(full))
		prefix, err := workflow.ReadJournal(bytes.NewReader(full[:n]))
		require.NoError(t, err, "journal cut at %d", n)
		all, _ := workflow.ReadJournal(bytes.NewReader(full))
		require.LessOrEqual(t, len(prefix), len(all))
		for i := range prefix {
			require.Equal(t, all[i], prefix[i])
		}
	})
}
