package workflow

import (
	"errors"
	"fmt"
	"time"
)

// Phase is a stage of a rollout.
type Phase string

// The phases of a rollout, in the order they run.
const (
	PhasePrecondition  Phase = "precondition"
	PhaseCanary        Phase = "canary"
	PhaseSoak          Phase = "soak"
	PhaseRollout       Phase = "rollout"
	PhasePostcondition Phase = "postcondition"
)

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	// EventPhase: a phase began (Target is empty).
	EventPhase EventKind = "phase"
	// EventStart: a target started.
	EventStart EventKind = "start"
	// EventState: a target entered the state named in Event.State.
	EventState EventKind = "state"
	// EventDone: a target succeeded.
	EventDone EventKind = "done"
	// EventFail: a target failed in Event.State with Event.Err.
	EventFail EventKind = "fail"
	// EventInterrupted: a started target was stopped by cancellation
	// (of the run, or by a tripped budget with CancelInFlight) in
	// Event.State. It does not count as a failure.
	EventInterrupted EventKind = "interrupted"
	// EventRollback: a failed target's rollback ran; Err is its error.
	EventRollback EventKind = "rollback"
	// EventSkip: a target was not run because the journal shows it
	// succeeded (Resume) or did not fail (RetryFailed).
	EventSkip EventKind = "skip"
	// EventEnd: the rollout ended; State holds the EndState's name.
	EventEnd EventKind = "end"
)

// Event reports progress: which target, in which phase and state, what
// happened, with what error, and when. Every event is also a journal record.
type Event struct {
	Time   time.Time
	Kind   EventKind
	Phase  Phase
	Target string
	State  string
	Err    error
}

// TargetError reports a target that failed in State.
type TargetError struct {
	Target string
	Phase  Phase
	State  string
	Err    error
}

func (e *TargetError) msg() string {
	return fmt.Sprintf("target %s failed in state %s: %v", e.Target, e.State, e.Err)
}

// Error says which target failed in which state, and why.
func (e *TargetError) Error() string { return "workflow: " + e.msg() }

// Unwrap returns the error the state returned.
func (e *TargetError) Unwrap() error { return e.Err }

// RunError is returned when a rollout does not end in ESSuccess. State is
// the EndState, Phase where it ended, and Err the cause: a check's or the
// gate's error, the *TargetError that failed a canary or tripped the
// budget, or the context's error (so errors.Is(err, context.Canceled) holds
// for ESCanceled).
type RunError struct {
	State EndState
	Phase Phase
	Err   error
}

// Error names the end state, the phase and the cause.
func (e *RunError) Error() string {
	cause := e.Err.Error()
	var te *TargetError
	if errors.As(e.Err, &te) && te == e.Err {
		cause = te.msg()
	}
	return fmt.Sprintf("workflow: %s in %s phase: %s", e.State, e.Phase, cause)
}

// Unwrap returns the cause.
func (e *RunError) Unwrap() error { return e.Err }

// ErrInvalid is wrapped by errors about a Runner's settings or targets
// that cannot run.
var ErrInvalid = errors.New("workflow: invalid rollout")

// ErrNoJournal is returned by Resume and RetryFailed when Runner.Journal is nil.
var ErrNoJournal = errors.New("workflow: no journal to resume from")
