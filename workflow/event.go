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
	// EventBegin: Run began a new rollout, a new epoch of the journal;
	// Rollout holds its ID and Plan its PlanDigest. It is the first event
	// of every Run (after a dry run's plan, which emits nothing).
	EventBegin EventKind = "begin"
	// EventResume: Resume or RetryFailed continues the journal's latest
	// rollout (Rollout) with the plan whose digest is Plan.
	EventResume EventKind = "resume"
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
	// Rollout and Plan are set on EventBegin and EventResume: the
	// rollout's ID and the PlanDigest of its targets.
	Rollout, Plan string
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

// ErrPlanMismatch is matched by the *PlanMismatchError that Resume and
// RetryFailed return when the journal's latest rollout is not this one.
var ErrPlanMismatch = errors.New("workflow: plan differs from the journaled rollout")

// PlanMismatchError is returned by Resume and RetryFailed, before anything
// runs or is journaled, when the journal's latest rollout has another
// plan (target or state names, see PlanDigest) or, when Runner.RolloutID
// is set, another ID; or when the journal holds records written before
// rollouts had IDs. Runner.AllowPlanChange continues anyway. It matches
// ErrPlanMismatch.
type PlanMismatchError struct {
	// Journaled is the latest epoch in the journal (zero for records
	// written before epochs existed).
	Journaled Epoch
	// Rollout and Plan are this call's RolloutID ("" when unset) and
	// PlanDigest.
	Rollout, Plan string
}

// Error names both rollouts and plans.
func (e *PlanMismatchError) Error() string {
	if e.Journaled.Plan == "" && e.Journaled.Rollout == "" {
		return "workflow: the journal holds records of a rollout without an ID or plan; refusing to resume it (set AllowPlanChange to continue anyway)"
	}
	what := "plan"
	if e.Rollout != "" && e.Rollout != e.Journaled.Rollout {
		what = "rollout ID"
		if e.Plan != e.Journaled.Plan {
			what = "rollout ID and plan"
		}
	}
	return fmt.Sprintf("workflow: %s differ from the journaled rollout: journal has rollout %q with plan %s, this is rollout %q with plan %s; refusing to resume (set AllowPlanChange to continue anyway)",
		what, e.Journaled.Rollout, short(e.Journaled.Plan), e.Rollout, short(e.Plan))
}

// Is reports whether target is ErrPlanMismatch.
func (e *PlanMismatchError) Is(target error) bool { return target == ErrPlanMismatch }

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// PanicError is the error of a target whose state, pre-check, post-check
// or rollback panicked (or of a check or gate that did): the runner
// recovers the panic, fails that target with this error (counted against
// the failure budget like any other failure) and goes on. Value is what
// was passed to panic and Stack the goroutine's stack at the panic.
type PanicError struct {
	Value any
	Stack []byte
}

// Error includes the panic value and the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("workflow: panic: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ErrNoJournal is returned by Resume and RetryFailed when Runner.Journal is nil.
var ErrNoJournal = errors.New("workflow: no journal to resume from")
