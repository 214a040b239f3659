// Package temporal runs workflow rollouts on Temporal, so that a rollout
// outlives the process that started it: the same workflow.Target, State
// and StateFn model and the same semantics as workflow.Runner (canaries one
// at a time, soak, exact failure budget, no start after a trip, drain or
// cancel in flight, pre- and post-checks, EndState, per-target state
// resume), as a Temporal workflow whose targets' states run as activities
// with heartbeats. When a worker dies, any other worker of the task queue
// carries on: states that ended do not run again, the state in flight runs
// again (its next attempt) once its heartbeat times out.
//
// It is a module of its own (github.com/opskit/opskit/workflow/temporal),
// so that the core module does not pull Temporal and gRPC.
//
// StateFns cannot travel through Temporal: every worker, and the process
// that starts the rollout, builds the same Definition, registered by name;
// the workflow's history holds only names and Options.
//
//	def := &temporal.Definition{Targets: targets} // as for workflow.Runner
//	w := worker.New(c, "rollout", worker.Options{})
//	temporal.Register(w, map[string]*temporal.Definition{"app": def})
//	go w.Run(worker.InterruptCh())
//
//	run, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: "app-v2", TaskQueue: "rollout"}, def,
//		temporal.Options{Definition: "app", CanaryNum: 1, Soak: time.Minute, Concurrency: 10, MaxFailures: 2})
//	if err != nil {
//		return err
//	}
//	report, _, err := temporal.Wait(ctx, run) // as workflow.Runner.Run returns them
//
// While it runs: Pause, Resume, Promote (end the soak now), Abort (no more
// starts; drain or cancel in flight; workflow.ESCanceled with ErrAborted)
// and GetStatus (per target: outcome, state, attempts, error) are signals
// and a query. ResumeFrom continues a finished rollout as
// workflow.Runner.Resume does. Package promgate is a metric gate
// (Prometheus query against a threshold) for Definition.Gate, asked before
// the phases and, with Options.GateEvery, during the soak.
//
// Differences from workflow.Runner: Options.StateTimeout bounds each state
// (all its attempts) rather than Runner.TargetTimeout the whole target;
// OnEvent runs in the worker that runs the workflow code and may miss
// events when a worker dies (GetStatus is the record); there is no journal
// file and no dry run. One workflow history holds the whole rollout, and
// Temporal caps a history at 51,200 events: with 3 to 6 events per state,
// split rollouts of more than about 8,000 states in all.
//
// The workflow code is replayed from history: a worker must not run a
// different version of this package than the one that started a rollout
// still in flight.
//
// examples/rollout-temporal (a module of its own) runs the talk's
// rollout, the targets of examples/rollout, on this backend: a worker, a
// start command and the control subcommands.
//
// # Testing
//
// workflowtest.TestEngine, the conformance suite of workflow.Runner's
// semantics, runs against this backend in Temporal's in-process test
// environment (go.temporal.io/sdk/testsuite). The dev-server test (a
// worker SIGKILLed in a state, another finishing the rollout) needs the
// temporal CLI at $OPSKIT_TEMPORAL or ~/.cache/opskit/bin/temporal (.ci/run
// builds it); it skips without it, and fails under
// OPSKIT_REQUIRE_INTEGRATION=1. examples/rollout-temporal's tests drive
// pause, promote and abort through its CLI against a dev server.
package temporal
