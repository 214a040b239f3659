// Command rollout-temporal runs a demo rollout on Temporal: a worker runs
// the targets' states as activities, and any other process starts the
// rollout, asks for its status, and pauses, resumes, promotes or aborts it.
// Kill the worker mid-rollout and start another: it carries on where the
// first one stopped.
//
// Usage:
//
//	rollout-temporal worker  [-addr HOST:PORT] [-task-queue Q] [-targets N] [-step D] [-fail NAME]
//	rollout-temporal start   [-addr ...] [-id ID] [-targets N] [-canaries N] [-soak D] [-concurrency N] [-max-failures N] [-wait]
//	rollout-temporal status|pause|resume|promote [-addr ...] [-id ID]
//	rollout-temporal abort   [-addr ...] [-id ID] [-cancel-in-flight]
//
// Each of the -targets demo targets (web1, web2, ...) goes through the
// states stop, start and check, each taking -step; -fail makes one target's
// start state fail. The worker and start must agree on -targets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rollout-temporal:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: rollout-temporal worker|start|status|pause|resume|promote|abort [flags]")

const definition = "demo"

type options struct {
	addr, taskQueue, id, fail string
	targets                   int
	step                      time.Duration
	canaries, concurrency     int
	maxFailures               int
	soak                      time.Duration
	cancelInFlight, wait      bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd := args[0]
	switch cmd {
	case "worker", "start", "status", "pause", "resume", "promote", "abort":
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	fs := flag.NewFlagSet("rollout-temporal "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7233", "Temporal frontend `host:port`")
	fs.StringVar(&o.taskQueue, "task-queue", "rollout", "task `queue` of the workers")
	fs.StringVar(&o.id, "id", "rollout", "workflow `ID` of the rollout")
	fs.IntVar(&o.targets, "targets", 6, "number of demo targets (worker and start must agree)")
	fs.DurationVar(&o.step, "step", time.Second, "how long each state of a demo target takes (worker)")
	fs.StringVar(&o.fail, "fail", "", "target `name` whose start state fails (worker)")
	fs.IntVar(&o.canaries, "canaries", 1, "canaries, run one at a time first (start)")
	fs.IntVar(&o.concurrency, "concurrency", 2, "targets at once after the canaries (start)")
	fs.IntVar(&o.maxFailures, "max-failures", 0, "failures tolerated (start)")
	fs.DurationVar(&o.soak, "soak", 0, "pause after the canaries (start)")
	fs.BoolVar(&o.wait, "wait", false, "wait for the end and print the report (start)")
	fs.BoolVar(&o.cancelInFlight, "cancel-in-flight", false, "cancel the targets in flight (abort)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	c, err := client.Dial(client.Options{HostPort: o.addr, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.addr, err)
	}
	defer c.Close()
	def := demoDefinition(o, stdout)
	switch cmd {
	case "worker":
		w := worker.New(c, o.taskQueue, worker.Options{})
		temporal.Register(w, map[string]*temporal.Definition{definition: def})
		if err := w.Start(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "worker on task queue %s at %s\n", o.taskQueue, o.addr)
		<-ctx.Done()
		w.Stop()
		return nil
	case "start":
		def.OnEvent = nil
		run, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: o.id, TaskQueue: o.taskQueue}, def, temporal.Options{
			Definition: definition, CanaryNum: o.canaries, Concurrency: o.concurrency, MaxFailures: o.maxFailures, Soak: o.soak,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "started rollout %s (run %s)\n", o.id, run.GetRunID())
		if !o.wait {
			return nil
		}
		rep, st, err := temporal.Wait(ctx, run)
		printStatus(stdout, st)
		if err == nil {
			fmt.Fprintf(stdout, "%d succeeded\n", len(rep.Succeeded))
		}
		return err
	case "status":
		st, err := temporal.GetStatus(ctx, c, o.id)
		if err != nil {
			return err
		}
		printStatus(stdout, st)
		return nil
	case "pause":
		return say(stdout, temporal.Pause(ctx, c, o.id), "paused")
	case "resume":
		return say(stdout, temporal.Resume(ctx, c, o.id), "resumed")
	case "promote":
		return say(stdout, temporal.Promote(ctx, c, o.id), "promoted")
	case "abort":
		return say(stdout, temporal.Abort(ctx, c, o.id, o.cancelInFlight), "abort sent")
	}
	panic("unreachable: command checked above")
}

func say(w io.Writer, err error, msg string) error {
	if err == nil {
		fmt.Fprintln(w, msg)
	}
	return err
}

// printStatus prints the phase and flags, then one line per target.
func printStatus(w io.Writer, st temporal.Status) {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{st.Paused, "paused"}, {st.Promoted, "promoted"}, {st.Aborted, "aborted"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	switch {
	case st.Ended && st.EndPhase == "":
		fmt.Fprintf(w, "ended %s\n", st.End)
	case st.Ended:
		fmt.Fprintf(w, "ended %s in the %s phase: %s\n", st.End, st.EndPhase, st.Err)
	default:
		fmt.Fprintln(w, strings.Join(append([]string{"phase", string(st.Phase)}, flags...), " "))
	}
	for _, t := range st.Targets {
		fmt.Fprintf(w, "  %-8s %-12s %-10s attempts=%d %s\n", t.Name, t.Outcome, t.State, t.Attempts, t.Err)
	}
}

// demoDefinition builds the demo targets; a worker prints each state.
func demoDefinition(o options, out io.Writer) *temporal.Definition {
	def := &temporal.Definition{OnEvent: func(ev workflow.Event) {
		if ev.Kind == workflow.EventPhase || ev.Kind == workflow.EventEnd {
			fmt.Fprintf(out, "%s %s %s\n", ev.Kind, ev.Phase, ev.State)
		}
	}}
	for i := 1; i <= o.targets; i++ {
		name := fmt.Sprintf("web%d", i)
		state := func(s string, next workflow.StateFn) workflow.StateFn {
			return func(ctx context.Context) (workflow.StateFn, error) {
				fmt.Fprintf(out, "%s: %s\n", name, s)
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(o.step):
				}
				if s == "start" && name == o.fail {
					return nil, errors.New("app did not start")
				}
				return next, nil
			}
		}
		def.Targets = append(def.Targets, workflow.Target{Name: name, States: []workflow.State{
			{Name: "stop", Fn: state("stop", workflow.Goto("start"))},
			{Name: "start", Fn: state("start", workflow.Goto("check"))},
			{Name: "check", Fn: state("check", nil)},
		}})
	}
	return def
}
