// Command rollout-temporal runs the talk's rollout (examples/rollout: for
// each backend behind a load balancer, remove it from the pool, stop the
// job, copy the new binary with its checksum verified, start it, check it
// and add it back, canaries first, with an exact failure budget) on
// Temporal, so that it outlives the process that started it: workers run
// the backends' states as activities, any process starts the rollout or
// steers it, and when a worker dies another one on the task queue carries
// on where it stopped.
//
// Usage:
//
//	rollout-temporal worker -temporal ADDR (-demo [-demo-port P] [-demo-dir D] [-demo-corrupt N] [-demo-step D] | -config F -user U [-key F] [-known-hosts F] [-ssh-port 22])
//	rollout-temporal start  -temporal ADDR (-demo [-demo-port P] [-demo-dir D] | -config F) [-id ID] [-soak D] [-timeout D] [-heartbeat-timeout D] [-cancel-in-flight] [-wait]
//	rollout-temporal status|pause|resume|promote -temporal ADDR [-id ID]
//	rollout-temporal abort  -temporal ADDR [-id ID] [-cancel-in-flight]
//
// The worker and start build the same targets from the same -config (or
// -demo) and must agree on it. -demo runs the demo world of
// examples/rollout inside the worker: 8 backends running app v1 on
// 127.0.0.1:P+1..P+8 and a load balancer on 127.0.0.1:P, keeping the
// backends' binaries under -demo-dir; a worker started again on the same
// -demo-dir brings the backends back with the binaries they had, so that
// killing a worker mid-rollout and starting another shows the failover.
// start -wait waits for the end, prints every backend's status and, for
// the demo, what the load balancer and each backend serve, and fails
// unless the rollout ended ESSuccess.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/lbrollout"
	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

func main() {
	cli.Main("rollout-temporal", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var errUsage = cli.ErrUsage // the tests compare with errUsage

// definition is the name the workers register the rollout under.
const definition = "lbrollout"

// demoBackends is the number of backends of -demo, as in examples/rollout.
const demoBackends = 8

type options struct {
	temporal, taskQueue, id string
	demo                    bool
	demoPort, demoCorrupt   int
	demoStep                time.Duration
	demoDir, config         string
	user, key, knownHosts   string
	sshPort                 int
	soak, timeout           time.Duration
	heartbeatTimeout        time.Duration
	cancelInFlight, wait    bool
}

const usage = `Usage:
  rollout-temporal worker -temporal ADDR (-demo [-demo-port P] [-demo-dir D] [-demo-corrupt N] [-demo-step D] | -config F -user U [-key F] [-known-hosts F] [-ssh-port N])
  rollout-temporal start  -temporal ADDR (-demo [-demo-port P] [-demo-dir D] | -config F) [-id ID] [-soak D] [-timeout D] [-heartbeat-timeout D] [-cancel-in-flight] [-wait]
  rollout-temporal status|pause|resume|promote -temporal ADDR [-id ID]
  rollout-temporal abort  -temporal ADDR [-id ID] [-cancel-in-flight]

Runs the talk's rollout (examples/rollout) on Temporal: workers run it, any process starts or steers it.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rollout-temporal", stderr, usage)
	if len(args) == 0 {
		return cli.Usagef(fs, "give a command: worker, start, status, pause, resume, promote or abort")
	}
	cmd := args[0]
	switch cmd {
	case "worker", "start", "status", "pause", "resume", "promote", "abort":
	case "-h", "-help", "--help":
		fs.Usage()
		return flag.ErrHelp
	default:
		return cli.Usagef(fs, "unknown command %q", cmd)
	}
	fs = cli.NewFlagSet("rollout-temporal "+cmd, stderr, usage)
	var o options
	fs.StringVar(&o.temporal, "temporal", "", "Temporal frontend `host:port` (required)")
	fs.StringVar(&o.taskQueue, "task-queue", "rollout", "task `queue` of the workers")
	fs.StringVar(&o.id, "id", "rollout", "workflow `ID` of the rollout")
	fs.BoolVar(&o.demo, "demo", false, "the demo: 8 backends and a load balancer on loopback, run by the worker")
	fs.IntVar(&o.demoPort, "demo-port", 18080, "with -demo, the load balancer's `port`; backend i listens on port+i")
	fs.StringVar(&o.demoDir, "demo-dir", filepath.Join(os.TempDir(), "rollout-temporal-demo"), "with -demo, the `directory` of the new binary and the backends' binaries")
	fs.IntVar(&o.demoCorrupt, "demo-corrupt", 0, "with -demo (worker), corrupt the copy to backend `N` (1-8), to show a tolerated failure")
	fs.DurationVar(&o.demoStep, "demo-step", 0, "with -demo (worker), how long every stop, start and copy takes, to watch the rollout or kill the worker in the middle of a state")
	fs.StringVar(&o.config, "config", "", "JSON config `file`, as for examples/rollout")
	fs.StringVar(&o.user, "user", "", "SSH user (worker, with -config)")
	fs.StringVar(&o.key, "key", "", "SSH private key `file` (passphrase from $ROLLOUT_KEY_PASSPHRASE; without -key, ssh-agent via $SSH_AUTH_SOCK)")
	fs.StringVar(&o.knownHosts, "known-hosts", "", "known_hosts `file`; default ~/.ssh/known_hosts")
	fs.IntVar(&o.sshPort, "ssh-port", 22, "SSH port of the backends")
	fs.DurationVar(&o.soak, "soak", 0, "pause after the canaries (start)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "timeout of one state of a backend, its retries included (start)")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 10*time.Second, "how long a state may go without a heartbeat before another worker runs it again (start)")
	fs.BoolVar(&o.cancelInFlight, "cancel-in-flight", false, "start: when the failure budget trips, cancel backends in progress; abort: cancel them")
	fs.BoolVar(&o.wait, "wait", false, "wait for the end and print the outcome (start)")
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	needsTargets := cmd == "worker" || cmd == "start"
	switch {
	case fs.NArg() > 0:
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	case o.temporal == "":
		return cli.Usagef(fs, "-temporal is required")
	case needsTargets && o.demo == (o.config != ""):
		return cli.Usagef(fs, "give exactly one of -demo and -config")
	case cmd == "worker" && !o.demo && o.user == "":
		return cli.Usagef(fs, "-user is required without -demo")
	case o.demoCorrupt < 0 || o.demoCorrupt > demoBackends:
		return cli.Usagef(fs, "-demo-corrupt must be between 1 and %d", demoBackends)
	case o.demo && (o.demoPort < 1 || o.demoPort+demoBackends > 65535):
		return cli.Usagef(fs, "-demo-port must leave room for %d backends above it", demoBackends)
	}

	c, err := client.Dial(client.Options{HostPort: o.temporal, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("rollout-temporal: connect to %s: %w", o.temporal, err)
	}
	defer c.Close()
	switch cmd {
	case "worker":
		return runWorker(ctx, c, o, stdout)
	case "start":
		return start(ctx, c, o, stdout)
	case "status":
		st, err := temporal.GetStatus(ctx, c, o.id)
		if err != nil {
			return err
		}
		printStatus(stdout, st)
		return nil
	case "pause":
		return say(stdout, temporal.Pause(ctx, c, o.id), "paused: no backend starts, and the soak holds at its end")
	case "resume":
		return say(stdout, temporal.Resume(ctx, c, o.id), "resumed")
	case "promote":
		return say(stdout, temporal.Promote(ctx, c, o.id), "promoted: the soak ends now")
	case "abort":
		return say(stdout, temporal.Abort(ctx, c, o.id, o.cancelInFlight), "abort sent: nothing starts any more")
	}
	panic("unreachable: command checked above")
}

// scenario is what a worker or start builds from -demo or -config.
type scenario struct {
	cfg  lbrollout.Config
	plan *lbrollout.Plan
	def  *temporal.Definition
}

// newScenario builds the rollout's Definition from o. exec and push may be
// nil (start only needs the targets' names and states); dm, if not nil, is
// the demo world the targets run in.
func newScenario(o options, exec workflow.Executor, push lbrollout.Pusher, dm *lbrollout.Demo) (*scenario, error) {
	var cfg lbrollout.Config
	if o.demo {
		src, err := demoSrc(o.demoDir)
		if err != nil {
			return nil, err
		}
		cfg = lbrollout.DemoConfig(src, demoBackends, o.demoPort)
	} else {
		var err error
		if cfg, err = lbrollout.LoadConfig(o.config); err != nil {
			return nil, err
		}
	}
	p, err := lbrollout.NewPlan(cfg, exec, push, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	if dm != nil {
		dm.Use(p) // before the targets are built: it names their hosts
	}
	return &scenario{cfg: cfg, plan: p, def: &temporal.Definition{
		Targets:        p.Targets(),
		Preconditions:  p.Preconditions(),
		Postconditions: p.Postconditions(),
	}}, nil
}

// demoSrc writes the demo's new binary, "app v2", under dir.
func demoSrc(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "app-v2")
	return src, os.WriteFile(src, []byte("app v2\n"), 0o755)
}

// runWorker runs a worker for the rollout until ctx ends; with -demo it
// runs the demo world too, for as long as it runs.
func runWorker(ctx context.Context, c client.Client, o options, stdout io.Writer) error {
	var (
		sc  *scenario
		err error
	)
	if o.demo {
		dm, err := lbrollout.NewDemo(filepath.Join(o.demoDir, "backends"), demoBackends, o.demoPort)
		if err != nil {
			return fmt.Errorf("rollout-temporal: demo: %w", err)
		}
		defer dm.Close()
		if o.demoCorrupt > 0 {
			dm.Corrupt = dm.Order[o.demoCorrupt-1]
		}
		dm.Step = o.demoStep
		if sc, err = newScenario(o, dm, dm, dm); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "demo: %d backends behind the load balancer at %s\n", len(dm.Order), dm.LB.Addr())
		for _, b := range dm.Order {
			fmt.Fprintf(stdout, "  %s  %s\n", b, dm.Version(b))
		}
	} else {
		ssh, err := fleet.NewSSH(lbrollout.SSHAuth(o.user, o.key, o.knownHosts, o.sshPort))
		if err != nil {
			return err
		}
		defer ssh.Close()
		if sc, err = newScenario(o, fleet.ShellExecutor{Executor: ssh}, lbrollout.FleetPush{SSH: ssh}, nil); err != nil {
			return err
		}
	}
	sc.def.OnEvent = eventPrinter{stdout}.event
	w := worker.New(c, o.taskQueue, worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{definition: sc.def})
	if err = w.Start(); err != nil {
		return fmt.Errorf("rollout-temporal: worker: %w", err)
	}
	fmt.Fprintf(stdout, "worker on task queue %s at %s\n", o.taskQueue, o.temporal)
	<-ctx.Done()
	w.Stop()
	return nil
}

// start starts the rollout and, with -wait, waits for its end.
func start(ctx context.Context, c client.Client, o options, stdout io.Writer) error {
	sc, err := newScenario(o, nil, nil, nil)
	if err != nil {
		return err
	}
	opts := temporal.Options{
		Definition:       definition,
		Concurrency:      sc.cfg.Concurrency,
		CanaryNum:        sc.cfg.CanaryNum,
		MaxFailures:      sc.cfg.MaxFailures,
		Soak:             o.soak,
		CancelInFlight:   o.cancelInFlight,
		StateTimeout:     o.timeout,
		HeartbeatTimeout: o.heartbeatTimeout,
	}
	wr, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: o.id, TaskQueue: o.taskQueue}, sc.def, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "started rollout %s of %s (sha256:%.12s) over %d backends (run %s)\n",
		o.id, filepath.Base(sc.cfg.Src), sc.plan.Sum, len(sc.cfg.Backends), wr.GetRunID())
	fmt.Fprintf(stdout, "steer it: rollout-temporal status|pause|resume|promote|abort -temporal %s -id %s\n", o.temporal, o.id)
	if !o.wait {
		return nil
	}
	rep, st, err := temporal.Wait(ctx, wr)
	printStatus(stdout, st)
	if pool, perr := sc.plan.Pool(ctx); perr == nil {
		fmt.Fprintf(stdout, "pool: %d of %d backends in rotation\n", len(pool), len(sc.cfg.Backends))
		if o.demo {
			hc := &http.Client{Timeout: 5 * time.Second}
			for _, b := range sc.cfg.Backends {
				in := "out of pool"
				for _, m := range pool {
					if m == b {
						in = "in pool"
					}
				}
				v, gerr := lbrollout.Get(ctx, hc, "http://"+b+"/")
				if gerr != nil {
					v = "down"
				}
				fmt.Fprintf(stdout, "  %s  %-11s  %s\n", b, in, v)
			}
		}
	}
	fmt.Fprintf(stdout, "end state: %s\n", rep.State)
	return err
}

func say(w io.Writer, err error, msg string) error {
	if err == nil {
		fmt.Fprintln(w, msg)
	}
	return err
}

// printStatus prints the status as examples/rollout's status does.
func printStatus(w io.Writer, st temporal.Status) {
	lbrollout.PrintStatus(w, workflow.Status{Phase: st.Phase, Paused: st.Paused, Promoted: st.Promoted, Aborted: st.Aborted,
		Ended: st.Ended, End: st.End, EndPhase: st.EndPhase, Err: st.Err, Targets: st.Targets})
}

// eventPrinter prints a worker's events, one line each; OnEvent calls are
// serialized, so it needs no lock.
type eventPrinter struct{ w io.Writer }

func (s eventPrinter) event(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventPhase:
		fmt.Fprintf(s.w, "phase %s\n", ev.Phase)
	case workflow.EventEnd:
		fmt.Fprintf(s.w, "end state: %s\n", ev.State)
	case workflow.EventStart, workflow.EventDone, workflow.EventFail, workflow.EventInterrupted:
		line := fmt.Sprintf("%s %s", ev.Target, ev.Kind)
		if ev.Err != nil {
			line += ": " + ev.Err.Error()
		}
		fmt.Fprintln(s.w, line)
	}
}
