package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

var errBoom = errors.New("boom")

func TestEndStates(t *testing.T) {
	okCheck := workflow.Check{Name: "ok", Fn: func(context.Context) error { return nil }}
	badCheck := workflow.Check{Name: "bad", Fn: func(context.Context) error { return errBoom }}
	tests := []struct {
		name       string
		runner     workflow.Runner
		failIn     map[string]string // target -> state that fails
		want       workflow.EndState
		wantPhase  workflow.Phase
		succeeded  []string
		failed     []string
		notStarted []string
	}{
		{
			name:      "success with every target",
			runner:    workflow.Runner{Concurrency: 2, CanaryNum: 1, Preconditions: []workflow.Check{okCheck}, Postconditions: []workflow.Check{okCheck}},
			want:      workflow.ESSuccess,
			succeeded: []string{"t0", "t1", "t2", "t3"},
		},
		{
			name:      "success with a tolerated failure",
			runner:    workflow.Runner{Concurrency: 1, CanaryNum: 1, MaxFailures: 1},
			failIn:    map[string]string{"t2": "b"},
			want:      workflow.ESSuccess,
			succeeded: []string{"t0", "t1", "t3"},
			failed:    []string{"t2"},
		},
		{
			name:       "precondition failure",
			runner:     workflow.Runner{CanaryNum: 1, Preconditions: []workflow.Check{okCheck, badCheck}},
			want:       workflow.ESPreconditionFailure,
			wantPhase:  workflow.PhasePrecondition,
			notStarted: []string{"t0", "t1", "t2", "t3"},
		},
		{
			name:       "canary failure",
			runner:     workflow.Runner{Concurrency: 4, CanaryNum: 2, MaxFailures: 3},
			failIn:     map[string]string{"t1": "a"},
			want:       workflow.ESCanaryFailure,
			wantPhase:  workflow.PhaseCanary,
			succeeded:  []string{"t0"},
			failed:     []string{"t1"},
			notStarted: []string{"t2", "t3"},
		},
		{
			name:       "max failures",
			runner:     workflow.Runner{Concurrency: 1, MaxFailures: 1},
			failIn:     map[string]string{"t0": "c", "t2": "a"},
			want:       workflow.ESMaxFailures,
			wantPhase:  workflow.PhaseRollout,
			succeeded:  []string{"t1"},
			failed:     []string{"t0", "t2"},
			notStarted: []string{"t3"},
		},
		{
			name:      "postcondition failure",
			runner:    workflow.Runner{Concurrency: 3, Postconditions: []workflow.Check{okCheck, badCheck}},
			want:      workflow.ESPostconditionFailure,
			wantPhase: workflow.PhasePostcondition,
			succeeded: []string{"t0", "t1", "t2", "t3"},
		},
		{
			name:       "dry run is unknown",
			runner:     workflow.Runner{DryRun: true},
			want:       workflow.ESUnknown,
			notStarted: []string{"t0", "t1", "t2", "t3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			var targets []workflow.Target
			for _, n := range names("t", 4) {
				targets = append(targets, machine(rec, n, tt.failIn[n], errBoom))
			}
			r := tt.runner
			r.OnEvent = rec.onEvent
			rep, err := r.Run(t.Context(), targets)
			assert.Equal(t, tt.want, rep.State, "Run(...).State; err=%v", err)
			assert.Equal(t, tt.succeeded, rep.Succeeded, "Succeeded")
			assert.Equal(t, tt.failed, failureNames(rep), "Failures")
			assert.Equal(t, tt.notStarted, rep.NotStarted, "NotStarted")
			if tt.want == workflow.ESSuccess || tt.want == workflow.ESUnknown {
				require.NoError(t, err)
				return
			}
			var re *workflow.RunError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.want, re.State)
			assert.Equal(t, tt.wantPhase, re.Phase)
			assert.ErrorIs(t, err, errBoom)
			end := rec.kinds(workflow.EventEnd)
			require.Len(t, end, 1, "one end event")
			assert.Equal(t, tt.want.String(), end[0].State)
		})
	}
}

func TestEndStateString(t *testing.T) {
	for st, want := range map[workflow.EndState]string{
		workflow.ESUnknown: "ESUnknown", workflow.ESSuccess: "ESSuccess",
		workflow.ESPreconditionFailure: "ESPreconditionFailure", workflow.ESCanaryFailure: "ESCanaryFailure",
		workflow.ESMaxFailures: "ESMaxFailures", workflow.ESPostconditionFailure: "ESPostconditionFailure",
		workflow.ESCanceled: "ESCanceled", workflow.EndState(42): "EndState(42)",
	} {
		assert.Equal(t, want, st.String())
	}
}

// TestBudgetTripPoint drives targets one by one inside a synctest bubble:
// with MaxFailures tolerated, the (MaxFailures+1)th failure trips the
// budget and nothing starts after it; in-flight targets drain or are
// canceled.
func TestBudgetTripPoint(t *testing.T) {
	for _, tt := range []struct {
		name        string
		maxFailures int
		cancel      bool
	}{
		{"one tolerated, drain", 1, false},
		{"two tolerated, drain", 2, false},
		{"none tolerated, cancel in flight", 0, true},
		{"one tolerated, cancel in flight", 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 12
				rec := newRecorder()
				chans := make([]chan error, n)
				var targets []workflow.Target
				for i, name := range names("t", n) {
					chans[i] = make(chan error)
					targets = append(targets, gated(name, chans[i]))
				}
				r := workflow.Runner{Concurrency: 3, MaxFailures: tt.maxFailures, CancelInFlight: tt.cancel, OnEvent: rec.onEvent}
				var rep workflow.Report
				var err error
				done := make(chan struct{})
				go func() { rep, err = r.Run(t.Context(), targets); close(done) }()

				synctest.Wait()
				require.Equal(t, []string{"t0", "t1", "t2"}, sorted(rec.started()), "started before any result")
				// Fail one target at a time; each tolerated failure frees a slot
				// and the next target starts.
				next := 3
				for f := 0; f < tt.maxFailures; f++ {
					chans[f] <- errBoom
					synctest.Wait()
					next++
					require.Len(t, rec.started(), next, "after tolerated failure %d", f+1)
				}
				// The next failure trips the budget.
				trip := tt.maxFailures
				chans[trip] <- errBoom
				synctest.Wait()
				startedAtTrip := rec.started()
				assert.Len(t, startedAtTrip, next, "no target starts after the trip")
				// In flight: the other started, undecided targets.
				var inflight []int
				for i := trip + 1; i < next; i++ {
					inflight = append(inflight, i)
				}
				if !tt.cancel {
					for _, i := range inflight {
						chans[i] <- nil // they drain to success
					}
				}
				<-done
				assert.Equal(t, startedAtTrip, rec.started(), "nothing started while draining")
				assert.Equal(t, workflow.ESMaxFailures, rep.State)
				var re *workflow.RunError
				require.ErrorAs(t, err, &re)
				var te *workflow.TargetError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, targets[trip].Name, te.Target, "the tripping target")
				assert.Len(t, rep.Failures, tt.maxFailures+1)
				assert.Len(t, rep.NotStarted, n-next)
				if tt.cancel {
					assert.Len(t, rep.Interrupted, len(inflight), "canceled in flight")
					assert.Empty(t, rep.Succeeded)
				} else {
					assert.Len(t, rep.Succeeded, len(inflight), "drained in flight")
					assert.Empty(t, rep.Interrupted)
				}
				// The journal order (event order) shows no start after the
				// tripping failure.
				rec.mu.Lock()
				fails, sawTrip := 0, false
				for _, ev := range rec.events {
					if ev.Kind == workflow.EventFail {
						fails++
						sawTrip = sawTrip || fails > tt.maxFailures
					}
					if sawTrip && ev.Kind == workflow.EventStart {
						t.Errorf("target %s started after the budget tripped", ev.Target)
					}
				}
				rec.mu.Unlock()
			})
		})
	}
}

// TestBudgetNeverOvershoots runs many failing targets at high concurrency
// and checks that no start event follows the tripping failure.
func TestBudgetNeverOvershoots(t *testing.T) {
	for _, maxf := range []int{0, 1, 5} {
		rec := newRecorder()
		var targets []workflow.Target
		for i, n := range names("t", 200) {
			fail := ""
			if i%3 == 0 {
				fail = "b"
			}
			targets = append(targets, machine(rec, n, fail, errBoom))
		}
		r := workflow.Runner{Concurrency: 16, MaxFailures: maxf, OnEvent: rec.onEvent}
		rep, _ := r.Run(t.Context(), targets)
		require.Equal(t, workflow.ESMaxFailures, rep.State)
		fails, tripped := 0, false
		for _, ev := range rec.events {
			switch ev.Kind {
			case workflow.EventFail:
				fails++
				tripped = tripped || fails > maxf
			case workflow.EventStart:
				if tripped {
					t.Fatalf("MaxFailures=%d: %s started after the trip", maxf, ev.Target)
				}
			}
		}
	}
}

func TestCanaryFailureBeforeAnyNonCanary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		chans := make([]chan error, 6)
		var targets []workflow.Target
		for i, n := range names("t", 6) {
			chans[i] = make(chan error)
			targets = append(targets, gated(n, chans[i]))
		}
		r := workflow.Runner{Concurrency: 4, CanaryNum: 3, MaxFailures: 10, OnEvent: rec.onEvent}
		done := make(chan struct{})
		var rep workflow.Report
		go func() { rep, _ = r.Run(t.Context(), targets); close(done) }()
		synctest.Wait()
		assert.Equal(t, []string{"t0"}, rec.started(), "canaries run one at a time")
		chans[0] <- nil
		synctest.Wait()
		assert.Equal(t, []string{"t0", "t1"}, rec.started())
		chans[1] <- errBoom
		<-done
		assert.Equal(t, workflow.ESCanaryFailure, rep.State)
		assert.Equal(t, []string{"t0", "t1"}, rec.started(), "no target after the failed canary")
		assert.Equal(t, []string{"t2", "t3", "t4", "t5"}, rep.NotStarted)
	})
}

func TestSoak(t *testing.T) {
	t.Run("waits once after the canaries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var startTimes []time.Time
			r := workflow.Runner{CanaryNum: 2, Soak: time.Hour, Concurrency: 2, OnEvent: func(ev workflow.Event) {
				if ev.Kind == workflow.EventStart {
					startTimes = append(startTimes, ev.Time)
				}
			}}
			rec := newRecorder()
			var targets []workflow.Target
			for _, n := range names("t", 4) {
				targets = append(targets, machine(rec, n, "", nil))
			}
			t0 := time.Now()
			rep, err := r.Run(t.Context(), targets)
			require.NoError(t, err)
			assert.Equal(t, workflow.ESSuccess, rep.State)
			require.Len(t, startTimes, 4)
			assert.Equal(t, t0, startTimes[1], "second canary starts without a soak")
			assert.Equal(t, t0.Add(time.Hour), startTimes[2], "rollout starts after one soak")
			assert.Equal(t, t0.Add(time.Hour), time.Now(), "one soak in total")
		})
	})
	t.Run("canceled during the soak", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			rec := newRecorder()
			var targets []workflow.Target
			for _, n := range names("t", 4) {
				targets = append(targets, machine(rec, n, "", nil))
			}
			r := workflow.Runner{CanaryNum: 1, Soak: time.Hour, OnEvent: rec.onEvent}
			done := make(chan struct{})
			var rep workflow.Report
			var err error
			t0 := time.Now()
			go func() { rep, err = r.Run(ctx, targets); close(done) }()
			synctest.Wait()
			require.Len(t, rec.kinds(workflow.EventPhase), 3, "precondition, canary and soak phases began")
			assert.Equal(t, workflow.PhaseSoak, rec.kinds(workflow.EventPhase)[2].Phase)
			time.Sleep(time.Minute) // fake time inside the bubble
			cancel()
			<-done
			assert.Equal(t, t0.Add(time.Minute), time.Now(), "the soak ended at cancel")
			assert.Equal(t, workflow.ESCanceled, rep.State)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, []string{"t0"}, rep.Succeeded)
			assert.Equal(t, []string{"t1", "t2", "t3"}, rep.NotStarted)
		})
	})
}

func TestCanceledDuringTargets(t *testing.T) {
	for _, canaries := range []int{0, 1} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			rec := newRecorder()
			chans := make([]chan error, 6)
			var targets []workflow.Target
			for i, n := range names("t", 6) {
				chans[i] = make(chan error)
				targets = append(targets, gated(n, chans[i]))
			}
			r := workflow.Runner{Concurrency: 2, CanaryNum: canaries, OnEvent: rec.onEvent}
			done := make(chan struct{})
			var rep workflow.Report
			var err error
			go func() { rep, err = r.Run(ctx, targets); close(done) }()
			synctest.Wait()
			cancel()
			<-done
			assert.Equal(t, workflow.ESCanceled, rep.State)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Empty(t, rep.Failures, "cancellation is not a failure")
			wantInterrupted := []string{"t0", "t1"}
			if canaries == 1 {
				wantInterrupted = []string{"t0"}
			}
			assert.Equal(t, wantInterrupted, rep.Interrupted)
			assert.Len(t, rep.NotStarted, 6-len(wantInterrupted))
			assert.Len(t, rec.kinds(workflow.EventInterrupted), len(wantInterrupted))
		})
	}
}

func TestTargetTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan error) // never sent to
		targets := []workflow.Target{gated("slow", block)}
		r := workflow.Runner{TargetTimeout: time.Minute, MaxFailures: 1}
		t0 := time.Now()
		rep, err := r.Run(t.Context(), targets)
		require.NoError(t, err, "one failure is tolerated")
		assert.Equal(t, time.Minute, time.Since(t0))
		require.Len(t, rep.Failures, 1)
		assert.ErrorIs(t, rep.Failures[0], context.DeadlineExceeded)
		assert.Equal(t, "work", rep.Failures[0].State)
	})
}

func TestGate(t *testing.T) {
	for _, tt := range []struct {
		refuse workflow.Phase
		want   workflow.EndState
	}{
		{workflow.PhaseCanary, workflow.ESPreconditionFailure},
		{workflow.PhaseRollout, workflow.ESCanaryFailure},
		{workflow.PhasePostcondition, workflow.ESPostconditionFailure},
		{"", workflow.ESSuccess},
	} {
		t.Run(string(tt.refuse), func(t *testing.T) {
			rec := newRecorder()
			var asked []workflow.Phase
			r := workflow.Runner{CanaryNum: 1, Concurrency: 2,
				Postconditions: []workflow.Check{{Name: "ok", Fn: func(context.Context) error { return nil }}},
				Gate: func(_ context.Context, next workflow.Phase) error {
					asked = append(asked, next)
					if next == tt.refuse {
						return errors.New("not approved")
					}
					return nil
				}}
			targets := []workflow.Target{machine(rec, "t0", "", nil), machine(rec, "t1", "", nil)}
			rep, err := r.Run(t.Context(), targets)
			assert.Equal(t, tt.want, rep.State, "err=%v", err)
			if tt.refuse == "" {
				assert.Equal(t, []workflow.Phase{workflow.PhaseCanary, workflow.PhaseRollout, workflow.PhasePostcondition}, asked)
				return
			}
			assert.ErrorContains(t, err, "not approved")
			assert.Equal(t, tt.refuse, asked[len(asked)-1])
		})
	}
}

func TestEventsCarryTargetPhaseStateErrorTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		targets := []workflow.Target{machine(rec, "t0", "", nil), machine(rec, "t1", "b", errBoom)}
		r := workflow.Runner{CanaryNum: 1, MaxFailures: 1, OnEvent: rec.onEvent, RolloutID: "v2"}
		_, err := r.Run(t.Context(), targets)
		require.NoError(t, err)
		require.NotEmpty(t, rec.events)
		assert.Equal(t, workflow.Event{Time: time.Now(), Kind: workflow.EventBegin, Rollout: "v2", Plan: workflow.PlanDigest(targets)}, rec.events[0],
			"a Run begins with its rollout's header")
		var got []string
		for _, ev := range rec.events[1:] {
			assert.Equal(t, time.Now(), ev.Time, "event time from the clock")
			s := string(ev.Kind) + " " + string(ev.Phase) + " " + ev.Target + " " + ev.State
			if ev.Err != nil {
				s += " " + ev.Err.Error()
			}
			got = append(got, s)
		}
		assert.Equal(t, []string{
			"phase precondition  ",
			"phase canary  ",
			"start canary t0 ",
			"state canary t0 a",
			"state canary t0 b",
			"state canary t0 c",
			"done canary t0 ",
			"phase rollout  ",
			"start rollout t1 ",
			"state rollout t1 a",
			"state rollout t1 b",
			"fail rollout t1 b boom",
			"end   ESSuccess",
		}, got)
	})
}

func TestPreCheckPostCheckRollback(t *testing.T) {
	rec := newRecorder()
	mk := func(name string, pre, post error) workflow.Target {
		tg := machine(rec, name, "", nil)
		tg.PreCheck = func(context.Context) error { rec.call(name, "precheck"); return pre }
		tg.PostCheck = func(context.Context) error { rec.call(name, "postcheck"); return post }
		tg.Rollback = func(context.Context) (workflow.StateFn, error) { rec.call(name, "rollback"); return nil, nil }
		return tg
	}
	targets := []workflow.Target{mk("ok", nil, nil), mk("pre", errBoom, nil), mk("post", nil, errBoom)}
	r := workflow.Runner{MaxFailures: 2}
	rep, err := r.Run(t.Context(), targets)
	require.NoError(t, err)
	assert.Equal(t, []string{"ok"}, rep.Succeeded)
	require.Len(t, rep.Failures, 2)
	assert.Equal(t, workflow.StatePreCheck, rep.Failures[0].State)
	assert.Equal(t, workflow.StatePostCheck, rep.Failures[1].State)
	assert.Equal(t, 0, rec.count("pre", "a"), "a failed pre-check runs no state")
	assert.Equal(t, 1, rec.count("post", "c"))
	assert.Equal(t, 0, rec.count("ok", "rollback"), "no rollback after success")
	assert.Equal(t, 1, rec.count("pre", "rollback"))
	assert.Equal(t, 1, rec.count("post", "rollback"))
}

func TestDryRunPrintsPlan(t *testing.T) {
	rec := newRecorder()
	var targets []workflow.Target
	for _, n := range names("web", 4) {
		targets = append(targets, machine(rec, n, "", nil))
	}
	var plan bytes.Buffer
	r := workflow.Runner{DryRun: true, PlanOutput: &plan, Concurrency: 2, CanaryNum: 1, Soak: time.Minute, MaxFailures: 1,
		Preconditions: []workflow.Check{{Name: "lb-healthy", Fn: func(context.Context) error { return errBoom }}}}
	rep, err := r.Run(t.Context(), targets)
	require.NoError(t, err)
	assert.Equal(t, workflow.ESUnknown, rep.State)
	assert.Empty(t, rec.calls, "a dry run runs no state")
	assert.Equal(t, `plan: 4 targets to run (0 skipped), 1 canary, concurrency 2, 1 failure tolerated, per-target timeout none, in-flight targets drain on a trip
preconditions: lb-healthy
canary 1: web0: a → b → c
soak 1m0s
rollout: web1: a → b → c
rollout: web2: a → b → c
rollout: web3: a → b → c
`, plan.String())
}

func TestInvalidInput(t *testing.T) {
	fn := func(context.Context) (workflow.StateFn, error) { return nil, nil }
	ok := []workflow.State{{Name: "a", Fn: fn}}
	for _, tt := range []struct {
		name    string
		r       workflow.Runner
		targets []workflow.Target
		want    string
	}{
		{"negative concurrency", workflow.Runner{Concurrency: -1}, nil, "negative concurrency"},
		{"negative canaries", workflow.Runner{CanaryNum: -1}, nil, "negative canary count"},
		{"negative budget", workflow.Runner{MaxFailures: -1}, nil, "negative failure budget"},
		{"negative soak", workflow.Runner{Soak: -time.Second}, nil, "negative duration"},
		{"unnamed target", workflow.Runner{}, []workflow.Target{{States: ok}}, "target 0 has no name"},
		{"duplicate target", workflow.Runner{}, []workflow.Target{{Name: "x", States: ok}, {Name: "x", States: ok}}, "target x appears twice"},
		{"no states", workflow.Runner{}, []workflow.Target{{Name: "x"}}, "target x has no states"},
		{"unnamed state", workflow.Runner{}, []workflow.Target{{Name: "x", States: []workflow.State{{Fn: fn}}}}, "state 0 has no name"},
		{"nil state", workflow.Runner{}, []workflow.Target{{Name: "x", States: []workflow.State{{Name: "a"}}}}, "state a has no function"},
		{"reserved state", workflow.Runner{}, []workflow.Target{{Name: "x", States: []workflow.State{{Name: "rollback", Fn: fn}}}}, "reserved"},
		{"duplicate state", workflow.Runner{}, []workflow.Target{{Name: "x", States: []workflow.State{{Name: "a", Fn: fn}, {Name: "a", Fn: fn}}}}, "state a appears twice"},
		{"unnamed check", workflow.Runner{Preconditions: []workflow.Check{{Fn: func(context.Context) error { return nil }}}}, nil, "check needs a name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.r.Run(t.Context(), tt.targets)
			require.ErrorIs(t, err, workflow.ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestGotoErrors(t *testing.T) {
	_, err := workflow.Goto("x")(t.Context())
	assert.ErrorIs(t, err, workflow.ErrNotInRunner)

	tg := workflow.Target{Name: "x", States: []workflow.State{{Name: "a", Fn: func(context.Context) (workflow.StateFn, error) {
		return workflow.Goto("nope"), nil
	}}}}
	rep, err := (&workflow.Runner{}).Run(t.Context(), []workflow.Target{tg})
	assert.Equal(t, workflow.ESMaxFailures, rep.State)
	assert.ErrorIs(t, err, workflow.ErrUnknownState)
	assert.Equal(t, "a", rep.Failures[0].State, "the failure is in the state that named the unknown one")
}

func TestResumeWithoutJournal(t *testing.T) {
	_, err := (&workflow.Runner{}).Resume(t.Context(), nil)
	assert.ErrorIs(t, err, workflow.ErrNoJournal)
	_, err = (&workflow.Runner{}).RetryFailed(t.Context(), nil)
	assert.ErrorIs(t, err, workflow.ErrNoJournal)
}
