package workflow_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

// controlled runs targets with r (its Control and OnEvent set here) in a
// goroutine of the synctest bubble; wait returns what Run returned.
type controlled struct {
	ctl  *workflow.Control
	rec  *recorder
	done chan struct{}
	rep  workflow.Report
	err  error
}

func startControlled(t *testing.T, r workflow.Runner, targets []workflow.Target) *controlled {
	c := &controlled{ctl: &workflow.Control{}, rec: newRecorder(), done: make(chan struct{})}
	if r.Control != nil {
		c.ctl = r.Control
	}
	r.Control, r.OnEvent = c.ctl, c.rec.onEvent
	go func() {
		c.rep, c.err = r.Run(t.Context(), targets)
		close(c.done)
	}()
	synctest.Wait()
	return c
}

func (c *controlled) wait() (workflow.Report, error) {
	<-c.done
	return c.rep, c.err
}

func outcomes(st workflow.Status) map[string]workflow.Outcome {
	m := map[string]workflow.Outcome{}
	for _, t := range st.Targets {
		m[t.Name] = t.Outcome
	}
	return m
}

// gatedTargets builds n gated targets and their channels.
func gatedTargets(n int) ([]workflow.Target, []chan error) {
	var targets []workflow.Target
	chans := make([]chan error, n)
	for i, name := range names("t", n) {
		chans[i] = make(chan error)
		targets = append(targets, gated(name, chans[i]))
	}
	return targets, chans
}

func TestControlPauseHoldsAndResumeGoesOn(t *testing.T) {
	t.Run("held at the end of the soak", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, chans := gatedTargets(3)
			c := startControlled(t, workflow.Runner{CanaryNum: 1, Soak: 10 * time.Minute, Concurrency: 2}, targets)
			c.ctl.Pause()
			chans[0] <- nil // the canary succeeds
			time.Sleep(time.Hour)
			synctest.Wait()
			st := c.ctl.Status()
			assert.True(t, st.Paused && st.Running, "status while paused: %+v", st)
			assert.Equal(t, workflow.PhaseSoak, st.Phase, "a pause holds the rollout at the end of the soak")
			assert.Equal(t, map[string]workflow.Outcome{"t0": workflow.OutcomeSucceeded, "t1": workflow.OutcomeNotStarted, "t2": workflow.OutcomeNotStarted}, outcomes(st))
			assert.Equal(t, []string{"t0"}, c.rec.started(), "nothing started while paused, an hour after the soak's end")

			c.ctl.Resume()
			synctest.Wait()
			assert.Equal(t, []string{"t0", "t1", "t2"}, sorted(c.rec.started()), "resume starts the rest")
			chans[1] <- nil
			chans[2] <- nil
			rep, err := c.wait()
			require.NoError(t, err)
			assert.Equal(t, workflow.ESSuccess, rep.State)
			assert.False(t, c.ctl.Status().Running, "no run after the end")
		})
	})
	t.Run("in-flight targets finish, no new one starts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, chans := gatedTargets(4)
			c := startControlled(t, workflow.Runner{Concurrency: 2}, targets)
			require.Equal(t, []string{"t0", "t1"}, sorted(c.rec.started()))
			c.ctl.Pause()
			chans[0] <- nil
			chans[1] <- nil
			synctest.Wait()
			st := c.ctl.Status()
			assert.Equal(t, map[string]workflow.Outcome{"t0": workflow.OutcomeSucceeded, "t1": workflow.OutcomeSucceeded,
				"t2": workflow.OutcomeNotStarted, "t3": workflow.OutcomeNotStarted}, outcomes(st), "paused")
			c.ctl.Resume()
			synctest.Wait()
			assert.Len(t, c.rec.started(), 4, "resumed")
			chans[2] <- nil
			chans[3] <- nil
			rep, err := c.wait()
			require.NoError(t, err)
			assert.Len(t, rep.Succeeded, 4)
		})
	})
	t.Run("a run can begin paused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, chans := gatedTargets(2)
			ctl := &workflow.Control{}
			ctl.Pause()
			c := startControlled(t, workflow.Runner{CanaryNum: 1, Control: ctl}, targets)
			assert.Empty(t, c.rec.started(), "no canary starts while paused")
			assert.Equal(t, workflow.PhaseCanary, ctl.Status().Phase)
			ctl.Resume()
			chans[0] <- nil
			chans[1] <- nil
			_, err := c.wait()
			require.NoError(t, err)
		})
	})
}

func TestControlPromoteEndsTheSoak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		targets, chans := gatedTargets(2)
		begin := time.Now()
		c := startControlled(t, workflow.Runner{CanaryNum: 1, Soak: time.Hour}, targets)
		chans[0] <- nil
		synctest.Wait()
		require.Equal(t, workflow.PhaseSoak, c.ctl.Status().Phase)
		time.Sleep(time.Minute)
		c.ctl.Promote()
		synctest.Wait()
		assert.Equal(t, []string{"t0", "t1"}, c.rec.started(), "the rollout phase began at the promote")
		chans[1] <- nil
		rep, err := c.wait()
		require.NoError(t, err)
		assert.Equal(t, workflow.ESSuccess, rep.State)
		assert.Less(t, time.Since(begin), time.Hour, "the promote at 1m ended the 1h soak")
		assert.True(t, c.ctl.Status().Promoted)
	})
}

func TestControlAbort(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		name := "drains"
		if cancel {
			name = "cancels in flight"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				targets, chans := gatedTargets(4)
				c := startControlled(t, workflow.Runner{Concurrency: 2}, targets)
				c.ctl.Abort(cancel)
				synctest.Wait()
				if !cancel {
					assert.Equal(t, workflow.OutcomeRunning, outcomes(c.ctl.Status())["t0"], "t0 drains")
					chans[0] <- nil
					chans[1] <- nil
				}
				rep, err := c.wait()
				var re *workflow.RunError
				require.ErrorAs(t, err, &re)
				assert.ErrorIs(t, err, workflow.ErrAborted)
				assert.NotErrorIs(t, err, context.Canceled)
				assert.Equal(t, workflow.ESCanceled, rep.State)
				assert.Equal(t, workflow.PhaseRollout, re.Phase)
				assert.Equal(t, []string{"t2", "t3"}, rep.NotStarted, "nothing starts after an abort")
				if cancel {
					assert.Equal(t, []string{"t0", "t1"}, rep.Interrupted)
				} else {
					assert.Equal(t, []string{"t0", "t1"}, rep.Succeeded)
				}
				st := c.ctl.Status()
				assert.True(t, st.Aborted && st.Ended && st.End == workflow.ESCanceled, "status after: %+v", st)
				assert.Equal(t, workflow.ErrAborted.Error(), st.Err)
			})
		})
	}
	t.Run("during the soak", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, chans := gatedTargets(2)
			begin := time.Now()
			c := startControlled(t, workflow.Runner{CanaryNum: 1, Soak: time.Hour}, targets)
			chans[0] <- nil
			synctest.Wait()
			c.ctl.Abort(false)
			rep, err := c.wait()
			assert.ErrorIs(t, err, workflow.ErrAborted)
			var re *workflow.RunError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, workflow.PhaseSoak, re.Phase)
			assert.Equal(t, []string{"t1"}, rep.NotStarted)
			assert.Less(t, time.Since(begin), time.Hour, "the abort ended the soak")
		})
	})
	t.Run("cancels a canary", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, _ := gatedTargets(3)
			c := startControlled(t, workflow.Runner{CanaryNum: 1, Concurrency: 2}, targets)
			c.ctl.Abort(true)
			rep, err := c.wait()
			assert.ErrorIs(t, err, workflow.ErrAborted)
			var re *workflow.RunError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, workflow.PhaseCanary, re.Phase)
			assert.Equal(t, []string{"t0"}, rep.Interrupted)
			assert.Equal(t, []string{"t1", "t2"}, rep.NotStarted)
			assert.Equal(t, workflow.OutcomeInterrupted, c.ctl.Status().Targets[0].Outcome)
		})
	})
	t.Run("a paused rollout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			targets, chans := gatedTargets(3)
			c := startControlled(t, workflow.Runner{Concurrency: 1}, targets)
			c.ctl.Pause()
			chans[0] <- nil
			synctest.Wait()
			c.ctl.Abort(false)
			rep, err := c.wait()
			assert.ErrorIs(t, err, workflow.ErrAborted)
			assert.Equal(t, []string{"t1", "t2"}, rep.NotStarted)
		})
	})
}

// TestControlTripWhilePaused: a target in flight trips the budget while
// the rollout is paused; the rollout ends then, without a resume.
func TestControlTripWhilePaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		targets, chans := gatedTargets(4)
		c := startControlled(t, workflow.Runner{Concurrency: 2}, targets)
		c.ctl.Pause()
		chans[0] <- nil
		synctest.Wait()
		chans[1] <- errBoom
		rep, err := c.wait()
		var re *workflow.RunError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, workflow.ESMaxFailures, rep.State)
		assert.Equal(t, []string{"t2", "t3"}, rep.NotStarted)
	})
}

func TestControlStatusDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		tries := 0
		retrying := workflow.Target{Name: "t2", States: []workflow.State{
			{Name: "install", Fn: func(ctx context.Context) (workflow.StateFn, error) {
				if tries++; tries < 3 {
					return workflow.Goto("install"), nil // retries itself
				}
				<-release
				return nil, nil
			}},
		}}
		failing := workflow.Target{Name: "t1", States: []workflow.State{
			{Name: "stop", Fn: func(context.Context) (workflow.StateFn, error) { return workflow.Goto("start"), nil }},
			{Name: "start", Fn: func(context.Context) (workflow.StateFn, error) { return nil, errors.New("disk full") }},
		}}
		targets, chans := gatedTargets(1)
		targets = append(targets, failing, retrying)
		c := startControlled(t, workflow.Runner{CanaryNum: 1, Concurrency: 2, MaxFailures: 1}, targets)
		st := c.ctl.Status()
		assert.Equal(t, workflow.PhaseCanary, st.Phase)
		assert.Equal(t, workflow.TargetProgress{Name: "t0", Outcome: workflow.OutcomeRunning, Phase: workflow.PhaseCanary, State: "work", Attempts: 1}, st.Targets[0])
		chans[0] <- nil
		synctest.Wait()
		st = c.ctl.Status()
		assert.Equal(t, workflow.PhaseRollout, st.Phase)
		assert.NotEmpty(t, st.Rollout, "the rollout's ID")
		assert.Equal(t, []workflow.TargetProgress{
			{Name: "t0", Outcome: workflow.OutcomeSucceeded, Phase: workflow.PhaseCanary, State: "work", Attempts: 1},
			{Name: "t1", Outcome: workflow.OutcomeFailed, Phase: workflow.PhaseRollout, State: "start", Attempts: 1, Err: "disk full"},
			{Name: "t2", Outcome: workflow.OutcomeRunning, Phase: workflow.PhaseRollout, State: "install", Attempts: 3},
		}, st.Targets)
		assert.False(t, st.Ended)
		close(release)
		_, err := c.wait()
		require.NoError(t, err)
		st = c.ctl.Status()
		assert.True(t, st.Ended && st.End == workflow.ESSuccess && st.Err == "", "after the end: %+v", st)
		assert.Equal(t, workflow.OutcomeSucceeded, st.Targets[2].Outcome)
	})
}

func TestControlOneRunAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		targets, chans := gatedTargets(1)
		c := startControlled(t, workflow.Runner{}, targets)
		other := workflow.Runner{Control: c.ctl}
		_, err := other.Run(t.Context(), []workflow.Target{gated("x", nil)})
		assert.ErrorIs(t, err, workflow.ErrInvalid, "a second run on a Control in use")
		chans[0] <- nil
		_, err = c.wait()
		require.NoError(t, err)
		// A later run clears the abort of an earlier one.
		c.ctl.Abort(false)
		targets, chans = gatedTargets(1)
		c = startControlled(t, workflow.Runner{Control: c.ctl}, targets)
		chans[0] <- nil
		rep, err := c.wait()
		require.NoError(t, err)
		assert.Equal(t, workflow.ESSuccess, rep.State)
	})
}
