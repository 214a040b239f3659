package workflowtest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/workflow"
)

// Engine is a rollout engine with workflow.Runner's semantics: the local
// Runner (NewLocalEngine), or another backend such as the Temporal one in
// workflow/temporal. TestEngine checks one.
type Engine interface {
	// Run runs targets from their first states with cfg's settings and
	// returns what workflow.Runner.Run returns. It calls cfg.OnEvent, when
	// set, with at least the EventPhase events, before the phase's work.
	// Canceling ctx cancels the rollout.
	Run(ctx context.Context, cfg Settings, targets []workflow.Target) (workflow.Report, error)
	// Resume continues the rollout this engine ran last, as
	// workflow.Runner.Resume does: succeeded targets are skipped, the others
	// restart at the state they were in.
	Resume(ctx context.Context, cfg Settings, targets []workflow.Target) (workflow.Report, error)
}

// Controller steers a rollout while it runs: *workflow.Control for the
// local Runner, or an adapter over another engine's control API (the
// Temporal backend's signals and status query). Each method means what
// the workflow.Control method of the same name means; an engine's Abort
// ends the rollout with a *workflow.RunError wrapping workflow.ErrAborted.
type Controller interface {
	Pause()
	Resume()
	Promote()
	Abort(cancelInFlight bool)
	Status() workflow.Status
}

// ControlEngine is an Engine whose rollouts can be steered while they run.
// TestEngine runs its control scenarios only against engines that
// implement it.
type ControlEngine interface {
	Engine
	// Controller returns the Controller of the rollout the engine runs
	// now, or of the next one it runs. The scenarios call it from their
	// targets' states and from another goroutine.
	Controller() Controller
}

// Settings are the rollout settings every engine takes; each field means
// what the workflow.Runner field of the same name means.
type Settings struct {
	Concurrency    int
	CanaryNum      int
	Soak           time.Duration
	MaxFailures    int
	CancelInFlight bool
	Preconditions  []workflow.Check
	Postconditions []workflow.Check
	Gate           func(ctx context.Context, next workflow.Phase) error
	OnEvent        func(workflow.Event)
}

// Runner returns a workflow.Runner with these settings and journal j.
func (s Settings) Runner(j *workflow.Journal) *workflow.Runner {
	return &workflow.Runner{Concurrency: s.Concurrency, CanaryNum: s.CanaryNum, Soak: s.Soak, MaxFailures: s.MaxFailures,
		CancelInFlight: s.CancelInFlight, Preconditions: s.Preconditions, Postconditions: s.Postconditions,
		Gate: s.Gate, OnEvent: s.OnEvent, Journal: j}
}

// NewLocalEngine returns workflow.Runner as an Engine, with a journal in
// t.TempDir() (closed by t.Cleanup) for Resume. It is a ControlEngine: its
// rollouts run with a workflow.Control.
func NewLocalEngine(t testing.TB) Engine {
	t.Helper()
	j, err := workflow.OpenJournal(filepath.Join(t.TempDir(), "rollout.journal"))
	if err != nil {
		t.Fatalf("workflowtest: open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return &localEngine{j: j, ctl: &workflow.Control{}}
}

type localEngine struct {
	j   *workflow.Journal
	ctl *workflow.Control
}

func (e *localEngine) runner(cfg Settings) *workflow.Runner {
	r := cfg.Runner(e.j)
	r.Control = e.ctl
	return r
}

func (e *localEngine) Run(ctx context.Context, cfg Settings, targets []workflow.Target) (workflow.Report, error) {
	return e.runner(cfg).Run(ctx, targets)
}

func (e *localEngine) Resume(ctx context.Context, cfg Settings, targets []workflow.Target) (workflow.Report, error) {
	return e.runner(cfg).Resume(ctx, targets)
}

func (e *localEngine) Controller() Controller { return e.ctl }

// callLog records the states the targets ran, in order.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *callLog) of(target string) []string {
	var out []string
	for _, c := range l.get() {
		if name, state, _ := strings.Cut(c, "/"); name == target {
			out = append(out, state)
		}
	}
	return out
}

// fixture builds targets t0..t(n-1) with states a → b → c that record
// each call in log; fail[name] names the state that fails (the failure
// can be cleared between runs).
type fixture struct {
	log     callLog
	mu      sync.Mutex
	fail    map[string]string // target -> state that fails
	block   map[string]func(ctx context.Context) error
	postErr map[string]error
}

var errFixture = errors.New("workflowtest: state failed")

func (f *fixture) failIn(target, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]string{}
	}
	if state == "" {
		delete(f.fail, target)
		return
	}
	f.fail[target] = state
}

func (f *fixture) targets(n int) []workflow.Target {
	var ts []workflow.Target
	for i := range n {
		name := fmt.Sprintf("t%d", i)
		state := func(s string, next workflow.StateFn) workflow.StateFn {
			return func(ctx context.Context) (workflow.StateFn, error) {
				f.log.add(name + "/" + s)
				f.mu.Lock()
				failing := f.fail[name] == s
				block := f.block[name+"/"+s]
				f.mu.Unlock()
				if block != nil {
					if err := block(ctx); err != nil {
						return nil, err
					}
				}
				if failing {
					return nil, fmt.Errorf("%w: %s in %s", errFixture, name, s)
				}
				return next, nil
			}
		}
		t := workflow.Target{Name: name, States: []workflow.State{
			{Name: "a", Fn: state("a", workflow.Goto("b"))},
			{Name: "b", Fn: state("b", workflow.Goto("c"))},
			{Name: "c", Fn: state("c", nil)},
		}}
		t.PostCheck = func(ctx context.Context) error {
			f.log.add(name + "/" + workflow.StatePostCheck)
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.postErr[name]
		}
		ts = append(ts, t)
	}
	return ts
}

func names(ts []*workflow.TargetError) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Target)
	}
	return out
}

func sameStrings(a, b []string) bool { return slices.Equal(a, b) || (len(a) == 0 && len(b) == 0) }

// checkReport compares rep with what a scenario wants.
func checkReport(t *testing.T, rep workflow.Report, err error, want workflow.EndState, phase workflow.Phase, succeeded, failed, interrupted, notStarted []string) {
	t.Helper()
	if rep.State != want {
		t.Errorf("Report.State = %v; want %v (err %v)", rep.State, want, err)
	}
	var re *workflow.RunError
	switch {
	case want == workflow.ESSuccess && err != nil:
		t.Errorf("err = %v; want nil for ESSuccess", err)
	case want != workflow.ESSuccess && !errors.As(err, &re):
		t.Errorf("err = %v; want a *workflow.RunError", err)
	case want != workflow.ESSuccess && (re.State != want || re.Phase != phase):
		t.Errorf("RunError = %v in %q; want %v in %q", re.State, re.Phase, want, phase)
	}
	if !sameStrings(rep.Succeeded, succeeded) {
		t.Errorf("Succeeded = %v; want %v", rep.Succeeded, succeeded)
	}
	if got := names(rep.Failures); !sameStrings(got, failed) {
		t.Errorf("Failures = %v; want %v", got, failed)
	}
	if !sameStrings(rep.Interrupted, interrupted) {
		t.Errorf("Interrupted = %v; want %v", rep.Interrupted, interrupted)
	}
	if !sameStrings(rep.NotStarted, notStarted) {
		t.Errorf("NotStarted = %v; want %v", rep.NotStarted, notStarted)
	}
}

// TestEngine checks that engines made by newEngine (a fresh one per
// scenario) run rollouts with workflow.Runner's semantics: every EndState,
// the exact trip point of the failure budget, drained or canceled targets
// in flight after a trip, canaries one at a time and failing before any
// non-canary starts, pre- and post-checks, resume at the state that failed,
// and cancellation during the soak. Soaks in the scenarios are one
// millisecond, except the canceled one (an hour, canceled at its start).
//
// For a ControlEngine it also checks control while running: a pause holds
// new starts until resumed, a promote ends an hour's soak, an abort drains
// or cancels the targets in flight and ends in ESCanceled with
// workflow.ErrAborted, and the status reports each target's outcome,
// state, attempts and error during the run.
func TestEngine(t *testing.T, newEngine func(t *testing.T) Engine) {
	okCheck := workflow.Check{Name: "ok", Fn: func(context.Context) error { return nil }}
	badCheck := workflow.Check{Name: "bad", Fn: func(context.Context) error { return errors.New("check failed") }}
	endStates := []struct {
		name                                       string
		cfg                                        Settings
		fail                                       map[string]string
		want                                       workflow.EndState
		phase                                      workflow.Phase
		succeeded, failed, interrupted, notStarted []string
	}{
		{name: "success", cfg: Settings{Concurrency: 2, CanaryNum: 1, Soak: time.Millisecond, Preconditions: []workflow.Check{okCheck}, Postconditions: []workflow.Check{okCheck}},
			want: workflow.ESSuccess, succeeded: []string{"t0", "t1", "t2", "t3"}},
		{name: "success with a tolerated failure", cfg: Settings{Concurrency: 1, CanaryNum: 1, MaxFailures: 1},
			fail: map[string]string{"t2": "b"}, want: workflow.ESSuccess, succeeded: []string{"t0", "t1", "t3"}, failed: []string{"t2"}},
		{name: "precondition failure", cfg: Settings{CanaryNum: 1, Preconditions: []workflow.Check{okCheck, badCheck}},
			want: workflow.ESPreconditionFailure, phase: workflow.PhasePrecondition, notStarted: []string{"t0", "t1", "t2", "t3"}},
		{name: "gate refuses the canaries", cfg: Settings{CanaryNum: 1, Gate: refuse(workflow.PhaseCanary)},
			want: workflow.ESPreconditionFailure, phase: workflow.PhaseCanary, notStarted: []string{"t0", "t1", "t2", "t3"}},
		{name: "canary failure", cfg: Settings{Concurrency: 4, CanaryNum: 2, MaxFailures: 3},
			fail: map[string]string{"t1": "a"}, want: workflow.ESCanaryFailure, phase: workflow.PhaseCanary,
			succeeded: []string{"t0"}, failed: []string{"t1"}, notStarted: []string{"t2", "t3"}},
		{name: "gate refuses the rollout", cfg: Settings{CanaryNum: 1, Concurrency: 2, Gate: refuse(workflow.PhaseRollout)},
			want: workflow.ESCanaryFailure, phase: workflow.PhaseRollout, succeeded: []string{"t0"}, notStarted: []string{"t1", "t2", "t3"}},
		{name: "max failures at the exact trip point", cfg: Settings{Concurrency: 1, MaxFailures: 1},
			fail: map[string]string{"t0": "c", "t2": "a"}, want: workflow.ESMaxFailures, phase: workflow.PhaseRollout,
			succeeded: []string{"t1"}, failed: []string{"t0", "t2"}, notStarted: []string{"t3"}},
		{name: "postcondition failure", cfg: Settings{Concurrency: 3, Postconditions: []workflow.Check{okCheck, badCheck}},
			want: workflow.ESPostconditionFailure, phase: workflow.PhasePostcondition, succeeded: []string{"t0", "t1", "t2", "t3"}},
	}
	for _, tc := range endStates {
		t.Run("end state/"+tc.name, func(t *testing.T) {
			f := &fixture{}
			for n, s := range tc.fail {
				f.failIn(n, s)
			}
			rep, err := newEngine(t).Run(t.Context(), tc.cfg, f.targets(4))
			checkReport(t, rep, err, tc.want, tc.phase, tc.succeeded, tc.failed, tc.interrupted, tc.notStarted)
			for _, n := range tc.notStarted {
				if got := f.log.of(n); len(got) > 0 {
					t.Errorf("target %s not started, but ran %v", n, got)
				}
			}
			for _, fe := range rep.Failures {
				if want := tc.fail[fe.Target]; fe.State != want || !strings.Contains(fe.Error(), errFixture.Error()) {
					t.Errorf("failure of %s = state %q, %v; want state %q and the state's error", fe.Target, fe.State, fe.Err, want)
				}
			}
		})
	}

	t.Run("canaries one at a time, before the rest", func(t *testing.T) {
		f := &fixture{}
		rep, err := newEngine(t).Run(t.Context(), Settings{Concurrency: 4, CanaryNum: 2, Soak: time.Millisecond}, f.targets(4))
		checkReport(t, rep, err, workflow.ESSuccess, "", []string{"t0", "t1", "t2", "t3"}, nil, nil, nil)
		calls := f.log.get()
		want := []string{"t0/a", "t0/b", "t0/c", "t0/postcheck", "t1/a", "t1/b", "t1/c", "t1/postcheck"}
		if len(calls) < len(want) || !slices.Equal(calls[:len(want)], want) {
			t.Errorf("calls = %v; want them to begin with %v (canaries in order, one at a time)", calls, want)
		}
	})

	for _, cancelInFlight := range []bool{false, true} {
		name := "trip drains the target in flight"
		if cancelInFlight {
			name = "trip cancels the target in flight"
		}
		t.Run(name, func(t *testing.T) {
			// t0 fails; t1 runs meanwhile and waits in state a until the
			// rollback of t0 (after the trip) has run, or until canceled.
			f := &fixture{}
			tripped := make(chan struct{})
			f.failIn("t0", "a")
			f.block = map[string]func(context.Context) error{
				"t0/a": func(ctx context.Context) error {
					for len(f.log.of("t1")) == 0 { // t1 is in flight
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
					return nil
				},
				"t1/a": func(ctx context.Context) error {
					select {
					case <-tripped:
					case <-ctx.Done():
					}
					// A cancel comes before the rollback closes tripped.
					return ctx.Err()
				},
			}
			targets := f.targets(4)
			var once sync.Once
			targets[0].Rollback = func(context.Context) (workflow.StateFn, error) {
				once.Do(func() { close(tripped) })
				return nil, nil
			}
			cfg := Settings{Concurrency: 2, MaxFailures: 0, CancelInFlight: cancelInFlight}
			rep, err := newEngine(t).Run(t.Context(), cfg, targets)
			if cancelInFlight {
				checkReport(t, rep, err, workflow.ESMaxFailures, workflow.PhaseRollout, nil, []string{"t0"}, []string{"t1"}, []string{"t2", "t3"})
			} else {
				checkReport(t, rep, err, workflow.ESMaxFailures, workflow.PhaseRollout, []string{"t1"}, []string{"t0"}, nil, []string{"t2", "t3"})
			}
			if got := f.log.of("t2"); len(got) > 0 {
				t.Errorf("t2 ran %v after the trip; want nothing", got)
			}
		})
	}

	t.Run("resume at the failed state", func(t *testing.T) {
		f := &fixture{}
		f.failIn("t1", "b")
		f.postErr = map[string]error{"t2": errors.New("post-check failed")}
		e := newEngine(t)
		cfg := Settings{Concurrency: 1, MaxFailures: 2}
		targets := f.targets(3)
		rep, err := e.Run(t.Context(), cfg, targets)
		checkReport(t, rep, err, workflow.ESSuccess, "", []string{"t0"}, []string{"t1", "t2"}, nil, nil)
		if len(rep.Failures) == 2 && rep.Failures[1].State != workflow.StatePostCheck {
			t.Errorf("t2 failed in state %q; want %q", rep.Failures[1].State, workflow.StatePostCheck)
		}
		f.failIn("t1", "")
		f.mu.Lock()
		f.postErr = nil
		f.mu.Unlock()
		before := len(f.log.get())
		rep, err = e.Resume(t.Context(), cfg, targets)
		if err != nil || rep.State != workflow.ESSuccess {
			t.Fatalf("Resume = %v, %v; want ESSuccess", rep.State, err)
		}
		if !sameStrings(rep.Skipped, []string{"t0"}) || !sameStrings(rep.Succeeded, []string{"t1", "t2"}) {
			t.Errorf("Resume: Skipped %v, Succeeded %v; want [t0], [t1 t2]", rep.Skipped, rep.Succeeded)
		}
		want := []string{"t1/b", "t1/c", "t1/postcheck", "t2/postcheck"}
		if got := f.log.get()[before:]; !slices.Equal(got, want) {
			t.Errorf("Resume ran %v; want %v (t1 from the state it failed in, t2 only its post-check)", got, want)
		}
	})

	t.Run("cancel during soak, then resume", func(t *testing.T) {
		f := &fixture{}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cfg := Settings{Concurrency: 2, CanaryNum: 1, Soak: time.Hour, OnEvent: func(ev workflow.Event) {
			if ev.Kind == workflow.EventPhase && ev.Phase == workflow.PhaseSoak {
				cancel()
			}
		}}
		e := newEngine(t)
		targets := f.targets(3)
		rep, err := e.Run(ctx, cfg, targets)
		checkReport(t, rep, err, workflow.ESCanceled, workflow.PhaseSoak, []string{"t0"}, nil, nil, []string{"t1", "t2"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want one matching context.Canceled", err)
		}
		cfg.OnEvent, cfg.Soak = nil, time.Millisecond
		before := len(f.log.get())
		rep, err = e.Resume(t.Context(), cfg, targets)
		if err != nil || !sameStrings(rep.Skipped, []string{"t0"}) || !sameStrings(rep.Succeeded, []string{"t1", "t2"}) {
			t.Errorf("Resume = %+v, %v; want t0 skipped, t1 and t2 succeeded", rep, err)
		}
		for _, c := range f.log.get()[before:] {
			if strings.HasPrefix(c, "t0/") {
				t.Errorf("Resume ran %s; want the succeeded canary skipped", c)
			}
		}
	})

	testControl(t, newEngine)
}

func refuse(p workflow.Phase) func(context.Context, workflow.Phase) error {
	return func(_ context.Context, next workflow.Phase) error {
		if next == p {
			return errors.New("not now")
		}
		return nil
	}
}
