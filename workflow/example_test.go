package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/workflowtest"
)

func upgrade(ex workflow.Executor, host string) workflow.Target {
	return workflow.Target{Name: host, States: []workflow.State{
		{Name: "stop", Fn: workflow.Cmd(ex, host, "systemctl stop app", workflow.Goto("start"))},
		{Name: "start", Fn: workflow.Cmd(ex, host, "systemctl start app", nil)},
	}}
}

func printCalls(rec *workflowtest.Recorder) {
	for _, c := range rec.Calls() {
		fmt.Printf("%s: %s\n", c.Host, c.Cmd)
	}
}

// A canary first, then the rest; one failure is tolerated.
func ExampleRunner() {
	rec := workflowtest.NewRecorder()
	rec.Fail("web3", "systemctl start app", errors.New("exit status 1"))
	var targets []workflow.Target
	for _, h := range []string{"web1", "web2", "web3", "web4"} {
		targets = append(targets, upgrade(rec, h))
	}
	r := workflow.Runner{Concurrency: 1, CanaryNum: 1, MaxFailures: 1}
	rep, err := r.Run(context.Background(), targets)
	printCalls(rec)
	fmt.Println(rep.State, err)
	for _, f := range rep.Failures {
		fmt.Printf("%s failed in state %s: %v\n", f.Target, f.State, f.Err)
	}
	// Output:
	// web1: systemctl stop app
	// web1: systemctl start app
	// web2: systemctl stop app
	// web2: systemctl start app
	// web3: systemctl stop app
	// web3: systemctl start app
	// web4: systemctl stop app
	// web4: systemctl start app
	// ESSuccess <nil>
	// web3 failed in state start: exit status 1
}

// The second failure trips a budget of one: nothing starts after it.
func ExampleRunner_maxFailures() {
	rec := workflowtest.NewRecorder()
	rec.Fail("web1", "systemctl stop app", errors.New("exit status 1"))
	rec.Fail("web2", "systemctl stop app", errors.New("exit status 1"))
	var targets []workflow.Target
	for _, h := range []string{"web1", "web2", "web3"} {
		targets = append(targets, upgrade(rec, h))
	}
	r := workflow.Runner{Concurrency: 1, MaxFailures: 1}
	rep, err := r.Run(context.Background(), targets)
	fmt.Println(rep.State, rep.NotStarted)
	var re *workflow.RunError
	fmt.Println(errors.As(err, &re), err)
	fmt.Println("commands run on web3:", rec.Count("web3", "systemctl stop app"))
	// Output:
	// ESMaxFailures [web3]
	// true workflow: ESMaxFailures in rollout phase: target web2 failed in state stop: exit status 1
	// commands run on web3: 0
}

// RetryFailed reruns a failed target from the state it failed in.
func ExampleRunner_RetryFailed() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	j, _ := workflow.OpenJournal(filepath.Join(dir, "journal"))
	defer j.Close()

	rec := workflowtest.NewRecorder()
	rec.Fail("web2", "systemctl start app", errors.New("exit status 1"))
	targets := []workflow.Target{upgrade(rec, "web1"), upgrade(rec, "web2")}
	r := workflow.Runner{MaxFailures: 1, Journal: j}
	rep, _ := r.Run(context.Background(), targets)
	fmt.Println(rep.State, "failed:", rep.Failures[0].Target, "in", rep.Failures[0].State)

	rec.Fail("web2", "systemctl start app", nil) // fixed
	rep, _ = r.RetryFailed(context.Background(), targets)
	fmt.Println(rep.State, "skipped:", rep.Skipped)
	printCalls(rec)
	// Output:
	// ESSuccess failed: web2 in start
	// ESSuccess skipped: [web1]
	// web1: systemctl stop app
	// web1: systemctl start app
	// web2: systemctl stop app
	// web2: systemctl start app
	// web2: systemctl start app
}

// A dry run prints the plan and runs nothing.
func ExampleRunner_dryRun() {
	rec := workflowtest.NewRecorder()
	targets := []workflow.Target{upgrade(rec, "web1"), upgrade(rec, "web2"), upgrade(rec, "web3")}
	r := workflow.Runner{DryRun: true, PlanOutput: os.Stdout, Concurrency: 2, CanaryNum: 1, Soak: time.Minute}
	rep, _ := r.Run(context.Background(), targets)
	fmt.Println(rep.State, len(rec.Calls()))
	// Output:
	// plan: 3 targets to run (0 skipped), 1 canary, concurrency 2, 0 failures tolerated, per-target timeout none, in-flight targets drain on a trip
	// canary 1: web1: stop → start
	// soak 1m0s
	// rollout: web2: stop → start
	// rollout: web3: stop → start
	// ESUnknown 0
}
