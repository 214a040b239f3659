// Package workflowmetrics turns a workflow.Runner's events into Prometheus
// metrics: targets by status, the current phase, the failure budget used,
// how the rollout ended and when. It uses only the Runner's public OnEvent
// callback, so it works with any Runner and any journal.
//
//	m := workflowmetrics.New(workflowmetrics.Config{MaxFailures: r.MaxFailures, Targets: len(targets)})
//	reg.MustRegister(m) // a long-running controller: scrape reg
//	r.OnEvent = m.Observe
//	rep, err := r.Run(ctx, targets)
//	werr := m.WriteTextfile("/var/lib/node_exporter/textfile/rollout.prom") // a batch job
//
// Metrics (Config.Labels are added to each):
//
//	opskit_workflow_targets{status}            targets by status: pending, running, succeeded, failed, interrupted, skipped
//	opskit_workflow_phase{phase}               1 for the phase running now (precondition, canary, soak, rollout, postcondition)
//	opskit_workflow_budget_failures            failures counted against the budget in the current run (rollout phase)
//	opskit_workflow_budget_max_failures        the failures tolerated (Config.MaxFailures)
//	opskit_workflow_budget_used_ratio          budget failures / (MaxFailures+1): 1 means the budget tripped
//	opskit_workflow_target_failures_total{phase}   every target failure
//	opskit_workflow_rollbacks_total{result}    rollbacks run, result ok or error
//	opskit_workflow_end_state{state}           1 for how the last run ended (ESSuccess, ESMaxFailures, ...)
//	opskit_workflow_start_timestamp_seconds, opskit_workflow_end_timestamp_seconds, opskit_workflow_last_event_timestamp_seconds
//
// A target's status is its latest event's: a target that failed in Run and
// succeeded in a later RetryFailed observed by the same Metrics counts as
// succeeded. The budget counts afresh in each run, as the Runner's does.
//
// # Testing
//
// Its tests run real Runners (Run, then RetryFailed on a journal) and check
// the gathered values and the textfile.
package workflowmetrics
