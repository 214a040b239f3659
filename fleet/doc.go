// Package fleet runs commands on many Linux machines from Go: a local
// executor (os/exec), an SSH executor (golang.org/x/crypto/ssh) with
// pooled connections and known_hosts verification by default, an expect
// executor for interactive programs, fan-out over many hosts, CIDR
// discovery with a liveness probe, and file push with a SHA-256 check.
//
// [ShellExecutor] adapts any Executor to package workflow's Executor, so a
// canary rollout runs its commands through SSH with
// workflow.Cmd(fleet.ShellExecutor{Executor: ssh}, host, "systemctl restart app", nil).
//
// The shortest useful program runs uname on two hosts:
//
//	ex, err := fleet.NewSSH(fleet.SSHConfig{
//		User:     "ops",
//		KeyFiles: []string{"/home/ops/.ssh/id_ed25519"},
//		// KnownHostsFiles nil: ~/.ssh/known_hosts is checked.
//	})
//	if err != nil {
//		return err
//	}
//	defer ex.Close()
//	g := fleet.Group{Executor: ex, Concurrency: 50}
//	sum, err := g.Run(ctx, []string{"web1", "web2:2222"}, fleet.Command{Args: []string{"uname", "-a"}})
//	for _, r := range sum.Results {
//		fmt.Printf("%s: %s", r.Host, r.Stdout)
//	}
//	return err // errors.Join of the hosts that failed
//
// # Errors
//
// Executors return a *ExitError (with the Result) when a command exits
// non-zero; its message ends with the last lines of stderr (at most 200
// bytes, e.g. "fleet: web1: exit status 1: Job for app.service failed ...")
// and its Stderr field keeps the last 4 KiB. Otherwise they return a
// *HostError, matching one of ErrUnreachable,
// ErrAuth, ErrHostKeyUnknown, ErrHostKeyChanged, ErrTimeout (and
// context.DeadlineExceeded) or context.Canceled through errors.Is.
//
// # Testing
//
// Package fleet/fleettest has an in-process SSH server (exec served by a
// Go handler or run for real, pty and shell sessions, recorded commands,
// failure injection), a recording Executor for unit tests, and
// TestExecutor, which checks an Executor implementation.
package fleet
