package temporal_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

// controlRun runs n targets (one state "run") in the test environment,
// with setup registering the signals to send; it returns the end status,
// the events with their workflow times, and the order the states ran in.
type controlRun struct {
	env    *testsuite.TestWorkflowEnvironment
	mu     sync.Mutex
	events []workflow.Event
	ran    []string
	// block, if set, is run by target name's state.
	block map[string]func(ctx context.Context) error
}

func newControlRun() *controlRun {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	c := &controlRun{env: s.NewTestWorkflowEnvironment()}
	c.env.SetTestTimeout(time.Minute)
	return c
}

func (c *controlRun) run(t *testing.T, n int, opts temporal.Options, def *temporal.Definition) temporal.Status {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("t%d", i)
		def.Targets = append(def.Targets, workflow.Target{Name: name, States: []workflow.State{{Name: "run", Fn: func(ctx context.Context) (workflow.StateFn, error) {
			c.mu.Lock()
			c.ran = append(c.ran, name)
			block := c.block[name]
			c.mu.Unlock()
			if block != nil {
				return nil, block(ctx)
			}
			return nil, nil
		}}}})
	}
	def.OnEvent = func(ev workflow.Event) {
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	}
	opts.Definition = "test"
	temporal.Register(c.env, map[string]*temporal.Definition{"test": def})
	in, err := temporal.NewInput(def, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.env.ExecuteWorkflow(temporal.WorkflowName, in)
	if err := c.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var st temporal.Status
	if err := c.env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *controlRun) query(t *testing.T) temporal.Status {
	t.Helper()
	v, err := c.env.QueryWorkflow(temporal.QueryStatus)
	if err != nil {
		t.Fatalf("query status: %v", err)
	}
	var st temporal.Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// phaseAt returns the workflow time the phase began, and whether it did.
func (c *controlRun) phaseAt(p workflow.Phase) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if ev.Kind == workflow.EventPhase && ev.Phase == p {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}

func outcomes(st temporal.Status) map[string]temporal.Outcome {
	m := map[string]temporal.Outcome{}
	for _, t := range st.Targets {
		m[t.Name] = t.Outcome
	}
	return m
}

func TestPromoteEndsTheSoak(t *testing.T) {
	c := newControlRun()
	c.env.RegisterDelayedCallback(func() { c.env.SignalWorkflow(temporal.SignalPromote, nil) }, time.Minute)
	st := c.run(t, 3, temporal.Options{CanaryNum: 1, Soak: time.Hour}, &temporal.Definition{})
	if st.End != workflow.ESSuccess || !st.Promoted {
		t.Fatalf("end %v, promoted %v; want ESSuccess after a promote", st.End, st.Promoted)
	}
	soak, _ := c.phaseAt(workflow.PhaseSoak)
	rollout, ok := c.phaseAt(workflow.PhaseRollout)
	if !ok || rollout.Sub(soak) >= time.Hour {
		t.Errorf("rollout phase began %v after the soak; want the promote at 1m to end the 1h soak", rollout.Sub(soak))
	}
}

func TestPauseHoldsAndResumeGoesOn(t *testing.T) {
	c := newControlRun()
	var during temporal.Status
	c.env.RegisterDelayedCallback(func() { c.env.SignalWorkflow(temporal.SignalPause, nil) }, time.Minute)
	c.env.RegisterDelayedCallback(func() { during = c.query(t) }, 5*time.Hour)
	c.env.RegisterDelayedCallback(func() { c.env.SignalWorkflow(temporal.SignalResume, nil) }, 6*time.Hour)
	st := c.run(t, 3, temporal.Options{CanaryNum: 1, Soak: 10 * time.Minute, Concurrency: 2}, &temporal.Definition{})
	if !during.Paused || during.Phase != workflow.PhaseSoak {
		t.Errorf("status while paused = phase %q, paused %v; want held in the soak, paused", during.Phase, during.Paused)
	}
	if got := outcomes(during); got["t0"] != temporal.OutcomeSucceeded || got["t1"] != temporal.OutcomeNotStarted || got["t2"] != temporal.OutcomeNotStarted {
		t.Errorf("targets while paused = %v; want t0 succeeded, t1 and t2 not started", got)
	}
	if st.End != workflow.ESSuccess || st.Paused {
		t.Errorf("end %v, paused %v; want ESSuccess once resumed", st.End, st.Paused)
	}
	rollout, _ := c.phaseAt(workflow.PhaseRollout)
	soak, _ := c.phaseAt(workflow.PhaseSoak)
	if d := rollout.Sub(soak); d < 6*time.Hour-time.Minute {
		t.Errorf("rollout began %v after the soak; want it held until the resume at 6h", d)
	}
}

func TestAbortDrains(t *testing.T) {
	c := newControlRun()
	c.env.RegisterDelayedCallback(func() { c.env.SignalWorkflow(temporal.SignalAbort, false) }, time.Minute)
	st := c.run(t, 3, temporal.Options{CanaryNum: 1, Soak: time.Hour}, &temporal.Definition{})
	rep, err := temporal.Result(st)
	var re *workflow.RunError
	if !errors.As(err, &re) || re.State != workflow.ESCanceled || !errors.Is(err, temporal.ErrAborted) {
		t.Fatalf("Result = %v; want ESCanceled with ErrAborted", err)
	}
	if !slices.Equal(rep.Succeeded, []string{"t0"}) || !slices.Equal(rep.NotStarted, []string{"t1", "t2"}) {
		t.Errorf("report = %+v; want t0 succeeded, t1 and t2 not started", rep)
	}
}

func TestAbortCancelsInFlight(t *testing.T) {
	c := newControlRun()
	// t0 and t1 run until canceled; t1 asks for the abort.
	wait := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	c.block = map[string]func(context.Context) error{
		"t0": wait,
		"t1": func(ctx context.Context) error {
			c.env.SignalWorkflow(temporal.SignalAbort, true)
			<-ctx.Done()
			return ctx.Err()
		},
	}
	st := c.run(t, 4, temporal.Options{Concurrency: 2}, &temporal.Definition{})
	rep, err := temporal.Result(st)
	if !errors.Is(err, temporal.ErrAborted) || rep.State != workflow.ESCanceled {
		t.Fatalf("Result = %v, %v; want ESCanceled with ErrAborted", rep.State, err)
	}
	if !slices.Equal(rep.Interrupted, []string{"t0", "t1"}) || !slices.Equal(rep.NotStarted, []string{"t2", "t3"}) {
		t.Errorf("report = %+v; want t0 and t1 interrupted, t2 and t3 not started", rep)
	}
}

func TestStatusQuery(t *testing.T) {
	c := newControlRun()
	var during temporal.Status
	c.block = map[string]func(context.Context) error{
		"t1": func(ctx context.Context) error { return errors.New("disk full") },
	}
	c.env.RegisterDelayedCallback(func() { during = c.query(t) }, 30*time.Minute)
	st := c.run(t, 3, temporal.Options{CanaryNum: 1, Soak: time.Hour, MaxFailures: 1}, &temporal.Definition{})
	if during.Phase != workflow.PhaseSoak || during.Ended {
		t.Errorf("status during the soak = phase %q, ended %v; want soak, not ended", during.Phase, during.Ended)
	}
	if len(st.Targets) != 3 {
		t.Fatalf("status targets = %+v; want 3", st.Targets)
	}
	t1 := st.Targets[1]
	if t1.Outcome != temporal.OutcomeFailed || t1.State != "run" || t1.Err != "disk full" || t1.Attempts != 1 {
		t.Errorf("t1 status = %+v; want failed in run, attempt 1, err disk full", t1)
	}
	if !st.Ended || st.End != workflow.ESSuccess {
		t.Errorf("end = %v (ended %v); want ESSuccess with one tolerated failure", st.End, st.Ended)
	}
}
