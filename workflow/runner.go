package workflow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Check is a named global precondition or postcondition.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Runner runs a rollout over many targets: preconditions, canaries one at a
// time, a soak, the rest with bounded concurrency under a failure budget,
// then postconditions. The zero value runs one target at a time, tolerates
// no failure and has no canaries. A Runner may be reused but not run
// concurrently with itself.
type Runner struct {
	// Concurrency is how many non-canary targets run at once; 0 means 1.
	Concurrency int
	// CanaryNum is how many of the targets to run go first, one at a
	// time. Any canary failure ends the rollout with ESCanaryFailure before
	// a non-canary target starts.
	CanaryNum int
	// Soak is a pause after the canary phase (only when a canary ran and
	// targets remain). It ends early, with ESCanceled, when ctx is canceled.
	Soak time.Duration
	// MaxFailures is how many failed targets are tolerated. The next
	// failure trips the budget: the rollout ends with ESMaxFailures and no
	// target starts after it.
	MaxFailures int
	// CancelInFlight makes a tripped budget cancel the targets still
	// running; by default they drain (run to their end).
	CancelInFlight bool
	// TargetTimeout bounds each target (checks, states and post-check);
	// 0 means no bound. A target that runs out of time fails.
	TargetTimeout time.Duration
	// Preconditions run first, in order; a failure ends the rollout with
	// ESPreconditionFailure before any target starts.
	Preconditions []Check
	// Postconditions run after every target ran within the budget; a
	// failure ends the rollout with ESPostconditionFailure.
	Postconditions []Check
	// Gate, if set, is asked before each phase that will run targets or
	// postconditions (canary, rollout, postcondition), for approvals or
	// metrics. An error ends the rollout: before the canaries with
	// ESPreconditionFailure, before the rollout with ESCanaryFailure,
	// before the postconditions with ESPostconditionFailure.
	Gate func(ctx context.Context, next Phase) error
	// DryRun writes the plan to PlanOutput and runs nothing; the report's
	// State is then ESUnknown.
	DryRun bool
	// PlanOutput receives the plan of a dry run; nil discards it.
	PlanOutput io.Writer
	// Journal, if set, receives every event, fsync'd, before the work it
	// announces goes on. Each Run starts a new rollout (epoch) in it;
	// Resume and RetryFailed read only the latest one.
	Journal *Journal
	// RolloutID names the rollout in the journal, for example "app
	// v2.3.1" or the checksum of what it installs. Run records it in the
	// header of the epoch it starts; "" makes Run pick a random ID. When
	// set, Resume and RetryFailed refuse to continue a journaled rollout
	// with another ID (a *PlanMismatchError).
	RolloutID string
	// AllowPlanChange lets Resume and RetryFailed continue the journal's
	// latest rollout although its ID or plan (target and state names, see
	// PlanDigest) differ from this call's, or although the journal holds
	// records written before rollouts had IDs; targets are matched by
	// name. Without it they return a *PlanMismatchError and run nothing.
	AllowPlanChange bool
	// OnEvent, if set, receives every event. Calls are serialized, so it
	// need not be safe for concurrent use, but it should return quickly.
	OnEvent func(Event)
	// Logger receives failures and budget trips; nil discards.
	Logger *slog.Logger
	// Control, if set, steers the run while it goes on (Pause, Resume,
	// Promote, Abort) and reports its progress (Status). It is in use by
	// one run at a time.
	Control *Control
}

// Report is the outcome of a rollout. Target lists are in target order.
type Report struct {
	State EndState
	// Rollout is the ID of the rollout: the one Run journaled (RolloutID
	// or a random one), or the one Resume and RetryFailed continued. It is
	// "" after a dry run of Run.
	Rollout string
	// Succeeded lists the targets that ran to their end in this run.
	Succeeded []string
	// Failures lists the targets that failed, each with the state it
	// failed in; within the budget they do not stop the rollout.
	Failures []*TargetError
	// Interrupted lists started targets stopped by cancellation.
	Interrupted []string
	// Skipped lists targets the journal shows need no run.
	Skipped []string
	// NotStarted lists targets that never started.
	NotStarted []string
}

// Run runs the rollout over targets from their first state, as a new
// rollout: with a Journal, it first appends an EventBegin record (the
// rollout's ID and PlanDigest) that starts a new epoch, so that what
// earlier rollouts recorded no longer counts. If it ends other than in
// ESSuccess, the error is a *RunError; the Report says what happened to
// every target either way. Invalid settings or targets give an error
// wrapping ErrInvalid. A panic in a target's function fails that target
// with a *PanicError.
func (r *Runner) Run(ctx context.Context, targets []Target) (Report, error) {
	return r.run(ctx, targets, nil)
}

// Resume continues the latest rollout recorded in r.Journal (typically
// after the controlling process crashed or was stopped): targets that
// succeeded in it are skipped, the others restart at the state they last
// entered, and targets with no record in it start from the beginning. The
// canary phase, soak and budget apply afresh to the targets that run.
//
// The targets must be the journaled rollout's: if their PlanDigest, or
// r.RolloutID when set, differs from the journal's latest epoch, Resume
// returns a *PlanMismatchError (matching ErrPlanMismatch) and runs nothing,
// unless r.AllowPlanChange is set. On a journal where no rollout began,
// Resume runs every target as Run does.
func (r *Runner) Resume(ctx context.Context, targets []Target) (Report, error) {
	if r.Journal == nil {
		return Report{}, ErrNoJournal
	}
	return r.run(ctx, targets, func(st TargetStatus, ok bool) (bool, string) {
		if !ok {
			return true, ""
		}
		return st.Status != StatusSucceeded, st.State
	})
}

// RetryFailed reruns only the targets that the latest rollout in
// r.Journal records as failed, each from the state it failed in. It checks
// the plan as Resume does.
func (r *Runner) RetryFailed(ctx context.Context, targets []Target) (Report, error) {
	if r.Journal == nil {
		return Report{}, ErrNoJournal
	}
	return r.run(ctx, targets, func(st TargetStatus, ok bool) (bool, string) {
		return ok && st.Status == StatusFailed, st.State
	})
}

type outcome uint8

const (
	notStarted outcome = iota
	running
	succeeded
	failed
	interrupted
	skipped
)

type rollout struct {
	r       *Runner
	targets []Target
	log     *slog.Logger
	emitMu  sync.Mutex
	quiet   bool // no journal and no callback: skip the event path
	id      string

	mu       sync.Mutex
	outcome  []outcome
	errs     []*TargetError
	failures int
	tripped  *TargetError

	trip    atomic.Bool // set with tripped
	startAt []string    // per target, where it starts; nil: all from the start
	runs    []targetRun // per target, its machine while it runs

	cancelPhase context.CancelFunc // cancels the current phase's targets; under mu
	ctl         *Control
}

func (r *Runner) validate(targets []Target) error {
	switch {
	case r.Concurrency < 0:
		return fmt.Errorf("%w: negative concurrency %d", ErrInvalid, r.Concurrency)
	case r.CanaryNum < 0:
		return fmt.Errorf("%w: negative canary count %d", ErrInvalid, r.CanaryNum)
	case r.MaxFailures < 0:
		return fmt.Errorf("%w: negative failure budget %d", ErrInvalid, r.MaxFailures)
	case r.Soak < 0 || r.TargetTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(targets))
	for i, t := range targets {
		if t.Name == "" {
			return fmt.Errorf("%w: target %d has no name", ErrInvalid, i)
		}
		if _, dup := seen[t.Name]; dup {
			return fmt.Errorf("%w: target %s appears twice", ErrInvalid, t.Name)
		}
		seen[t.Name] = struct{}{}
		if len(t.States) == 0 {
			return fmt.Errorf("%w: target %s has no states", ErrInvalid, t.Name)
		}
		for j, s := range t.States {
			switch {
			case s.Name == "":
				return fmt.Errorf("%w: target %s: state %d has no name", ErrInvalid, t.Name, j)
			case s.Fn == nil:
				return fmt.Errorf("%w: target %s: state %s has no function", ErrInvalid, t.Name, s.Name)
			case s.Name == StatePreCheck || s.Name == StatePostCheck || s.Name == StateRollback:
				return fmt.Errorf("%w: target %s: state name %s is reserved", ErrInvalid, t.Name, s.Name)
			}
			for _, o := range t.States[:j] {
				if o.Name == s.Name {
					return fmt.Errorf("%w: target %s: state %s appears twice", ErrInvalid, t.Name, s.Name)
				}
			}
		}
	}
	for _, c := range slices.Concat(r.Preconditions, r.Postconditions) {
		if c.Name == "" || c.Fn == nil {
			return fmt.Errorf("%w: a check needs a name and a function", ErrInvalid)
		}
	}
	return nil
}

// selectFn decides, from the journal, whether a target runs and where it
// restarts. nil runs every target from its start.
type selectFn func(st TargetStatus, ok bool) (run bool, at string)

// PlanDigest returns a digest of the plan of a rollout over targets: their
// names and their states' names, in order. The journal records it, and
// Resume compares it, so that a journal is not continued with other
// targets or states by mistake. Functions are not part of it.
func PlanDigest(targets []Target) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	word := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		io.WriteString(h, s)
	}
	for _, t := range targets {
		word(t.Name)
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(t.States)))])
		for _, s := range t.States {
			word(s.Name)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func newRolloutID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// epochFor decides which rollout a call belongs to: a new one for Run (or
// for a resume of a journal in which no rollout began), or the journal's
// latest, checked against targets. begin is the event to journal first.
func (r *Runner) epochFor(targets []Target, resume bool) (id string, begin Event, err error) {
	plan := PlanDigest(targets)
	if resume {
		ep, legacy := r.Journal.state()
		switch {
		case ep != nil:
			if !r.AllowPlanChange && (ep.Plan != plan || (r.RolloutID != "" && r.RolloutID != ep.Rollout)) {
				return "", Event{}, &PlanMismatchError{Journaled: *ep, Rollout: r.RolloutID, Plan: plan}
			}
			return ep.Rollout, Event{Kind: EventResume, Rollout: ep.Rollout, Plan: plan}, nil
		case legacy:
			if !r.AllowPlanChange {
				return "", Event{}, &PlanMismatchError{Rollout: r.RolloutID, Plan: plan}
			}
			id = r.RolloutID
			if id == "" {
				id = newRolloutID()
			}
			return id, Event{Kind: EventResume, Rollout: id, Plan: plan}, nil
		}
	}
	id = r.RolloutID
	if id == "" {
		id = newRolloutID()
	}
	return id, Event{Kind: EventBegin, Rollout: id, Plan: plan}, nil
}

func (r *Runner) run(ctx context.Context, targets []Target, sel selectFn) (Report, error) {
	if err := r.validate(targets); err != nil {
		return Report{}, err
	}
	id, begin, err := r.epochFor(targets, sel != nil)
	if err != nil {
		return Report{}, err
	}
	if r.DryRun && sel == nil {
		id = ""
	}
	ro := &rollout{
		r:       r,
		targets: targets,
		log:     r.Logger,
		quiet:   r.Journal == nil && r.OnEvent == nil && r.Control == nil,
		ctl:     r.Control,
		outcome: make([]outcome, len(targets)),
		errs:    make([]*TargetError, len(targets)),
		runs:    make([]targetRun, len(targets)),
		id:      id,
	}
	if ro.log == nil {
		ro.log = slog.New(slog.DiscardHandler)
	}
	// Which targets run, and from which state.
	todo := make([]int, 0, len(targets))
	var skip []int
	if sel != nil {
		ro.startAt = make([]string, len(targets))
	}
	for i, t := range targets {
		if sel != nil {
			st, ok := r.Journal.Status(t.Name)
			run, at := sel(st, ok)
			if !run {
				ro.outcome[i] = skipped
				skip = append(skip, i)
				continue
			}
			ro.startAt[i] = at
		}
		todo = append(todo, i)
	}
	ncan := min(r.CanaryNum, len(todo))
	canaries, rest := todo[:ncan], todo[ncan:]

	if r.DryRun {
		if r.PlanOutput != nil {
			r.writePlan(r.PlanOutput, targets, skip, canaries, rest, ro.at)
		}
		return ro.report(ESUnknown), nil
	}
	if ro.ctl != nil {
		if err := ro.ctl.attach(ro); err != nil {
			return Report{}, err
		}
	}
	// The epoch's header comes first, so a journal that cannot be written
	// stops the rollout before any target.
	if err := ro.emit(begin); err != nil {
		return ro.end(ESPreconditionFailure, PhasePrecondition, err)
	}
	for i := range targets {
		if ro.outcome[i] == skipped {
			if err := ro.emit(Event{Kind: EventSkip, Target: targets[i].Name}); err != nil {
				return ro.end(ESUnknown, "", err)
			}
		}
	}

	// Preconditions.
	if err := ro.emit(Event{Kind: EventPhase, Phase: PhasePrecondition}); err != nil {
		return ro.end(ESPreconditionFailure, PhasePrecondition, err)
	}
	if len(r.Preconditions) > 0 {
		if st, err := runChecks(ctx, r.Preconditions, ESPreconditionFailure); err != nil {
			return ro.end(st, PhasePrecondition, err)
		}
	}
	if err := ctx.Err(); err != nil || ro.aborted() {
		return ro.end(ESCanceled, PhasePrecondition, err)
	}

	// Canaries, one at a time.
	if len(canaries) > 0 {
		if st, err := ro.gate(ctx, PhaseCanary, ESPreconditionFailure); err != nil {
			return ro.end(st, PhaseCanary, err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		ro.setCancel(ccancel)
		for _, i := range canaries {
			switch ro.runTarget(ctx, cctx, i, PhaseCanary, ro.at(i), false) {
			case failed:
				return ro.end(ESCanaryFailure, PhaseCanary, ro.errs[i])
			case interrupted, notStarted:
				return ro.end(ESCanceled, PhaseCanary, ctx.Err())
			}
		}
		// Soak, once, when targets remain.
		if r.Soak > 0 && len(rest) > 0 {
			if err := ro.emit(Event{Kind: EventPhase, Phase: PhaseSoak}); err != nil {
				return ro.end(ESCanaryFailure, PhaseSoak, err)
			}
			if err := ro.soak(ctx, r.Soak); err != nil {
				return ro.end(ESCanceled, PhaseSoak, err)
			}
		}
	}

	// The rest, concurrently, under the budget.
	if len(rest) > 0 {
		if st, err := ro.gate(ctx, PhaseRollout, ESCanaryFailure); err != nil {
			return ro.end(st, PhaseRollout, err)
		}
		ro.rollout(ctx, rest)
		if ro.tripped != nil {
			return ro.end(ESMaxFailures, PhaseRollout, ro.tripped)
		}
		if err := ctx.Err(); err != nil || ro.aborted() {
			return ro.end(ESCanceled, PhaseRollout, err)
		}
	}

	// Postconditions.
	if len(r.Postconditions) > 0 {
		if st, err := ro.gate(ctx, PhasePostcondition, ESPostconditionFailure); err != nil {
			return ro.end(st, PhasePostcondition, err)
		}
		if st, err := runChecks(ctx, r.Postconditions, ESPostconditionFailure); err != nil {
			return ro.end(st, PhasePostcondition, err)
		}
	}
	return ro.end(ESSuccess, "", nil)
}

// runChecks runs checks in order; on a failure it returns the end state
// to report (failed, or ESCanceled when ctx ended).
func runChecks(ctx context.Context, checks []Check, failed EndState) (EndState, error) {
	for _, c := range checks {
		if err := protect(func() error { return c.Fn(ctx) }); err != nil {
			if ctx.Err() != nil {
				return ESCanceled, ctx.Err()
			}
			return failed, fmt.Errorf("check %s: %w", c.Name, err)
		}
	}
	return 0, nil
}

// gate emits the phase event and asks the gate; on refusal it returns the
// end state to report.
func (ro *rollout) gate(ctx context.Context, next Phase, refused EndState) (EndState, error) {
	if err := ro.emit(Event{Kind: EventPhase, Phase: next}); err != nil {
		return refused, err
	}
	if ro.r.Gate == nil {
		return 0, nil
	}
	if err := protect(func() error { return ro.r.Gate(ctx, next) }); err != nil {
		if ctx.Err() != nil {
			return ESCanceled, ctx.Err()
		}
		return refused, fmt.Errorf("gate refused the %s phase: %w", next, err)
	}
	return 0, nil
}

func (ro *rollout) rollout(ctx context.Context, idx []int) {
	phaseCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ro.setCancel(cancel)
	// A pool of workers takes targets from an unbuffered channel, so a
	// target is handed over only when a worker is free, and no goroutine
	// is created per target.
	work := make(chan int)
	n := min(max(ro.r.Concurrency, 1), len(idx))
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			for i := range work {
				ro.runTarget(ctx, phaseCtx, i, PhaseRollout, ro.at(i), true)
			}
		}()
	}
	for _, i := range idx {
		// A cheap look; runTarget decides under ro.mu. After a trip or a
		// cancel, the send below waits for a running target to end, which
		// the final Wait would wait for anyway.
		if ro.trip.Load() || ctx.Err() != nil || ro.aborted() {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
}

// setCancel records cancel as the function that cancels the targets of
// the current phase, and calls it at once when Abort asked for that.
func (ro *rollout) setCancel(cancel context.CancelFunc) {
	ro.mu.Lock()
	ro.cancelPhase = cancel
	ro.mu.Unlock()
	if ro.ctl != nil && ro.ctl.cancelAsked() {
		cancel()
	}
}

// cancelTargets cancels the targets in flight (Abort with cancelInFlight).
func (ro *rollout) cancelTargets() {
	ro.mu.Lock()
	cancel := ro.cancelPhase
	ro.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (ro *rollout) aborted() bool { return ro.ctl != nil && ro.ctl.isAborted() }

// soak waits for d, until Promote, Abort (ErrAborted) or the end of ctx
// (its error); a pause then holds the rollout at the soak's end.
func (ro *rollout) soak(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
wait:
	for {
		var changed <-chan struct{}
		if ro.ctl != nil {
			_, promoted, aborted, ch := ro.ctl.flags()
			switch {
			case aborted:
				return ErrAborted
			case promoted:
				break wait
			}
			changed = ch
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			break wait
		case <-changed:
		}
	}
	if ro.ctl == nil {
		return nil
	}
	ro.ctl.waitUnpaused(ctx, func() bool { return false })
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case ro.ctl.isAborted():
		return ErrAborted
	}
	return nil
}

// at is where target i starts: "" for its first state.
func (ro *rollout) at(i int) string {
	if ro.startAt == nil {
		return ""
	}
	return ro.startAt[i]
}

// runTarget starts target i and runs it to its outcome. runCtx is the
// rollout's context and ctx the phase's (canceled also by a trip with
// CancelInFlight). The start decision with its start event, and the
// outcome with its event and budget accounting, are each made under ro.mu,
// so the journal shows no start after the failure that trips the budget.
//
// It runs on the pool's workers, so its fast path is kept small: event
// building, logging and the failure path live in functions of their own.
func (ro *rollout) runTarget(runCtx, ctx context.Context, i int, phase Phase, at string, budget bool) outcome {
	started, err := ro.begin(ctx, i, phase)
	if !started {
		return notStarted
	}
	tr := &ro.runs[i] // one allocation for all targets
	*tr = targetRun{Context: ctx, ro: ro, t: &ro.targets[i], phase: phase}
	if err == nil { // else the start could not be journaled: run nothing
		err = tr.runSafe(ro.r.TargetTimeout, at)
	}
	res := succeeded
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res = interrupted
	default:
		res = failed
	}
	return ro.finish(runCtx, i, tr, res, err, budget)
}

// begin decides whether target i starts and records the start. An error
// means the start event could not be journaled.
//
// With a Control, a paused rollout waits here, without ro.mu, until it is
// resumed, aborted, tripped or canceled; an aborted one starts nothing.
func (ro *rollout) begin(ctx context.Context, i int, phase Phase) (bool, error) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	for {
		if ro.tripped != nil || ctx.Err() != nil {
			return false, nil
		}
		if ro.ctl == nil {
			break
		}
		if ro.ctl.isAborted() {
			return false, nil
		}
		if !ro.ctl.held() {
			break
		}
		ro.mu.Unlock()
		ro.ctl.waitUnpaused(ctx, ro.trip.Load)
		ro.mu.Lock()
	}
	ro.outcome[i] = running
	if ro.quiet {
		return true, nil
	}
	return true, ro.emit(Event{Kind: EventStart, Phase: phase, Target: ro.targets[i].Name})
}

// finish records the outcome, counts it against the budget, and runs the
// rollback of a failed target.
//
//go:noinline
func (ro *rollout) finish(runCtx context.Context, i int, tr *targetRun, res outcome, err error, budget bool) outcome {
	t := tr.t
	ro.mu.Lock()
	if !ro.quiet {
		ev := Event{Kind: EventDone, Phase: tr.phase, Target: t.Name}
		switch res {
		case interrupted:
			ev = Event{Kind: EventInterrupted, Phase: tr.phase, Target: t.Name, State: tr.cur, Err: err}
		case failed:
			ev = Event{Kind: EventFail, Phase: tr.phase, Target: t.Name, State: tr.cur, Err: err}
		}
		if eerr := ro.emit(ev); eerr != nil && res == succeeded {
			res, err = failed, eerr
		}
	}
	ro.outcome[i] = res
	trip, n := false, 0
	if res == failed {
		ro.errs[i] = &TargetError{Target: t.Name, Phase: tr.phase, State: tr.cur, Err: err}
		if budget {
			ro.failures++
			n = ro.failures
			if trip = n > ro.r.MaxFailures && ro.tripped == nil; trip {
				ro.tripped = ro.errs[i]
				ro.trip.Store(true)
			}
		}
	}
	ro.mu.Unlock()
	if res == failed {
		ro.failed(runCtx, tr, err, trip, n)
	}
	return res
}

// failed logs a failure, cancels in-flight targets after a trip if asked,
// and runs the target's rollback.
func (ro *rollout) failed(runCtx context.Context, tr *targetRun, err error, trip bool, n int) {
	t := tr.t
	ro.log.Warn("target failed", "target", t.Name, "state", tr.cur, "err", err)
	if trip {
		ro.log.Warn("failure budget tripped", "target", t.Name, "failures", n, "tolerated", ro.r.MaxFailures)
		if ro.r.CancelInFlight && ro.cancelPhase != nil {
			ro.cancelPhase()
		}
		if ro.ctl != nil {
			ro.ctl.wake() // paused targets need not wait any longer
		}
	}
	if t.Rollback == nil {
		return
	}
	rctx, rcancel := context.WithCancel(runCtx)
	if d := ro.r.TargetTimeout; d > 0 {
		rcancel()
		rctx, rcancel = context.WithTimeout(runCtx, d)
	}
	rerr := protect(func() error { return runChain(rctx, t.Rollback) })
	rcancel()
	ro.emit(Event{Kind: EventRollback, Phase: tr.phase, Target: t.Name, State: StateRollback, Err: rerr})
	if rerr != nil {
		ro.log.Warn("rollback failed", "target", t.Name, "err", rerr)
	}
}

func runChain(ctx context.Context, fn StateFn) error {
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

// targetRun is one target's machine while it runs. It is the context its
// states receive, so that Goto finds it without another allocation.
type targetRun struct {
	context.Context
	ro    *rollout
	t     *Target
	phase Phase
	cur   string
}

// Value returns tr for runKey, and asks the parent otherwise.
func (tr *targetRun) Value(key any) any {
	if _, ok := key.(runKey); ok {
		return tr
	}
	return tr.Context.Value(key)
}

func (tr *targetRun) enter(name string) (StateFn, error) {
	fn, ok := tr.t.state(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownState, name)
	}
	if !tr.ro.quiet {
		if err := tr.ro.emitState(tr, name); err != nil {
			return nil, err
		}
	}
	tr.cur = name
	return fn, nil
}

// runSafe runs the target, under timeout d if positive, and turns a panic
// of its functions into a *PanicError, a failure of this target only.
func (tr *targetRun) runSafe(d time.Duration, at string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if d > 0 {
		return tr.runWithTimeout(d, at)
	}
	return tr.run(at)
}

// protect calls fn and turns a panic into a *PanicError.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// runWithTimeout runs the target under its timeout. The states see tr
// with the timeout's context inside; it is not swapped back afterwards, as
// a state may have handed its context to a goroutine of its own.
func (tr *targetRun) runWithTimeout(d time.Duration, at string) error {
	ctx, cancel := context.WithTimeout(tr.Context, d)
	defer cancel()
	tr.Context = ctx
	return tr.run(at)
}

// run runs the pre-check, the states from at, and the post-check.
func (tr *targetRun) run(at string) error {
	t := tr.t
	if t.PreCheck != nil {
		tr.cur = StatePreCheck
		if err := t.PreCheck(tr.Context); err != nil {
			return err
		}
	}
	if at != StatePostCheck {
		if at == "" {
			at = t.States[0].Name
		}
		fn, err := tr.enter(at)
		if err != nil {
			tr.cur = at
			return err
		}
		if err := runChain(tr, fn); err != nil {
			return err
		}
	}
	if t.PostCheck != nil {
		if !tr.ro.quiet {
			if err := tr.ro.emitState(tr, StatePostCheck); err != nil {
				return err
			}
		}
		tr.cur = StatePostCheck
		if err := t.PostCheck(tr.Context); err != nil {
			return err
		}
	}
	return nil
}

func (ro *rollout) emitState(tr *targetRun, name string) error {
	return ro.emit(Event{Kind: EventState, Phase: tr.phase, Target: tr.t.Name, State: name})
}

// emit journals ev (fsync'd) and hands it to OnEvent, one event at a time.
func (ro *rollout) emit(ev Event) error {
	if ro.quiet {
		return nil
	}
	ev.Time = time.Now()
	ro.emitMu.Lock()
	defer ro.emitMu.Unlock()
	if j := ro.r.Journal; j != nil {
		if err := j.Append(recordOf(ev)); err != nil {
			return err
		}
	}
	if ro.ctl != nil {
		ro.ctl.observe(ev)
	}
	if ro.r.OnEvent != nil {
		ro.r.OnEvent(ev)
	}
	return nil
}

func (ro *rollout) end(st EndState, phase Phase, cause error) (Report, error) {
	if ro.ctl != nil {
		// After Abort, a rollout that does not succeed ends as the
		// Temporal backend's does: ESCanceled with ErrAborted, unless ctx
		// was canceled.
		if st != ESSuccess && st != ESUnknown && ro.ctl.isAborted() && (st != ESCanceled || cause == nil) {
			st, cause = ESCanceled, ErrAborted
		}
		defer ro.ctl.detach(st, phase, cause)
	}
	rep := ro.report(st)
	ro.emit(Event{Kind: EventEnd, Phase: phase, State: st.String(), Err: cause})
	if st == ESSuccess {
		return rep, nil
	}
	if cause == nil {
		cause = errors.New("rollout stopped")
	}
	return rep, &RunError{State: st, Phase: phase, Err: cause}
}

func (ro *rollout) report(st EndState) Report {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	rep := Report{State: st, Rollout: ro.id}
	var counts [skipped + 1]int
	for _, o := range ro.outcome {
		counts[o]++
	}
	if counts[succeeded] > 0 {
		rep.Succeeded = make([]string, 0, counts[succeeded])
	}
	for i, o := range ro.outcome {
		name := ro.targets[i].Name
		switch o {
		case notStarted:
			rep.NotStarted = append(rep.NotStarted, name)
		case succeeded:
			rep.Succeeded = append(rep.Succeeded, name)
		case failed:
			rep.Failures = append(rep.Failures, ro.errs[i])
		case interrupted, running:
			rep.Interrupted = append(rep.Interrupted, name)
		case skipped:
			rep.Skipped = append(rep.Skipped, name)
		}
	}
	return rep
}

func (r *Runner) writePlan(w io.Writer, targets []Target, skipped, canaries, rest []int, startAt func(int) string) {
	timeout := "none"
	if r.TargetTimeout > 0 {
		timeout = r.TargetTimeout.String()
	}
	onTrip := "drain"
	if r.CancelInFlight {
		onTrip = "are canceled"
	}
	fmt.Fprintf(w, "plan: %s to run (%d skipped), %s, concurrency %d, %s tolerated, per-target timeout %s, in-flight targets %s on a trip\n",
		plural(len(canaries)+len(rest), "target", "targets"), len(skipped), plural(len(canaries), "canary", "canaries"),
		max(r.Concurrency, 1), plural(r.MaxFailures, "failure", "failures"), timeout, onTrip)
	names := func(cs []Check) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name)
		}
		return strings.Join(s, ", ")
	}
	line := func(i int) string {
		t := &targets[i]
		s := t.Name + ": " + stateNames(t)
		if at := startAt(i); at != "" {
			s += " (resumes at " + at + ")"
		}
		return s
	}
	if len(r.Preconditions) > 0 {
		fmt.Fprintf(w, "preconditions: %s\n", names(r.Preconditions))
	}
	for _, i := range skipped {
		fmt.Fprintf(w, "skip %s\n", targets[i].Name)
	}
	for n, i := range canaries {
		fmt.Fprintf(w, "canary %d: %s\n", n+1, line(i))
	}
	if len(canaries) > 0 && r.Soak > 0 && len(rest) > 0 {
		fmt.Fprintf(w, "soak %s\n", r.Soak)
	}
	for _, i := range rest {
		fmt.Fprintf(w, "rollout: %s\n", line(i))
	}
	if len(r.Postconditions) > 0 {
		fmt.Fprintf(w, "postconditions: %s\n", names(r.Postconditions))
	}
}

// stateNames lists a target's states as "a → b → c".
func stateNames(t *Target) string {
	names := make([]string, len(t.States))
	for i, s := range t.States {
		names[i] = s.Name
	}
	return strings.Join(names, " → ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
