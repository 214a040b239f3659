package workflow

import (
	"context"
	"errors"
	"fmt"
)

// StateFn is one state of a target's state machine. It does the state's
// work and returns the state to run next, or nil when the target is done.
// A returned error fails the target in the current state.
//
// To move to another named state, return Goto(name): the runner then
// journals the transition, so that a failure or a crash records that state
// and Resume restarts there. A StateFn returned without Goto runs as a
// continuation of the current state.
type StateFn func(ctx context.Context) (StateFn, error)

// State is a named StateFn.
type State struct {
	Name string
	Fn   StateFn
}

// Names reserved for the runner's own steps; no State may use them.
const (
	StatePreCheck  = "precheck"
	StatePostCheck = "postcheck"
	StateRollback  = "rollback"
)

// Target is one unit of a rollout, such as a backend server, with its work
// described as a state machine.
type Target struct {
	// Name identifies the target in events, the journal and the report.
	// It must be unique and non-empty.
	Name string
	// States are the target's named states; States[0] is where a fresh
	// target starts. At least one is required.
	States []State
	// PreCheck, if set, runs before the first state each time the target
	// starts (also when resumed). An error fails the target without
	// changing the state Resume restarts at.
	PreCheck func(ctx context.Context) error
	// PostCheck, if set, runs after the last state. An error fails the
	// target in state "postcheck"; Resume then runs only the post-check.
	PostCheck func(ctx context.Context) error
	// Rollback, if set, runs after the target failed (not after it was
	// canceled). Its error is reported beside the failure. Resume still
	// restarts at the state that failed.
	Rollback StateFn
}

func (t *Target) state(name string) (StateFn, bool) {
	for _, s := range t.States {
		if s.Name == name {
			return s.Fn, true
		}
	}
	return nil, false
}

// ErrNotInRunner is returned by a StateFn made by Goto when it is called
// outside a Runner.
var ErrNotInRunner = errors.New("workflow: goto called outside a runner")

// ErrUnknownState is returned (wrapped in a *TargetError) when Goto or a
// journal names a state the target does not define.
var ErrUnknownState = errors.New("workflow: unknown state")

type runKey struct{}

type gotoKey struct{}

// Goto returns a StateFn that moves the target to its state called name:
// the runner journals the transition, emits an Event, and runs that state.
// Under another engine, the function set with WithGoto decides instead.
func Goto(name string) StateFn {
	return func(ctx context.Context) (StateFn, error) {
		if tr, ok := ctx.Value(runKey{}).(*targetRun); ok {
			return tr.enter(name)
		}
		if enter, ok := ctx.Value(gotoKey{}).(func(string) (StateFn, error)); ok {
			return enter(name)
		}
		return nil, fmt.Errorf("%w: %q", ErrNotInRunner, name)
	}
}

// WithGoto returns a copy of ctx under which a StateFn made by Goto calls
// enter with its state's name and returns what enter returns. It lets an
// engine other than Runner (such as the Temporal backend in
// workflow/temporal) see a target's transitions: enter typically records
// the name and returns nil, ending the current state so that the engine
// runs the next one itself. Inside a Runner, the Runner's own handling wins.
func WithGoto(ctx context.Context, enter func(name string) (StateFn, error)) context.Context {
	return context.WithValue(ctx, gotoKey{}, enter)
}

// Executor runs cmd on host and returns its standard output. It is the one
// method the workflow package needs from a command executor. For package
// fleet's executors (SSH, local, a fleettest.Recorder) use
// fleet.ShellExecutor{Executor: ex}, which runs cmd as a shell line on host;
// fleet does not import workflow nor workflow fleet, so neither package
// pulls in the other.
type Executor interface {
	Run(ctx context.Context, host, cmd string) ([]byte, error)
}

// Cmd returns a StateFn that runs cmd on host with e and then continues
// with next (nil ends the machine). A failing command fails the state.
func Cmd(e Executor, host, cmd string, next StateFn) StateFn {
	return func(ctx context.Context) (StateFn, error) {
		if _, err := e.Run(ctx, host, cmd); err != nil {
			return nil, err
		}
		return next, nil
	}
}
