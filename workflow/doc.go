// Package workflow runs canary rollouts over many targets: it checks global
// preconditions, runs a few canaries one at a time, soaks, runs the rest
// with bounded concurrency under an exact failure budget, checks
// postconditions, and reports an EndState.
//
// Each target's work is a state machine of named StateFn states. Every
// transition goes to an append-only, fsync'd JSON-lines Journal, so after a
// crash of the controlling process Runner.Resume skips the targets that
// succeeded and restarts the others at the state they were in, and
// Runner.RetryFailed reruns only the failed ones from the state they failed in.
//
// Commands run through an [Executor]: anything with Run(ctx, host, cmd)
// ([]byte, error), exec in the program below. For package fleet's executors
// it is fleet.ShellExecutor{Executor: ssh}, which runs each command as a
// shell line on the host. fleet and workflow do not import each other; only
// your program joins them.
//
// The shortest useful program:
//
//	j, err := workflow.OpenJournal("rollout.journal")
//	if err != nil {
//		return err
//	}
//	defer j.Close()
//	var targets []workflow.Target
//	for _, host := range hosts {
//		targets = append(targets, workflow.Target{Name: host, States: []workflow.State{
//			{Name: "stop", Fn: workflow.Cmd(exec, host, "systemctl stop app", workflow.Goto("start"))},
//			{Name: "start", Fn: workflow.Cmd(exec, host, "systemctl start app", nil)},
//		}})
//	}
//	r := workflow.Runner{Concurrency: 10, CanaryNum: 1, Soak: time.Minute, MaxFailures: 2, Journal: j}
//	report, err := r.Run(ctx, targets) // after a crash: r.Resume(ctx, targets)
//	fmt.Println(report.State)          // ESSuccess, ESCanaryFailure, ESMaxFailures, ...
//
// A journal may hold many rollouts: each Run starts a new epoch with a
// header record (EventBegin) carrying the rollout's ID (Runner.RolloutID,
// or a random one) and a digest of its plan (PlanDigest: target and state
// names). Resume and RetryFailed read only the latest epoch, so a target
// that succeeded in an earlier rollout is not skipped in a later one, and
// they refuse, with a *PlanMismatchError, targets whose plan or ID differ
// from the journaled rollout, unless Runner.AllowPlanChange is set.
//
// A panic in a state, pre-check, post-check or rollback fails only that
// target, with a *PanicError holding the stack, counted against the
// budget like any failure; a panicking check or gate fails the rollout.
//
// The failure budget is exact: with MaxFailures set to n, the (n+1)th
// failure trips it and no target starts afterwards, whatever the
// concurrency. Targets already running then drain, or are canceled when
// CancelInFlight is set.
//
// A Control (Runner.Control) steers a run while it goes on, with the
// vocabulary of the Temporal backend's signals: Pause (no target starts,
// and the rollout holds at the end of the soak; targets in flight go on),
// Resume, Promote (end the soak now), Abort(cancelInFlight) (nothing starts
// any more, targets in flight drain or are canceled, and the rollout ends
// in ESCanceled with ErrAborted), and Status, its progress per target
// (outcome, state, attempts, error). Call its methods from any goroutine,
// such as a handler on a unix socket (examples/rollout does this).
//
// # Testing
//
// Package github.com/opskit/opskit/workflow/workflowtest has a recording
// Executor with failure switches (workflowtest.NewRecorder) and
// TestExecutor, which checks an Executor of your own, and TestEngine, the
// conformance suite of the semantics above, which runs against Runner and
// against the Temporal backend (module workflow/temporal, where a rollout
// outlives its controller; WithGoto is how such an engine sees Goto
// transitions). Targets are plain
// functions, so tests can also build targets whose states record their
// calls; drive timing (soak, per-target timeouts, cancellation) inside
// testing/synctest bubbles, as this package's own tests do.
package workflow
