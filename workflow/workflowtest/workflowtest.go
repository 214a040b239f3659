// Package workflowtest has fakes for code that uses package workflow: a
// recording workflow.Executor with failure switches, TestExecutor, which
// checks an Executor implementation that runs shell commands, and
// TestEngine, the conformance suite every rollout engine (workflow.Runner
// through NewLocalEngine, the Temporal backend in workflow/temporal) must
// pass; engines that are ControlEngines (NewLocalEngine's is) also go
// through its control scenarios: pause, resume, promote, abort, status.
//
//	rec := workflowtest.NewRecorder()
//	rec.Fail("web2", "systemctl start app", errors.New("exit status 1"))
//	target := workflow.Target{Name: "web2", States: []workflow.State{
//		{Name: "start", Fn: workflow.Cmd(rec, "web2", "systemctl start app", nil)},
//	}}
//	// run it with a workflow.Runner, then inspect rec.Calls().
//
// # Testing
//
// This package is itself the test package of workflow; its own behaviour
// is checked by workflowtest_test.go, and TestExecutor is run against
// fleet's SSH executor in examples/rollout.
package workflowtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/opskit/opskit/workflow"
)

// Call is one command a Recorder was asked to run.
type Call struct {
	Host string
	Cmd  string
}

// Recorder is an in-memory workflow.Executor: it records every call and
// answers with the failure set by Fail, or else with Respond. The zero
// value answers every command with success and no output. It is safe for
// concurrent use and holds no resources.
type Recorder struct {
	// Respond computes the output of a command that has no failure set;
	// nil means success with no output.
	Respond func(ctx context.Context, host, cmd string) ([]byte, error)

	mu    sync.Mutex
	calls []Call
	fail  map[Call]error
}

var _ workflow.Executor = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Fail makes every later run of cmd on host return err; a nil err clears
// the failure.
func (r *Recorder) Fail(host, cmd string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[Call]error{}
	}
	if err == nil {
		delete(r.fail, Call{host, cmd})
		return
	}
	r.fail[Call{host, cmd}] = err
}

// Run records the call. If ctx is already done it returns an error
// wrapping ctx.Err(); otherwise the failure set by Fail, or Respond's answer.
func (r *Recorder) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, Call{host, cmd})
	err := r.fail[Call{host, cmd}]
	respond := r.Respond
	r.mu.Unlock()
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("workflowtest: %s: %w", host, cerr)
	}
	if err != nil {
		return nil, err
	}
	if respond != nil {
		return respond(ctx, host, cmd)
	}
	return nil, nil
}

// Calls returns the calls so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Count returns how many times cmd was run on host.
func (r *Recorder) Count(host, cmd string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.Host == host && c.Cmd == cmd {
			n++
		}
	}
	return n
}
