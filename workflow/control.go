package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrAborted is the cause, inside a *RunError with ESCanceled, of a
// rollout stopped by Control.Abort.
var ErrAborted = errors.New("workflow: rollout aborted")

// Control steers a Runner while it runs, with the vocabulary of the
// Temporal backend's signals (workflow/temporal): Pause, Resume, Promote,
// Abort, and Status for a query. Set it as Runner.Control, then call its
// methods from any goroutine (an HTTP handler, a unix socket, a test).
//
// The zero value is ready to use and holds no resources. A Control steers
// one run at a time: a Run, Resume or RetryFailed whose Control is in use
// by another run returns an error wrapping ErrInvalid. Each run clears
// Promoted and Aborted when it begins; Paused stays, so a run can begin
// paused.
type Control struct {
	mu       sync.Mutex
	paused   bool
	promoted bool
	aborted  bool
	cancel   bool          // Abort asked to cancel the targets in flight
	changed  chan struct{} // closed, and replaced, on every change
	ro       *rollout      // the run it steers, while it runs
	st       Status
	index    map[string]int // target name -> index in st.Targets
}

// Status is a rollout's progress, as Control.Status reports it: the
// same fields as the Temporal backend's status query.
type Status struct {
	// Rollout is the rollout's ID (see Report.Rollout).
	Rollout string `json:",omitempty"`
	// Phase is the phase the rollout is in.
	Phase    Phase `json:",omitempty"`
	Paused   bool
	Promoted bool
	Aborted  bool
	// Running is set while a run is steered by the Control.
	Running bool
	// Ended is set once the rollout ended; End is then its end state,
	// EndPhase where it ended and Err the cause ("" for ESSuccess).
	Ended    bool
	End      EndState
	EndPhase Phase  `json:",omitempty"`
	Err      string `json:",omitempty"`
	// Targets are the rollout's targets, in target order.
	Targets []TargetProgress
}

// Outcome is what happened to a target so far. The values are those of
// the Temporal backend's outcomes.
type Outcome string

// The outcomes of a target.
const (
	OutcomeNotStarted  Outcome = "not_started"
	OutcomeRunning     Outcome = "running"
	OutcomeSucceeded   Outcome = "succeeded"
	OutcomeFailed      Outcome = "failed"
	OutcomeInterrupted Outcome = "interrupted"
	OutcomeSkipped     Outcome = "skipped"
)

// TargetProgress is one target's progress in a Status.
type TargetProgress struct {
	Name    string
	Outcome Outcome
	// Phase is the phase the target ran in.
	Phase Phase `json:",omitempty"`
	// State is the state the target is in, or failed or was interrupted
	// in ("" before its first state).
	State string `json:",omitempty"`
	// Attempts is how many times in a row the target entered State in
	// this run: 1, or more when a state retries itself with Goto.
	Attempts int `json:",omitempty"`
	// Err is the failure's message.
	Err string `json:",omitempty"`
}

// Pause stops the rollout from starting targets (canaries and the rest)
// and holds it at the end of the soak, until Resume; targets in flight go
// on to their end. It does not hold checks or gates already asked.
func (c *Control) Pause() { c.set(func() { c.paused = true }) }

// Resume undoes Pause.
func (c *Control) Resume() { c.set(func() { c.paused = false }) }

// Promote ends the soak now, or skips it when it has not begun (the gate
// is still asked before the rollout phase).
func (c *Control) Promote() { c.set(func() { c.promoted = true }) }

// Abort stops the rollout: no target starts afterwards and the soak ends.
// Targets in flight drain (run to their end) or, when cancelInFlight is
// set, are canceled (reported as interrupted). Unless the rollout ends in
// ESSuccess anyway, it ends with ESCanceled and a *RunError wrapping
// ErrAborted.
func (c *Control) Abort(cancelInFlight bool) {
	var ro *rollout
	c.set(func() {
		c.aborted = true
		c.cancel = c.cancel || cancelInFlight
		ro = c.ro
	})
	if ro != nil && cancelInFlight {
		ro.cancelTargets()
	}
}

// Status returns the progress of the run the Control steers, or of the
// last one it steered. Before any run it has no targets.
func (c *Control) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Paused, st.Promoted, st.Aborted, st.Running = c.paused, c.promoted, c.aborted, c.ro != nil
	st.Targets = slices.Clone(c.st.Targets)
	return st
}

func (c *Control) set(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn()
	c.wakeLocked()
}

// wake wakes the goroutines waiting for a change, such as a trip.
func (c *Control) wake() {
	c.mu.Lock()
	c.wakeLocked()
	c.mu.Unlock()
}

func (c *Control) wakeLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// attach makes c steer ro, with a fresh status of its targets.
func (c *Control) attach(ro *rollout) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ro != nil {
		return fmt.Errorf("%w: the Control steers another run", ErrInvalid)
	}
	c.ro = ro
	c.promoted, c.aborted, c.cancel = false, false, false
	c.st = Status{Rollout: ro.id, Targets: make([]TargetProgress, len(ro.targets))}
	c.index = make(map[string]int, len(ro.targets))
	for i, t := range ro.targets {
		o := OutcomeNotStarted
		if ro.outcome[i] == skipped {
			o = OutcomeSkipped
		}
		c.st.Targets[i] = TargetProgress{Name: t.Name, Outcome: o}
		c.index[t.Name] = i
	}
	return nil
}

// detach records the end of the run.
func (c *Control) detach(st EndState, phase Phase, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ro = nil
	c.st.Ended, c.st.End, c.st.EndPhase = true, st, phase
	if cause != nil && st != ESSuccess {
		c.st.Err = cause.Error()
	}
	c.wakeLocked()
}

// observe updates the status with an event of the run.
func (c *Control) observe(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Kind == EventPhase {
		c.st.Phase = ev.Phase
		return
	}
	i, ok := c.index[ev.Target]
	if !ok || ev.Target == "" {
		return
	}
	t := &c.st.Targets[i]
	switch ev.Kind {
	case EventStart:
		*t = TargetProgress{Name: t.Name, Outcome: OutcomeRunning, Phase: ev.Phase}
	case EventState:
		if t.State == ev.State {
			t.Attempts++
		} else {
			t.State, t.Attempts = ev.State, 1
		}
	case EventDone:
		t.Outcome = OutcomeSucceeded
	case EventFail:
		t.Outcome, t.State = OutcomeFailed, ev.State
		if ev.Err != nil {
			t.Err = ev.Err.Error()
		}
	case EventInterrupted:
		t.Outcome, t.State = OutcomeInterrupted, ev.State
	case EventSkip:
		t.Outcome = OutcomeSkipped
	}
}

// flags returns the run's control flags and the channel closed on the
// next change.
func (c *Control) flags() (paused, promoted, aborted bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.paused, c.promoted, c.aborted, c.changed
}

// held reports whether no target may start now: paused and not aborted.
func (c *Control) held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused && !c.aborted
}

func (c *Control) isAborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

func (c *Control) cancelAsked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancel
}

// waitUnpaused blocks while the rollout is paused, until Resume, Abort,
// stop() or the end of ctx.
func (c *Control) waitUnpaused(ctx context.Context, stop func() bool) {
	for {
		paused, _, aborted, changed := c.flags()
		if !paused || aborted || stop() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
