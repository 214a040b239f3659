// Package lbrollout is the talk's rollout, shared by the examples that run
// it (examples/rollout on the local workflow.Runner, examples/rollout-temporal
// on Temporal): backends behind a load balancer, each removed from the
// pool, stopped, sent the new binary (checksum verified), started,
// checked and added back. Config is the JSON configuration, Plan turns it
// into workflow.Targets and checks, and Demo is the -demo world on
// loopback (backends and a load balancer in the process).
package lbrollout
