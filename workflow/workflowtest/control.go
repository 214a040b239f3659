package workflowtest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opskit/opskit/workflow"
)

// testControl runs TestEngine's control scenarios against engines that
// are ControlEngines. Controls come from the targets' states and from a
// goroutine that watches Status; no scenario depends on how long anything
// takes (the promote one gives up after a minute, instead of an hour).
func testControl(t *testing.T, newEngine func(t *testing.T) Engine) {
	control := func(t *testing.T) (Engine, Controller) {
		e := newEngine(t)
		ce, ok := e.(ControlEngine)
		if !ok {
			t.Skipf("%T is not a ControlEngine", e)
		}
		return e, ce.Controller()
	}

	t.Run("control/pause holds, resume goes on", func(t *testing.T) {
		e, ctl := control(t)
		f := &fixture{}
		var resumed atomic.Bool
		f.block = map[string]func(context.Context) error{
			"t0/a": func(context.Context) error { ctl.Pause(); return nil },
			"t1/a": func(context.Context) error {
				if !resumed.Load() {
					return errors.New("t1 started while the rollout was paused")
				}
				return nil
			},
		}
		watch := goWatch(t, func(ctx context.Context) {
			st := waitStatus(ctx, t, ctl, "t0 succeeded while paused", func(st workflow.Status) bool {
				return st.Paused && outcomeOf(st, "t0") == workflow.OutcomeSucceeded
			})
			if got := outcomeOf(st, "t1"); got != workflow.OutcomeNotStarted {
				t.Errorf("t1 while paused = %q; want %q", got, workflow.OutcomeNotStarted)
			}
			resumed.Store(true)
			ctl.Resume()
		})
		rep, err := e.Run(t.Context(), Settings{Concurrency: 1}, f.targets(3))
		watch()
		checkReport(t, rep, err, workflow.ESSuccess, "", []string{"t0", "t1", "t2"}, nil, nil, nil)
	})

	t.Run("control/promote ends the soak", func(t *testing.T) {
		e, ctl := control(t)
		f := &fixture{}
		watch := goWatch(t, func(ctx context.Context) {
			waitStatus(ctx, t, ctl, "the soak", func(st workflow.Status) bool { return st.Phase == workflow.PhaseSoak })
			ctl.Promote()
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		rep, err := e.Run(ctx, Settings{Concurrency: 2, CanaryNum: 1, Soak: time.Hour}, f.targets(3))
		watch()
		checkReport(t, rep, err, workflow.ESSuccess, "", []string{"t0", "t1", "t2"}, nil, nil, nil)
		if st := ctl.Status(); !st.Promoted {
			t.Errorf("Status().Promoted = false after Promote")
		}
	})

	for _, cancelInFlight := range []bool{false, true} {
		name := "control/abort drains the targets in flight"
		if cancelInFlight {
			name = "control/abort cancels the targets in flight"
		}
		t.Run(name, func(t *testing.T) {
			e, ctl := control(t)
			f := &fixture{}
			aborted := make(chan struct{})
			f.block = map[string]func(context.Context) error{
				// t0 is in flight when t1 aborts the rollout.
				"t0/a": func(ctx context.Context) error {
					select {
					case <-aborted:
						if cancelInFlight {
							<-ctx.Done()
						}
					case <-ctx.Done():
					}
					return ctx.Err()
				},
				"t1/a": func(ctx context.Context) error {
					for len(f.log.of("t0")) == 0 {
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
					ctl.Abort(cancelInFlight)
					close(aborted)
					if cancelInFlight {
						<-ctx.Done()
					}
					return ctx.Err()
				},
			}
			rep, err := e.Run(t.Context(), Settings{Concurrency: 2}, f.targets(4))
			if cancelInFlight {
				checkReport(t, rep, err, workflow.ESCanceled, workflow.PhaseRollout, nil, nil, []string{"t0", "t1"}, []string{"t2", "t3"})
			} else {
				checkReport(t, rep, err, workflow.ESCanceled, workflow.PhaseRollout, []string{"t0", "t1"}, nil, nil, []string{"t2", "t3"})
			}
			if !errors.Is(err, workflow.ErrAborted) || errors.Is(err, context.Canceled) {
				t.Errorf("err = %v; want one matching workflow.ErrAborted, not context.Canceled", err)
			}
			if st := ctl.Status(); !st.Aborted || !st.Ended || st.End != workflow.ESCanceled {
				t.Errorf("Status() after the abort = aborted %v, ended %v, end %v; want aborted, ended, ESCanceled", st.Aborted, st.Ended, st.End)
			}
		})
	}

	t.Run("control/status during the run", func(t *testing.T) {
		e, ctl := control(t)
		f := &fixture{}
		f.failIn("t0", "b")
		var during workflow.Status
		f.block = map[string]func(context.Context) error{
			"t1/b": func(context.Context) error { during = ctl.Status(); return nil },
		}
		rep, err := e.Run(t.Context(), Settings{Concurrency: 1, MaxFailures: 1}, f.targets(3))
		checkReport(t, rep, err, workflow.ESSuccess, "", []string{"t1", "t2"}, []string{"t0"}, nil, nil)
		if during.Phase != workflow.PhaseRollout || during.Ended || len(during.Targets) != 3 {
			t.Fatalf("Status() in t1's state b = phase %q, ended %v, %d targets; want the rollout phase, not ended, 3 targets",
				during.Phase, during.Ended, len(during.Targets))
		}
		t0, t1, t2 := during.Targets[0], during.Targets[1], during.Targets[2]
		if t0.Outcome != workflow.OutcomeFailed || t0.State != "b" || t0.Attempts != 1 || !strings.Contains(t0.Err, errFixture.Error()) {
			t.Errorf("t0 = %+v; want failed in state b, attempt 1, with the state's error", t0)
		}
		if t1.Outcome != workflow.OutcomeRunning || t1.State != "b" || t1.Attempts != 1 || t1.Phase != workflow.PhaseRollout {
			t.Errorf("t1 = %+v; want running in state b of the rollout phase, attempt 1", t1)
		}
		if t2.Outcome != workflow.OutcomeNotStarted {
			t.Errorf("t2 = %+v; want not started", t2)
		}
		if st := ctl.Status(); !st.Ended || st.End != workflow.ESSuccess || outcomeOf(st, "t2") != workflow.OutcomeSucceeded {
			t.Errorf("Status() after the run = ended %v, end %v, t2 %q; want ended in ESSuccess, t2 succeeded", st.Ended, st.End, outcomeOf(st, "t2"))
		}
	})
}

func outcomeOf(st workflow.Status, target string) workflow.Outcome {
	for _, t := range st.Targets {
		if t.Name == target {
			return t.Outcome
		}
	}
	return ""
}

// goWatch runs fn in a goroutine, with a context that the returned
// function cancels before it waits for fn to return; call it once the run
// ended.
func goWatch(t *testing.T, fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// waitStatus polls ctl's Status until cond holds, or ctx ends (an error
// naming what it waited for).
func waitStatus(ctx context.Context, t *testing.T, ctl Controller, what string, cond func(workflow.Status) bool) workflow.Status {
	for {
		st := ctl.Status()
		if cond(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Errorf("the run ended before %s; last status %+v", what, st)
			return st
		case <-time.After(time.Millisecond):
		}
	}
}
