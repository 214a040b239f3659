package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/workflow"
)

// workflowChapter is the tour's workflow chapter.
func workflowChapter() chapter {
	return chapter{
		name:    "workflow",
		summary: "canary rollouts: within budget, tripping it, resumed from the journal",
		run:     runWorkflowChapter,
	}
}

// recorderExec adapts fleettest's recording executor to workflow.Executor.
type recorderExec struct{ rec *fleettest.Recorder }

func (e recorderExec) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	res, err := e.rec.Run(ctx, fleet.Command{Host: host, Shell: cmd})
	return res.Stdout, err
}

// tourRollout is a five-host rollout whose commands go to a recorder that
// fails the commands listed in fail ("host cmd").
type tourRollout struct {
	rec     *fleettest.Recorder
	targets []workflow.Target
}

var tourSteps = []struct{ state, cmd string }{
	{"stop", "systemctl stop app"},
	{"copy", "install app-v2 /usr/local/bin/app"},
	{"start", "systemctl start app"},
	{"check", "curl -fsS localhost:8080/healthz"},
}

func newTourRollout(fail map[string]bool, hook func(ctx context.Context, host, state string) error) *tourRollout {
	tr := &tourRollout{rec: fleettest.NewRecorder(func(ctx context.Context, c fleet.Command) (fleet.Result, error) {
		if fail[c.Host+" "+c.Shell] {
			return fleet.Result{ExitCode: 1, Stderr: []byte("disk full")}, nil
		}
		return fleet.Result{}, nil
	})}
	ex := recorderExec{tr.rec}
	for i := 1; i <= 5; i++ {
		host := fmt.Sprintf("web%d", i)
		var states []workflow.State
		for k, s := range tourSteps {
			next := workflow.StateFn(nil)
			if k+1 < len(tourSteps) {
				next = workflow.Goto(tourSteps[k+1].state)
			}
			run := workflow.Cmd(ex, host, s.cmd, next)
			state := s.state
			states = append(states, workflow.State{Name: state, Fn: func(ctx context.Context) (workflow.StateFn, error) {
				if hook != nil {
					if err := hook(ctx, host, state); err != nil {
						return nil, err
					}
				}
				return run(ctx)
			}})
		}
		tr.targets = append(tr.targets, workflow.Target{Name: host, States: states})
	}
	return tr
}

// ran counts how often host ran the command of state.
func (tr *tourRollout) ran(host, state string) int {
	var cmd string
	for _, s := range tourSteps {
		if s.state == state {
			cmd = s.cmd
		}
	}
	n := 0
	for _, c := range tr.rec.Commands() {
		if c.Host == host && c.Shell == cmd {
			n++
		}
	}
	return n
}

func targetNames(fs []*workflow.TargetError) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%s (in state %s)", f.Target, f.State))
	}
	return strings.Join(s, ", ")
}

func runWorkflowChapter(ctx context.Context, n *narrator) error {
	// 1. One canary passes, a later host fails within the budget.
	n.Say("Rollout 1: 5 hosts, 1 canary, concurrency 2, 1 failure tolerated; web4's copy fails.")
	tr := newTourRollout(map[string]bool{"web4 install app-v2 /usr/local/bin/app": true}, nil)
	var canaryDone bool
	r := workflow.Runner{Concurrency: 2, CanaryNum: 1, MaxFailures: 1, OnEvent: func(ev workflow.Event) {
		if ev.Kind == workflow.EventDone && ev.Phase == workflow.PhaseCanary {
			canaryDone = true
			n.Say("canary %s passed; the rest follow", ev.Target)
		}
	}}
	rep, err := r.Run(ctx, tr.targets)
	if err != nil || rep.State != workflow.ESSuccess || !canaryDone || len(rep.Failures) != 1 {
		return fmt.Errorf("rollout 1 ended %s (%v), want ESSuccess with one failure", rep.State, err)
	}
	n.Say("tolerated failure: %s: %v", targetNames(rep.Failures), errors.Unwrap(rep.Failures[0]))
	n.Say("end state %s: %d succeeded, %d failed within the budget", rep.State, len(rep.Succeeded), len(rep.Failures))

	// 2. The second failure trips the budget; nothing starts after it.
	n.Say("Rollout 2: the same, one at a time; web2 and web3 fail to start.")
	tr = newTourRollout(map[string]bool{"web2 systemctl start app": true, "web3 systemctl start app": true}, nil)
	r = workflow.Runner{Concurrency: 1, CanaryNum: 1, MaxFailures: 1}
	rep, err = r.Run(ctx, tr.targets)
	var re *workflow.RunError
	if rep.State != workflow.ESMaxFailures || !errors.As(err, &re) {
		return fmt.Errorf("rollout 2 ended %s (%v), want ESMaxFailures", rep.State, err)
	}
	n.Say("failed: %s", targetNames(rep.Failures))
	n.Say("end state %s; never started: %s", rep.State, strings.Join(rep.NotStarted, ", "))
	for _, h := range rep.NotStarted {
		if tr.ran(h, "stop") != 0 {
			return fmt.Errorf("%s ran after the budget tripped", h)
		}
	}

	// 3. The controller dies while web3 is starting; resume from the journal.
	dir, err := os.MkdirTemp("", "tour-workflow-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	live, crashed := filepath.Join(dir, "rollout.journal"), filepath.Join(dir, "crashed.journal")
	n.Say("Rollout 3: journaled; the controller is killed while web3 is in state start.")
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	killed := false
	tr = newTourRollout(nil, func(ctx context.Context, host, state string) error {
		if killed || host != "web3" || state != "start" {
			return nil
		}
		killed = true
		// What a SIGKILL leaves on disk: the journal so far, and a torn
		// last line from a write cut short.
		b, err := os.ReadFile(live)
		if err != nil {
			return err
		}
		if err := os.WriteFile(crashed, append(b, `{"time":"2026-`...), 0o644); err != nil {
			return err
		}
		kill()
		return context.Canceled
	})
	j, err := workflow.OpenJournal(live)
	if err != nil {
		return err
	}
	r = workflow.Runner{Concurrency: 1, CanaryNum: 1, Journal: j}
	r.Run(runCtx, tr.targets)
	j.Close()

	j, err = workflow.OpenJournal(crashed)
	if err != nil {
		return err
	}
	defer j.Close()
	st, _ := j.Status("web3")
	n.Say("the journal (torn last line dropped) says web3 is %s in state %s", st.Status, st.State)
	r = workflow.Runner{Concurrency: 2, CanaryNum: 1, Journal: j}
	rep, err = r.Resume(ctx, tr.targets)
	if err != nil || rep.State != workflow.ESSuccess {
		return fmt.Errorf("resume ended %s (%v), want ESSuccess", rep.State, err)
	}
	n.Say("resumed: skipped %s; ran %s", strings.Join(rep.Skipped, ", "), strings.Join(rep.Succeeded, ", "))
	for _, t := range tr.targets {
		for _, s := range tourSteps {
			if c := tr.ran(t.Name, s.state); c != 1 {
				return fmt.Errorf("%s ran %s %d times, want once", t.Name, s.state, c)
			}
		}
	}
	n.Say("every host ran each step exactly once: web3 went on from start, not from stop")
	n.Say("end state %s", rep.State)
	return nil
}
