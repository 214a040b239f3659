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
// # OpenSSH client config
//
// SSHConfig.ConfigFiles (for example DefaultConfigFiles()) makes the SSH
// executor look each host name up in OpenSSH client config files, parsed
// by github.com/kevinburke/ssh_config: HostName, Port, User, IdentityFile,
// ProxyJump, StrictHostKeyChecking, UserKnownHostsFile, ConnectTimeout and
// ServerAliveInterval. A user or port in the host name and the explicit
// fields of SSHConfig win over the files.
//
// # Inventories
//
// ReadInventory and ParseInventory read Ansible inventories (INI or YAML)
// with groups and per-host variables; Inventory.Limit selects hosts with
// Ansible's --limit patterns, and InventoryHost.Address gives each one's
// "[user@]host[:port]" from ansible_host, ansible_port and ansible_user.
// ParseHosts reads plain host lists.
//
// # sudo
//
// Command.Sudo runs a command through sudo(8) as another user, answering
// the password prompt with Sudo.Password (on sudo's stdin in Run, on the
// terminal in Spawn); the password never reaches a Result. A wrong or
// missing password is ErrSudo, and the command does not run.
//
// # Retries
//
// SSHConfig.ConnectRetries retries transient connection failures
// (refused, reset, closed before the handshake, a hop's DialTimeout) with
// backoff and jitter; nothing is retried once a session is open, so a
// command runs at most once. Result.ConnectRetries counts the retries.
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
// A host that names no machine ("", "@", "user@", ":22") is refused with
// ErrInvalidHost before anything connects or runs, by the executors, Group
// and ParseHosts (an empty SSH host would otherwise reach this machine).
//
// # Commands
//
// Command.Args always runs the program it names: over SSH the arguments
// are quoted with ShellQuote, whose first word is quoted too when it holds
// '=' or is a shell reserved word, and a special builtin such as exec or
// export is run through "exec" so that the shell looks for a program of
// that name (exit status 127 when there is none).
//
// # Testing
//
// Package fleet/fleettest has an in-process SSH server (exec served by a
// Go handler or run for real, pty and shell sessions, recorded commands,
// failure injection), a recording Executor for unit tests, and
// TestExecutor, which checks an Executor implementation.
package fleet
