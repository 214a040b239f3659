package workflow

//go:generate stringer -type=EndState

// EndState is how a rollout ended. The zero value, ESUnknown, means nothing
// ran: it is what a dry run reports.
type EndState int

// The end states of a rollout. String returns the constant's name.
const (
	// ESUnknown: the rollout did not run (a dry run, or invalid input).
	ESUnknown EndState = iota
	// ESSuccess: every target ran and the postconditions held. Failures
	// within the budget (Runner.MaxFailures) are tolerated and listed in
	// Report.Failures.
	ESSuccess
	// ESPreconditionFailure: a precondition failed, or the gate refused the
	// canary phase; no target started.
	ESPreconditionFailure
	// ESCanaryFailure: a canary failed, or the gate refused the rollout
	// phase; no non-canary target started.
	ESCanaryFailure
	// ESMaxFailures: more than MaxFailures targets failed; no target started
	// after the failure that tripped the budget.
	ESMaxFailures
	// ESPostconditionFailure: every target ran but a postcondition failed,
	// or the gate refused the postcondition phase.
	ESPostconditionFailure
	// ESCanceled: the context was canceled before the rollout ended.
	ESCanceled
)
