package temporal

import (
	"errors"
	"fmt"
	"time"

	sdktemporal "go.temporal.io/sdk/temporal"
	tworkflow "go.temporal.io/sdk/workflow"

	"github.com/opskit/opskit/workflow"
)

// wfRun is one rollout's state inside the workflow code. Workflow code
// runs one coroutine at a time, so it needs no locks.
type wfRun struct {
	in       Input
	opts     Options
	st       Status
	failures int
	tripped  *TargetStatus
	abort    bool                   // abort asked
	canceled bool                   // targets in flight were canceled
	inflight []tworkflow.CancelFunc // per target while it runs
	emit     func(workflow.Event)
}

// cancelInFlight cancels the targets running now, and any later start.
func (r *wfRun) cancelInFlight() {
	r.canceled = true
	for _, c := range r.inflight {
		if c != nil {
			c()
		}
	}
}

// workflows holds the definitions whose OnEvent the workflow code calls.
type workflows struct {
	defs map[string]*Definition
}

// Rollout is the rollout workflow: workflow.Runner's algorithm with each
// check, gate and state an activity.
func (w *workflows) Rollout(ctx tworkflow.Context, in Input) (Status, error) {
	r := &wfRun{in: in, opts: in.Options}
	r.emit = func(workflow.Event) {}
	if d := w.defs[in.Options.Definition]; d != nil && d.OnEvent != nil {
		r.emit = func(ev workflow.Event) {
			if !tworkflow.IsReplaying(ctx) {
				ev.Time = tworkflow.Now(ctx)
				d.OnEvent(ev)
			}
		}
	}
	if r.opts.HeartbeatTimeout == 0 {
		r.opts.HeartbeatTimeout = 10 * time.Second
	}
	if r.opts.StateTimeout == 0 {
		r.opts.StateTimeout = time.Hour
	}
	for _, t := range in.Targets {
		o := OutcomeNotStarted
		if t.Skip {
			o = OutcomeSkipped
		}
		r.st.Targets = append(r.st.Targets, TargetStatus{Name: t.Name, Outcome: o})
	}
	if err := tworkflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return r.st, nil }); err != nil {
		return r.st, err
	}
	r.inflight = make([]tworkflow.CancelFunc, len(in.Targets))
	r.signals(ctx)
	actx := tworkflow.WithActivityOptions(ctx, r.activityOptions())
	r.run(ctx, actx)
	return r.st, nil
}

func (r *wfRun) activityOptions() tworkflow.ActivityOptions {
	return tworkflow.ActivityOptions{
		ScheduleToCloseTimeout: r.opts.StateTimeout,
		HeartbeatTimeout:       r.opts.HeartbeatTimeout,
		WaitForCancellation:    true,
		RetryPolicy: &sdktemporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        10 * time.Second,
			NonRetryableErrorTypes: []string{errTypeFailed},
		},
	}
}

// signals starts the coroutines that receive the control signals.
func (r *wfRun) signals(ctx tworkflow.Context) {
	recv := func(name string, fn func(ctx tworkflow.Context, c tworkflow.ReceiveChannel)) {
		ch := tworkflow.GetSignalChannel(ctx, name)
		tworkflow.Go(ctx, func(ctx tworkflow.Context) {
			for ctx.Err() == nil {
				fn(ctx, ch)
			}
		})
	}
	recv(SignalPause, func(ctx tworkflow.Context, c tworkflow.ReceiveChannel) {
		if c.Receive(ctx, nil) {
			r.st.Paused = true
		}
	})
	recv(SignalResume, func(ctx tworkflow.Context, c tworkflow.ReceiveChannel) {
		if c.Receive(ctx, nil) {
			r.st.Paused = false
		}
	})
	recv(SignalPromote, func(ctx tworkflow.Context, c tworkflow.ReceiveChannel) {
		if c.Receive(ctx, nil) {
			r.st.Promoted = true
		}
	})
	recv(SignalAbort, func(ctx tworkflow.Context, c tworkflow.ReceiveChannel) {
		var cancelInFlight bool
		if !c.Receive(ctx, &cancelInFlight) {
			return
		}
		r.abort, r.st.Aborted = true, true
		if cancelInFlight {
			r.cancelInFlight()
		}
	})
}

func (r *wfRun) phase(p workflow.Phase) {
	r.st.Phase = p
	r.emit(workflow.Event{Kind: workflow.EventPhase, Phase: p})
}

// stopped reports why no more work may start: the workflow was canceled
// or an abort was asked.
func (r *wfRun) stopped(ctx tworkflow.Context) bool { return ctx.Err() != nil || r.abort }

// waitPaused blocks while the rollout is paused.
func (r *wfRun) waitPaused(ctx tworkflow.Context) {
	_ = tworkflow.Await(ctx, func() bool { return !r.st.Paused || r.abort })
}

func (r *wfRun) end(ctx tworkflow.Context, st workflow.EndState, phase workflow.Phase, cause error) {
	if st != workflow.ESSuccess && r.stopped(ctx) {
		st = workflow.ESCanceled
		switch {
		case ctx.Err() != nil:
			r.st.Canceled = true
			cause = errors.New("workflow canceled")
		default:
			cause = ErrAborted
		}
	}
	r.st.Ended, r.st.End, r.st.EndPhase = true, st, phase
	if cause != nil {
		r.st.Err = cause.Error()
	}
	r.emit(workflow.Event{Kind: workflow.EventEnd, Phase: phase, State: st.String(), Err: cause})
}

func (r *wfRun) run(ctx, actx tworkflow.Context) {
	def := r.opts.Definition
	for i, t := range r.in.Targets {
		if t.Skip {
			r.emit(workflow.Event{Kind: workflow.EventSkip, Target: r.in.Targets[i].Name})
		}
	}
	r.phase(workflow.PhasePrecondition)
	for i := range r.in.Preconditions {
		if err := tworkflow.ExecuteActivity(actx, actCheck, CheckInput{Definition: def, Index: i}).Get(ctx, nil); err != nil {
			r.end(ctx, workflow.ESPreconditionFailure, workflow.PhasePrecondition, cause(err))
			return
		}
	}
	if r.stopped(ctx) {
		r.end(ctx, workflow.ESCanceled, workflow.PhasePrecondition, nil)
		return
	}
	var todo []int
	for i, t := range r.in.Targets {
		if !t.Skip {
			todo = append(todo, i)
		}
	}
	ncan := min(r.opts.CanaryNum, len(todo))
	canaries, rest := todo[:ncan], todo[ncan:]

	if len(canaries) > 0 {
		if !r.gate(ctx, actx, workflow.PhaseCanary, workflow.ESPreconditionFailure) {
			return
		}
		for _, i := range canaries {
			r.waitPaused(ctx)
			switch r.runTarget(ctx, actx, i, workflow.PhaseCanary, false) {
			case OutcomeFailed:
				r.end(ctx, workflow.ESCanaryFailure, workflow.PhaseCanary, r.targetErr(i))
				return
			case OutcomeInterrupted, OutcomeNotStarted:
				r.end(ctx, workflow.ESCanceled, workflow.PhaseCanary, nil)
				return
			}
		}
		if r.opts.Soak > 0 && len(rest) > 0 && !r.soak(ctx, actx) {
			return
		}
	}

	if len(rest) > 0 {
		if !r.gate(ctx, actx, workflow.PhaseRollout, workflow.ESCanaryFailure) {
			return
		}
		r.rollout(ctx, actx, rest)
		if r.tripped != nil {
			r.end(ctx, workflow.ESMaxFailures, workflow.PhaseRollout, targetError(*r.tripped))
			return
		}
		if r.stopped(ctx) {
			r.end(ctx, workflow.ESCanceled, workflow.PhaseRollout, nil)
			return
		}
	}

	if nPost := r.in.Postconditions; nPost > 0 {
		if !r.gate(ctx, actx, workflow.PhasePostcondition, workflow.ESPostconditionFailure) {
			return
		}
		for i := range nPost {
			if err := tworkflow.ExecuteActivity(actx, actCheck, CheckInput{Definition: def, Post: true, Index: i}).Get(ctx, nil); err != nil {
				r.end(ctx, workflow.ESPostconditionFailure, workflow.PhasePostcondition, cause(err))
				return
			}
		}
	}
	r.end(ctx, workflow.ESSuccess, "", nil)
}

// soak waits for Soak, for Promote, or for the end; with GateEvery it asks
// the gate on the way. It reports whether the rollout goes on.
func (r *wfRun) soak(ctx, actx tworkflow.Context) bool {
	r.phase(workflow.PhaseSoak)
	deadline := tworkflow.Now(ctx).Add(r.opts.Soak)
	for {
		left := deadline.Sub(tworkflow.Now(ctx))
		if r.opts.GateEvery > 0 {
			left = min(left, r.opts.GateEvery)
		}
		if left > 0 {
			_, _ = tworkflow.AwaitWithTimeout(ctx, left, func() bool { return r.st.Promoted || r.abort })
		}
		if r.stopped(ctx) {
			r.end(ctx, workflow.ESCanceled, workflow.PhaseSoak, nil)
			return false
		}
		if r.opts.GateEvery > 0 && !r.st.Promoted {
			if err := tworkflow.ExecuteActivity(actx, actGate, GateInput{Definition: r.opts.Definition, Phase: workflow.PhaseSoak}).Get(ctx, nil); err != nil {
				r.end(ctx, workflow.ESCanaryFailure, workflow.PhaseSoak, cause(err))
				return false
			}
		}
		if r.st.Promoted || !tworkflow.Now(ctx).Before(deadline) {
			break
		}
	}
	// A pause holds the rollout at the end of the soak.
	r.waitPaused(ctx)
	if r.stopped(ctx) {
		r.end(ctx, workflow.ESCanceled, workflow.PhaseSoak, nil)
		return false
	}
	return true
}

// gate emits the phase and asks the gate; on refusal it ends the rollout.
func (r *wfRun) gate(ctx, actx tworkflow.Context, next workflow.Phase, refused workflow.EndState) bool {
	r.phase(next)
	if !r.in.Gate {
		return true
	}
	if err := tworkflow.ExecuteActivity(actx, actGate, GateInput{Definition: r.opts.Definition, Phase: next}).Get(ctx, nil); err != nil {
		r.end(ctx, refused, next, cause(err))
		return false
	}
	return true
}

func (r *wfRun) rollout(ctx, actx tworkflow.Context, idx []int) {
	next := 0
	wg := tworkflow.NewWaitGroup(ctx)
	n := min(max(r.opts.Concurrency, 1), len(idx))
	for range n {
		wg.Add(1)
		tworkflow.Go(ctx, func(ctx tworkflow.Context) {
			defer wg.Done()
			for {
				r.waitPaused(ctx)
				if next >= len(idx) || r.tripped != nil || r.stopped(ctx) {
					return
				}
				i := idx[next]
				next++
				r.runTarget(ctx, actx, i, workflow.PhaseRollout, true)
			}
		})
	}
	wg.Wait(ctx)
}

func (r *wfRun) targetErr(i int) error { return targetError(r.st.Targets[i]) }

// runTarget runs target i to its outcome: pre-check, states from where it
// starts, post-check; then the failure accounting and the rollback.
func (r *wfRun) runTarget(ctx, actx tworkflow.Context, i int, phase workflow.Phase, budget bool) Outcome {
	ts := &r.st.Targets[i]
	plan := r.in.Targets[i]
	if r.tripped != nil || r.stopped(ctx) || r.canceled {
		return OutcomeNotStarted
	}
	ts.Outcome, ts.Phase = OutcomeRunning, phase
	r.emit(workflow.Event{Kind: workflow.EventStart, Phase: phase, Target: plan.Name})
	tctx, cancel := tworkflow.WithCancel(ctx)
	r.inflight[i] = cancel
	wctx := tworkflow.WithActivityOptions(tctx, r.activityOptions())
	in := StateInput{Definition: r.opts.Definition, Target: plan.Name}
	err := r.runStates(wctx, ts, plan, in)
	r.inflight[i] = nil
	interrupted := tctx.Err() != nil
	cancel()
	switch {
	case err == nil:
		ts.Outcome = OutcomeSucceeded
		r.emit(workflow.Event{Kind: workflow.EventDone, Phase: phase, Target: plan.Name})
		return ts.Outcome
	case interrupted || sdktemporal.IsCanceledError(err):
		ts.Outcome = OutcomeInterrupted
		r.emit(workflow.Event{Kind: workflow.EventInterrupted, Phase: phase, Target: plan.Name, State: ts.State, Err: err})
		return ts.Outcome
	}
	ce := cause(err)
	ts.Outcome, ts.Err = OutcomeFailed, ce.Error()
	r.emit(workflow.Event{Kind: workflow.EventFail, Phase: phase, Target: plan.Name, State: ts.State, Err: ce})
	if budget {
		r.failures++
		if r.failures > r.opts.MaxFailures && r.tripped == nil {
			r.tripped = ts
			if r.opts.CancelInFlight {
				r.cancelInFlight()
			}
		}
	}
	if plan.Rollback {
		rerr := tworkflow.ExecuteActivity(actx, actRollback, in).Get(ctx, nil)
		var rc error
		if rerr != nil {
			rc = cause(rerr)
		}
		r.emit(workflow.Event{Kind: workflow.EventRollback, Phase: phase, Target: plan.Name, State: workflow.StateRollback, Err: rc})
	}
	return OutcomeFailed
}

func (r *wfRun) runStates(wctx tworkflow.Context, ts *TargetStatus, plan TargetPlan, in StateInput) error {
	if plan.PreCheck {
		ts.State, ts.Attempts = workflow.StatePreCheck, 1
		if err := tworkflow.ExecuteActivity(wctx, actPreCheck, in).Get(wctx, nil); err != nil {
			return err
		}
	}
	state := plan.StartsAt
	if state == "" {
		state = plan.States[0]
	}
	for state != workflow.StatePostCheck && state != "" {
		ts.State, ts.Attempts = state, 1
		r.emit(workflow.Event{Kind: workflow.EventState, Phase: ts.Phase, Target: plan.Name, State: state})
		in.State = state
		var out StateOutput
		err := tworkflow.ExecuteActivity(wctx, actState, in).Get(wctx, &out)
		if out.Attempt > 0 {
			ts.Attempts = int(out.Attempt)
		}
		if err != nil {
			return err
		}
		state = out.Next
	}
	if plan.PostCheck {
		ts.State, ts.Attempts = workflow.StatePostCheck, 1
		r.emit(workflow.Event{Kind: workflow.EventState, Phase: ts.Phase, Target: plan.Name, State: workflow.StatePostCheck})
		in.State = ""
		if err := tworkflow.ExecuteActivity(wctx, actPostCheck, in).Get(wctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// cause returns the error a check, gate or state returned, without
// Temporal's activity wrapping.
func cause(err error) error {
	var ae *sdktemporal.ApplicationError
	if errors.As(err, &ae) {
		return errors.New(ae.Message())
	}
	var te *sdktemporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Errorf("timed out (%v)", te.TimeoutType())
	}
	return err
}
