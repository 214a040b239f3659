package temporal_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
	"github.com/opskit/opskit/workflow/workflowtest"
)

// testEngine runs rollouts in Temporal's in-process test environment.
type testEngine struct {
	t    *testing.T
	last temporal.Status
	// control, if set, is called with the environment before the
	// workflow runs (to register delayed signals).
	control func(env *testsuite.TestWorkflowEnvironment)
}

func options(cfg workflowtest.Settings) temporal.Options {
	return temporal.Options{Definition: "test", Concurrency: cfg.Concurrency, CanaryNum: cfg.CanaryNum, Soak: cfg.Soak,
		MaxFailures: cfg.MaxFailures, CancelInFlight: cfg.CancelInFlight}
}

func (e *testEngine) Run(ctx context.Context, cfg workflowtest.Settings, targets []workflow.Target) (workflow.Report, error) {
	return e.run(ctx, cfg, targets, options(cfg))
}

func (e *testEngine) Resume(ctx context.Context, cfg workflowtest.Settings, targets []workflow.Target) (workflow.Report, error) {
	return e.run(ctx, cfg, targets, temporal.ResumeFrom(e.last, options(cfg)))
}

func (e *testEngine) run(ctx context.Context, cfg workflowtest.Settings, targets []workflow.Target, opts temporal.Options) (workflow.Report, error) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	var once sync.Once
	cancelWorkflow := func() { once.Do(env.CancelWorkflow) }
	def := &temporal.Definition{Targets: targets, Preconditions: cfg.Preconditions, Postconditions: cfg.Postconditions, Gate: cfg.Gate}
	if cfg.OnEvent != nil {
		def.OnEvent = func(ev workflow.Event) {
			cfg.OnEvent(ev)
			// A cancel from the callback reaches the workflow before it
			// goes on, as it does in workflowtest.Settings.
			if ctx.Err() != nil {
				cancelWorkflow()
			}
		}
	}
	temporal.Register(env, map[string]*temporal.Definition{"test": def})
	in, err := temporal.NewInput(def, opts)
	if err != nil {
		return workflow.Report{}, err
	}
	if e.control != nil {
		e.control(env)
	}
	env.ExecuteWorkflow(temporal.WorkflowName, in)
	if !env.IsWorkflowCompleted() {
		e.t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		e.t.Fatalf("workflow error: %v", err)
	}
	var st temporal.Status
	if err := env.GetWorkflowResult(&st); err != nil {
		e.t.Fatalf("workflow result: %v", err)
	}
	e.last = st
	return temporal.Result(st)
}

func TestConformance(t *testing.T) {
	workflowtest.TestEngine(t, func(t *testing.T) workflowtest.Engine { return &testEngine{t: t} })
}

// TestNoDefinition: a worker without the rollout's definition fails the
// rollout in its first activity instead of retrying forever.
func TestNoDefinition(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	env := s.NewTestWorkflowEnvironment()
	def := &temporal.Definition{Targets: []workflow.Target{{Name: "t0", States: []workflow.State{{Name: "a", Fn: func(context.Context) (workflow.StateFn, error) { return nil, nil }}}}}}
	temporal.Register(env, map[string]*temporal.Definition{"other": def})
	in, err := temporal.NewInput(def, temporal.Options{Definition: "test"})
	if err != nil {
		t.Fatal(err)
	}
	env.ExecuteWorkflow(temporal.WorkflowName, in)
	var st temporal.Status
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	rep, err := temporal.Result(st)
	var re *workflow.RunError
	if !errors.As(err, &re) || len(rep.Failures) != 1 {
		t.Fatalf("Result = %+v, %v; want t0 failed", rep, err)
	}
	if got := rep.Failures[0].Err.Error(); !strings.Contains(got, "unknown definition") {
		t.Errorf("t0 failed with %q; want it to name the unknown definition", got)
	}
}
