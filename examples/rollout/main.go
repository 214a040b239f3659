// Command rollout upgrades a service on many backends behind a load
// balancer, the talk's scenario: for each backend it removes it from the
// pool, stops the job, copies the new binary (checksum verified), starts
// it, checks it is reachable and adds it back, with canaries first, an
// exact failure budget and a journal to resume from.
//
// Usage:
//
//	rollout -demo [-demo-corrupt N] [flags]
//	rollout -config rollout.json -user U [-key F] [-known-hosts F] [-ssh-port 22] [flags]
//	rollout status|pause|resume|promote [-journal F]
//	rollout abort [-journal F] [-cancel-in-flight]
//
// -demo starts 8 backends and a load balancer on loopback and runs the
// whole rollout there. Without it, the JSON config (Concurrency, CanaryNum,
// MaxFailures, Src, LB, Pattern, Backends, optional Dst) drives a real
// rollout over SSH (package fleet), journaled to -journal; -resume
// continues it after a crash, -retry-failed reruns only failed backends.
// The journal names each rollout by the SHA-256 of the binary it installs:
// -resume and -retry-failed refuse a journal whose latest rollout installed
// another binary or ran over other backends, unless -allow-plan-change.
//
// While a rollout runs, it listens on a unix socket next to its journal
// (JOURNAL.sock, mode 0600), and the subcommands steer it from another
// terminal: status (phase, then per backend: outcome, state, attempts,
// error), pause (no backend starts, and the rollout holds at the end of
// the soak; backends in progress finish), resume, promote (end the soak
// now) and abort (nothing starts any more; backends in progress finish, or
// are canceled with -cancel-in-flight; the rollout ends ESCanceled).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/lbrollout"
	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/workflowmetrics"
)

func main() {
	cli.Main("rollout", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

type options struct {
	demo           bool
	demoCorrupt    int
	config         string
	journal        string
	resume         bool
	retryFailed    bool
	allowChange    bool
	dryRun         bool
	soak           time.Duration
	timeout        time.Duration
	cancelInFlight bool
	user           string
	key            string
	knownHosts     string
	sshPort        int
	metricsFile    string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isControlCommand(args[0]) {
		return runControl(ctx, args, stdout, stderr)
	}
	fs := cli.NewFlagSet("rollout", stderr, "Usage:\n  rollout -demo [flags]\n  rollout -config FILE -user U [-key F] [-known-hosts F] [flags]\n"+
		"  rollout status|pause|resume|promote|abort [-journal F]   (steer the rollout running with -journal F)\n\n"+
		"Upgrades a service on many backends behind a load balancer, canaries first.\n\nFlags:\n")
	var o options
	fs.BoolVar(&o.demo, "demo", false, "run on 8 local backends and an in-process load balancer, on loopback")
	fs.IntVar(&o.demoCorrupt, "demo-corrupt", 0, "with -demo, corrupt the copy to backend `N` (1-8), to show a tolerated failure")
	fs.StringVar(&o.config, "config", "", "JSON config `file` (Concurrency, CanaryNum, MaxFailures, Src, LB, Pattern, Backends)")
	fs.StringVar(&o.journal, "journal", "", "journal `file`; default rollout.journal, or a temporary file with -demo")
	fs.BoolVar(&o.resume, "resume", false, "resume the rollout recorded in -journal: skip backends that succeeded, restart the others where they stopped")
	fs.BoolVar(&o.retryFailed, "retry-failed", false, "rerun only the backends -journal records as failed, from the state they failed in")
	fs.BoolVar(&o.allowChange, "allow-plan-change", false, "let -resume and -retry-failed continue a journaled rollout of another binary or other backends")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.DurationVar(&o.soak, "soak", 0, "pause after the canaries")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "per-backend timeout")
	fs.BoolVar(&o.cancelInFlight, "cancel-in-flight", false, "when the failure budget trips, cancel backends in progress instead of letting them finish")
	fs.StringVar(&o.user, "user", "", "SSH user")
	fs.StringVar(&o.key, "key", "", "SSH private key `file` (passphrase, if any, from $ROLLOUT_KEY_PASSPHRASE; without -key, ssh-agent via $SSH_AUTH_SOCK)")
	fs.StringVar(&o.knownHosts, "known-hosts", "", "known_hosts `file`; default ~/.ssh/known_hosts")
	fs.IntVar(&o.sshPort, "ssh-port", 22, "SSH port of the backends")
	fs.StringVar(&o.metricsFile, "metrics-file", "", "write the rollout's metrics to this `file` (*.prom) for node_exporter's textfile collector")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	case o.demo == (o.config != ""):
		return cli.Usagef(fs, "give exactly one of -demo and -config")
	case o.resume && o.retryFailed:
		return cli.Usagef(fs, "-resume and -retry-failed exclude each other")
	case !o.demo && o.user == "":
		return cli.Usagef(fs, "-user is required without -demo")
	case o.demoCorrupt < 0 || o.demoCorrupt > 8:
		return cli.Usagef(fs, "-demo-corrupt must be between 1 and 8")
	}

	printJournal := !o.demo || o.journal != ""
	hc := &http.Client{Timeout: 10 * time.Second}
	var (
		cfg  lbrollout.Config
		exec workflow.Executor
		push lbrollout.Pusher
		dm   *lbrollout.Demo
	)
	if o.demo {
		dir, err := os.MkdirTemp("", "rollout-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if dm, err = lbrollout.NewDemo(dir, 8, 0); err != nil {
			return err
		}
		defer dm.Close()
		src := filepath.Join(dir, "app-v2")
		if err := os.WriteFile(src, []byte("app v2\n"), 0o755); err != nil {
			return err
		}
		cfg = dm.Config(src)
		if o.demoCorrupt > 0 {
			dm.Corrupt = dm.Order[o.demoCorrupt-1]
		}
		if o.journal == "" {
			o.journal = filepath.Join(dir, "rollout.journal")
		}
		fmt.Fprintf(stdout, "demo: %d backends running app v1 behind the load balancer at %s\n", len(dm.Order), dm.LB.Addr())
		exec, push = dm, dm
	} else {
		var err error
		if cfg, err = lbrollout.LoadConfig(o.config); err != nil {
			return err
		}
		auth := lbrollout.SSHAuth(o.user, o.key, o.knownHosts, o.sshPort)
		if !o.dryRun { // a dry run connects nowhere
			ssh, err := fleet.NewSSH(auth)
			if err != nil {
				return err
			}
			defer ssh.Close()
			exec, push = fleet.ShellExecutor{Executor: ssh}, lbrollout.FleetPush{SSH: ssh}
		}
		if o.journal == "" {
			o.journal = "rollout.journal"
		}
	}

	p, err := lbrollout.NewPlan(cfg, exec, push, hc)
	if err != nil {
		return err
	}
	if dm != nil {
		dm.Use(p)
	}
	targets := p.Targets()

	// A plain dry run writes nothing, not even a journal.
	var j *workflow.Journal
	if !o.dryRun || o.resume || o.retryFailed {
		if j, err = workflow.OpenJournal(o.journal); err != nil {
			return err
		}
		defer j.Close()
	}
	// While it runs, the rollout is steered through a socket beside its
	// journal (which this process has locked).
	var ctl *workflow.Control
	if j != nil && !o.dryRun {
		ctl = &workflow.Control{}
		// A socket that cannot be made (a path too long for a unix
		// socket, a read-only directory) costs only the control.
		if stop, err := serveControl(socketPath(o.journal), ctl); err != nil {
			fmt.Fprintf(stderr, "control: unavailable, the rollout runs without it: %v\n", err)
		} else {
			defer stop()
			fmt.Fprintf(stderr, "control: rollout status|pause|resume|promote|abort -journal %s\n", o.journal)
		}
	}
	prog := &progress{w: stderr, tty: isTerminal(stderr), total: len(targets)}
	met := workflowmetrics.New(workflowmetrics.Config{MaxFailures: cfg.MaxFailures, Targets: len(targets)})
	r := workflow.Runner{
		Concurrency:    cfg.Concurrency,
		CanaryNum:      cfg.CanaryNum,
		MaxFailures:    cfg.MaxFailures,
		Soak:           o.soak,
		TargetTimeout:  o.timeout,
		CancelInFlight: o.cancelInFlight,
		Preconditions:  p.Preconditions(),
		Postconditions: p.Postconditions(),
		DryRun:         o.dryRun,
		PlanOutput:     stdout,
		Journal:        j,
		// The binary's checksum names the rollout, so that resuming
		// with another binary is refused.
		RolloutID:       filepath.Base(cfg.Src) + " sha256:" + p.Sum[:12],
		AllowPlanChange: o.allowChange,
		Control:         ctl,
		OnEvent:         func(ev workflow.Event) { met.Observe(ev); prog.event(ev) },
	}
	var rep workflow.Report
	switch {
	case o.resume:
		rep, err = r.Resume(ctx, targets)
	case o.retryFailed:
		rep, err = r.RetryFailed(ctx, targets)
	default:
		rep, err = r.Run(ctx, targets)
	}
	if o.dryRun {
		return err
	}
	if o.metricsFile != "" {
		err = errors.Join(err, met.WriteTextfile(o.metricsFile))
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(stdout, "failed: %s in state %s: %v\n", f.Target, f.State, f.Err)
	}
	if pool, perr := p.Pool(ctx); perr == nil {
		fmt.Fprintf(stdout, "pool: %d of %d backends in rotation\n", len(pool), len(cfg.Backends))
		if dm != nil {
			for _, b := range cfg.Backends {
				in := "out of pool"
				for _, m := range pool {
					if m == b {
						in = "in pool"
					}
				}
				fmt.Fprintf(stdout, "  %s  %-11s  %s\n", b, in, dm.Version(b))
			}
		}
	}
	fmt.Fprintf(stdout, "end state: %s\n", rep.State)
	if printJournal {
		fmt.Fprintf(stdout, "journal: %s (-resume or -retry-failed continue from it)\n", o.journal)
	}
	return err
}
