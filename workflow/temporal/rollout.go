package temporal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tworkflow "go.temporal.io/sdk/workflow"

	"github.com/opskit/opskit/workflow"
)

// WorkflowName is the name under which Register registers the rollout
// workflow; start it with Start.
const WorkflowName = "opskit.Rollout"

// Names of the signals and the query the rollout workflow handles. Pause,
// Resume, Promote, Abort and Status send or ask them through a client.
const (
	SignalPause   = "pause"
	SignalResume  = "resume"
	SignalPromote = "promote"
	SignalAbort   = "abort"
	QueryStatus   = "status"
)

// Definition is the code of a rollout: what workflow.Runner takes besides
// its settings. StateFns cannot travel through Temporal, so every worker
// (and the process that starts the rollout) builds the same Definition,
// and the workflow refers to its targets and states by name.
type Definition struct {
	// Targets are the rollout's targets, as for workflow.Runner.Run.
	Targets []workflow.Target
	// Preconditions and Postconditions are as in workflow.Runner; each
	// runs as an activity.
	Preconditions  []workflow.Check
	Postconditions []workflow.Check
	// Gate is as in workflow.Runner.Gate. When Options.GateEvery is set it
	// is also asked with workflow.PhaseSoak during the soak; a refusal
	// there ends the rollout with workflow.ESCanaryFailure.
	Gate func(ctx context.Context, next workflow.Phase) error
	// OnEvent, if set, receives the rollout's events in the worker that
	// runs the workflow code, never during a replay. Calls are serialized.
	// An event can be lost when a worker dies; use Status for a record.
	OnEvent func(workflow.Event)
}

// Options are a rollout's settings: workflow.Runner's, plus what
// Temporal needs. They travel in the workflow's history, so they are
// plain data.
type Options struct {
	// Definition names the Definition registered with Register.
	Definition string
	// Concurrency, CanaryNum, Soak, MaxFailures and CancelInFlight are as
	// in workflow.Runner.
	Concurrency    int
	CanaryNum      int
	Soak           time.Duration
	MaxFailures    int
	CancelInFlight bool
	// GateEvery, if set, asks the Definition's Gate every GateEvery during
	// the soak.
	GateEvery time.Duration
	// HeartbeatTimeout is how long a state may go without a heartbeat
	// before Temporal runs it again on another worker; 0 means 10s. The
	// activities heartbeat every third of it.
	HeartbeatTimeout time.Duration
	// StateTimeout bounds one state, all its attempts included; a state
	// that runs out of time fails its target. 0 means one hour.
	StateTimeout time.Duration
	// StartAt, if set, says where targets restart (target name to state
	// name; workflow.StatePostCheck runs only the post-check), and Skip
	// lists targets not to run. ResumeFrom fills both from a finished run.
	StartAt map[string]string
	Skip    []string
}

// Input is the rollout workflow's argument.
type Input struct {
	Options Options
	Targets []TargetPlan
	// Preconditions and Postconditions count the definition's checks;
	// Gate says whether it has a gate.
	Preconditions  int
	Postconditions int
	Gate           bool
}

// TargetPlan is what the workflow knows about a target: its states'
// names, which hooks it has, where it starts ("" for its first state) and
// whether it is skipped.
type TargetPlan struct {
	Name      string
	States    []string
	PreCheck  bool
	PostCheck bool
	Rollback  bool
	StartsAt  string `json:",omitempty"`
	Skip      bool   `json:",omitempty"`
}

// Outcome is what happened to a target so far: workflow.Outcome, so that
// both engines report the same values.
type Outcome = workflow.Outcome

// The outcomes of a target.
const (
	OutcomeNotStarted  = workflow.OutcomeNotStarted
	OutcomeRunning     = workflow.OutcomeRunning
	OutcomeSucceeded   = workflow.OutcomeSucceeded
	OutcomeFailed      = workflow.OutcomeFailed
	OutcomeInterrupted = workflow.OutcomeInterrupted
	OutcomeSkipped     = workflow.OutcomeSkipped
)

// TargetStatus is one target's progress: workflow.TargetProgress, with
// one difference in meaning: Attempts counts how many times State's
// activity has been started so far (more than 1 after a worker died while
// running it).
type TargetStatus = workflow.TargetProgress

// Status is what the status query returns, and the workflow's result.
type Status struct {
	Phase    workflow.Phase
	Paused   bool
	Promoted bool
	Aborted  bool
	// Ended is set once the rollout ended; End is then its end state,
	// EndPhase where it ended and Err the cause.
	Ended    bool
	End      workflow.EndState
	EndPhase workflow.Phase `json:",omitempty"`
	Err      string         `json:",omitempty"`
	// Canceled is set when the end came from a cancellation of the
	// workflow (End is then workflow.ESCanceled).
	Canceled bool `json:",omitempty"`
	Targets  []TargetStatus
}

// ErrAborted is the cause reported (inside a *workflow.RunError with
// workflow.ESCanceled) when Abort stopped a rollout.
var ErrAborted = errors.New("temporal: rollout aborted")

// ErrUnknownDefinition is returned by an activity, and fails the rollout,
// when a worker has no Definition of the name in Options.Definition.
var ErrUnknownDefinition = errors.New("temporal: unknown definition")

// Registry is what Register needs: a worker.Worker, or a
// testsuite.TestWorkflowEnvironment.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options tworkflow.RegisterOptions)
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers the rollout workflow and its activities in r, with
// defs as the code they run (keyed by Options.Definition). Every worker
// of the task queue must register the same definitions.
func Register(r Registry, defs map[string]*Definition) {
	r.RegisterWorkflowWithOptions((&workflows{defs: defs}).Rollout, tworkflow.RegisterOptions{Name: WorkflowName})
	a := &activities{defs: defs}
	r.RegisterActivityWithOptions(a.Check, activity.RegisterOptions{Name: actCheck})
	r.RegisterActivityWithOptions(a.Gate, activity.RegisterOptions{Name: actGate})
	r.RegisterActivityWithOptions(a.PreCheck, activity.RegisterOptions{Name: actPreCheck})
	r.RegisterActivityWithOptions(a.State, activity.RegisterOptions{Name: actState})
	r.RegisterActivityWithOptions(a.PostCheck, activity.RegisterOptions{Name: actPostCheck})
	r.RegisterActivityWithOptions(a.Rollback, activity.RegisterOptions{Name: actRollback})
}

// NewInput checks def and opts as workflow.Runner checks its settings and
// targets, and returns the workflow's argument. Errors wrap
// workflow.ErrInvalid.
func NewInput(def *Definition, opts Options) (Input, error) {
	switch {
	case opts.Concurrency < 0 || opts.CanaryNum < 0 || opts.MaxFailures < 0:
		return Input{}, fmt.Errorf("%w: negative concurrency, canary count or failure budget", workflow.ErrInvalid)
	case opts.Soak < 0 || opts.GateEvery < 0 || opts.HeartbeatTimeout < 0 || opts.StateTimeout < 0:
		return Input{}, fmt.Errorf("%w: negative duration", workflow.ErrInvalid)
	case opts.Definition == "":
		return Input{}, fmt.Errorf("%w: no definition name", workflow.ErrInvalid)
	}
	// workflow.Runner's own validation, without running anything.
	dry := workflow.Runner{DryRun: true, Preconditions: def.Preconditions, Postconditions: def.Postconditions}
	if _, err := dry.Run(context.Background(), def.Targets); err != nil {
		return Input{}, err
	}
	skip := make(map[string]bool, len(opts.Skip))
	for _, s := range opts.Skip {
		skip[s] = true
	}
	in := Input{Options: opts, Preconditions: len(def.Preconditions), Postconditions: len(def.Postconditions), Gate: def.Gate != nil}
	for _, t := range def.Targets {
		p := TargetPlan{Name: t.Name, PreCheck: t.PreCheck != nil, PostCheck: t.PostCheck != nil,
			Rollback: t.Rollback != nil, StartsAt: opts.StartAt[t.Name], Skip: skip[t.Name]}
		for _, s := range t.States {
			p.States = append(p.States, s.Name)
		}
		in.Targets = append(in.Targets, p)
	}
	in.Options.StartAt, in.Options.Skip = nil, nil
	return in, nil
}

// Start checks def and opts (see NewInput) and starts the rollout as the
// workflow described by wo (its ID and TaskQueue are required). The run
// goes on in the workers whatever happens to the caller; wait for it with
// Wait.
func Start(ctx context.Context, c client.Client, wo client.StartWorkflowOptions, def *Definition, opts Options) (client.WorkflowRun, error) {
	in, err := NewInput(def, opts)
	if err != nil {
		return nil, err
	}
	run, err := c.ExecuteWorkflow(ctx, wo, WorkflowName, in)
	if err != nil {
		return nil, fmt.Errorf("temporal: start rollout: %w", err)
	}
	return run, nil
}

// Wait waits for the rollout run to end and returns its Status turned
// into a workflow.Report, as Result does. A failure to reach the workflow
// is returned as it is, with an empty Report.
func Wait(ctx context.Context, run client.WorkflowRun) (workflow.Report, Status, error) {
	var st Status
	if err := run.Get(ctx, &st); err != nil {
		return workflow.Report{}, st, fmt.Errorf("temporal: wait for rollout: %w", err)
	}
	rep, err := Result(st)
	return rep, st, err
}

// Result turns the Status of an ended rollout into what workflow.Runner
// returns: a Report and, unless it ended in ESSuccess, a
// *workflow.RunError whose cause is a *workflow.TargetError for a target's
// failure, wraps context.Canceled when the workflow was canceled, or is
// ErrAborted after Abort.
func Result(st Status) (workflow.Report, error) {
	rep := workflow.Report{State: st.End}
	for _, t := range st.Targets {
		switch t.Outcome {
		case OutcomeSucceeded:
			rep.Succeeded = append(rep.Succeeded, t.Name)
		case OutcomeFailed:
			rep.Failures = append(rep.Failures, targetError(t))
		case OutcomeInterrupted, OutcomeRunning:
			rep.Interrupted = append(rep.Interrupted, t.Name)
		case OutcomeSkipped:
			rep.Skipped = append(rep.Skipped, t.Name)
		default:
			rep.NotStarted = append(rep.NotStarted, t.Name)
		}
	}
	if st.End == workflow.ESSuccess {
		return rep, nil
	}
	var cause error
	switch {
	case st.Canceled:
		cause = fmt.Errorf("temporal: %s: %w", st.Err, context.Canceled)
	case st.Aborted && st.End == workflow.ESCanceled:
		cause = ErrAborted
	default:
		cause = errors.New(st.Err)
		for _, t := range st.Targets {
			if t.Outcome == OutcomeFailed && st.Err == targetError(t).Error() {
				cause = targetError(t)
			}
		}
	}
	return rep, &workflow.RunError{State: st.End, Phase: st.EndPhase, Err: cause}
}

func targetError(t TargetStatus) *workflow.TargetError {
	return &workflow.TargetError{Target: t.Name, Phase: t.Phase, State: t.State, Err: errors.New(t.Err)}
}

// ResumeFrom returns opts set to continue the rollout whose last Status is
// st, as workflow.Runner.Resume does: targets that succeeded or were
// skipped are skipped, the others restart at the state they were in.
func ResumeFrom(st Status, opts Options) Options {
	opts.StartAt = map[string]string{}
	opts.Skip = nil
	for _, t := range st.Targets {
		switch t.Outcome {
		case OutcomeSucceeded, OutcomeSkipped:
			opts.Skip = append(opts.Skip, t.Name)
		case OutcomeNotStarted:
		default:
			if t.State != workflow.StatePreCheck {
				opts.StartAt[t.Name] = t.State
			}
		}
	}
	return opts
}

// Pause asks the rollout workflowID to start no more targets (and not to
// leave its soak) until Resume; targets in flight go on.
func Pause(ctx context.Context, c client.Client, workflowID string) error {
	return signal(ctx, c, workflowID, SignalPause, nil)
}

// Resume undoes Pause.
func Resume(ctx context.Context, c client.Client, workflowID string) error {
	return signal(ctx, c, workflowID, SignalResume, nil)
}

// Promote ends the rollout's soak now (the gate is still asked before the
// rollout phase).
func Promote(ctx context.Context, c client.Client, workflowID string) error {
	return signal(ctx, c, workflowID, SignalPromote, nil)
}

// Abort stops the rollout: no target starts afterwards, targets in
// flight drain, or are canceled when cancelInFlight is set, and the
// rollout ends with workflow.ESCanceled and ErrAborted.
func Abort(ctx context.Context, c client.Client, workflowID string, cancelInFlight bool) error {
	return signal(ctx, c, workflowID, SignalAbort, cancelInFlight)
}

// GetStatus asks the rollout workflowID for its Status.
func GetStatus(ctx context.Context, c client.Client, workflowID string) (Status, error) {
	var st Status
	v, err := c.QueryWorkflow(ctx, workflowID, "", QueryStatus)
	if err != nil {
		return st, fmt.Errorf("temporal: query %s: %w", workflowID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("temporal: query %s: %w", workflowID, err)
	}
	return st, nil
}

func signal(ctx context.Context, c client.Client, id, name string, arg any) error {
	if err := c.SignalWorkflow(ctx, id, "", name, arg); err != nil {
		return fmt.Errorf("temporal: signal %s to %s: %w", name, id, err)
	}
	return nil
}
