package temporal

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/opskit/opskit/workflow"
)

// Activity names.
const (
	actCheck     = "opskit.Check"
	actGate      = "opskit.Gate"
	actPreCheck  = "opskit.PreCheck"
	actState     = "opskit.State"
	actPostCheck = "opskit.PostCheck"
	actRollback  = "opskit.Rollback"
)

// errTypeFailed marks the error of a state, check or gate that failed:
// it is not retried, unlike a worker that died.
const errTypeFailed = "opskit.Failed"

// CheckInput names one global check.
type CheckInput struct {
	Definition string
	Post       bool
	Index      int
}

// GateInput asks the gate about a phase.
type GateInput struct {
	Definition string
	Phase      workflow.Phase
}

// StateInput names one target (and one of its states).
type StateInput struct {
	Definition string
	Target     string
	State      string `json:",omitempty"`
}

// StateOutput is where a state went: Next is the state it moved to with
// workflow.Goto, "" when the target's machine ended. Attempt is the
// activity attempt that ran it.
type StateOutput struct {
	Next    string
	Attempt int32
}

type activities struct {
	defs map[string]*Definition
}

func (a *activities) def(name string) (*Definition, error) {
	d, ok := a.defs[name]
	if !ok {
		return nil, sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf("%v: %q", ErrUnknownDefinition, name), errTypeFailed, nil)
	}
	return d, nil
}

func (a *activities) target(def, name string) (*workflow.Target, error) {
	d, err := a.def(def)
	if err != nil {
		return nil, err
	}
	for i := range d.Targets {
		if d.Targets[i].Name == name {
			return &d.Targets[i], nil
		}
	}
	return nil, sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf("temporal: definition %s has no target %q", def, name), errTypeFailed, nil)
}

// Check runs a precondition or postcondition.
func (a *activities) Check(ctx context.Context, in CheckInput) error {
	d, err := a.def(in.Definition)
	if err != nil {
		return err
	}
	checks := d.Preconditions
	if in.Post {
		checks = d.Postconditions
	}
	if in.Index < 0 || in.Index >= len(checks) {
		return sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf("temporal: no check %d", in.Index), errTypeFailed, nil)
	}
	c := checks[in.Index]
	return run(ctx, func(ctx context.Context) error {
		if err := c.Fn(ctx); err != nil {
			return fmt.Errorf("check %s: %w", c.Name, err)
		}
		return nil
	})
}

// Gate asks the definition's gate about a phase.
func (a *activities) Gate(ctx context.Context, in GateInput) error {
	d, err := a.def(in.Definition)
	if err != nil {
		return err
	}
	if d.Gate == nil {
		return nil
	}
	return run(ctx, func(ctx context.Context) error {
		if err := d.Gate(ctx, in.Phase); err != nil {
			return fmt.Errorf("gate refused the %s phase: %w", in.Phase, err)
		}
		return nil
	})
}

// PreCheck runs a target's pre-check.
func (a *activities) PreCheck(ctx context.Context, in StateInput) error {
	t, err := a.target(in.Definition, in.Target)
	if err != nil {
		return err
	}
	return run(ctx, t.PreCheck)
}

// PostCheck runs a target's post-check.
func (a *activities) PostCheck(ctx context.Context, in StateInput) error {
	t, err := a.target(in.Definition, in.Target)
	if err != nil {
		return err
	}
	return run(ctx, t.PostCheck)
}

// Rollback runs a failed target's rollback.
func (a *activities) Rollback(ctx context.Context, in StateInput) error {
	t, err := a.target(in.Definition, in.Target)
	if err != nil {
		return err
	}
	return run(ctx, func(ctx context.Context) error { return runChain(ctx, t.Rollback) })
}

// State runs one named state of a target, with its continuations, up to
// the workflow.Goto that leaves it or the end of the machine.
func (a *activities) State(ctx context.Context, in StateInput) (StateOutput, error) {
	t, err := a.target(in.Definition, in.Target)
	if err != nil {
		return StateOutput{}, err
	}
	out := StateOutput{Attempt: activity.GetInfo(ctx).Attempt}
	fn, ok := stateFn(t, in.State)
	if !ok {
		return out, sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf("%v: %q", workflow.ErrUnknownState, in.State), errTypeFailed, nil)
	}
	err = run(ctx, func(ctx context.Context) error {
		ctx = workflow.WithGoto(ctx, func(name string) (workflow.StateFn, error) {
			if _, ok := stateFn(t, name); !ok {
				return nil, fmt.Errorf("%w: %q", workflow.ErrUnknownState, name)
			}
			out.Next = name
			return nil, nil
		})
		return runChain(ctx, fn)
	})
	return out, err
}

func stateFn(t *workflow.Target, name string) (workflow.StateFn, bool) {
	for _, s := range t.States {
		if s.Name == name {
			return s.Fn, true
		}
	}
	return nil, false
}

func runChain(ctx context.Context, fn workflow.StateFn) error {
	for fn != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if fn, err = fn(ctx); err != nil {
			return err
		}
	}
	return nil
}

// run runs fn while heartbeating. Its error fails the target without a
// retry, unless the activity was canceled: then the context's error goes
// back, and Temporal reports the cancellation.
func run(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return nil
	}
	stop := heartbeat(ctx)
	err := fn(ctx)
	stop()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return sdktemporal.NewNonRetryableApplicationError(err.Error(), errTypeFailed, err)
}

// heartbeat records a heartbeat every third of the activity's heartbeat
// timeout until the returned function is called; the heartbeats are also
// how a cancellation reaches a running state.
func heartbeat(ctx context.Context) func() {
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done); <-stopped }
}
