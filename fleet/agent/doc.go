// Package agent is a small host agent: it reports the machine's health
// (CPU, memory, swap, disks, load, host info through gopsutil) and installs
// and supervises programs sent to it as zip files, over an HTTP API served on
// a unix socket that operators reach through SSH.
//
// The daemon side (what examples/agent runs):
//
//	a, err := agent.New(agent.Config{Dir: "/var/lib/opskit-agent"})
//	if err != nil {
//		return err
//	}
//	defer a.Close(context.WithoutCancel(ctx))
//	ln, err := agent.Listen(ctx, agent.ListenConfig{Address: agent.DefaultSocket}) // mode 0600
//	if err != nil {
//		return err
//	}
//	defer ln.Close()
//	return a.Serve(ctx, ln)
//
// The operator side, through fleet's pooled SSH connection
// (ssh.Client.Dial("unix", path): SSH authenticates and encrypts):
//
//	ex, _ := fleet.NewSSH(fleet.SSHConfig{User: "ops", KeyFiles: keys})
//	c := agent.NewSSHClient(ex.Client, "web1", agent.DefaultSocket, agent.ClientConfig{})
//	st, err := c.InstallFile(ctx, "app", "app.zip",
//		agent.Manifest{Binary: "bin/app", Args: []string{"-listen", ":8080"}}, agent.InstallOptions{})
//	stats, err := c.Stats(ctx)
//
// # Stats
//
// A Sampler collects Stats every Interval with a per-collection Timeout and
// publishes each collection through an atomic pointer: GET /v1/stats never
// waits for a collection. GET /debug/vars serves the same values in expvar's
// format (plus cmdline and memstats) without touching expvar's global
// registry.
//
// # Metrics
//
// Package fleet/agent/agentmetrics turns an Agent into a Prometheus
// collector for a registry of the caller's: host metrics under
// node_exporter's names (node_cpu_seconds_total by cpu and mode,
// node_memory_*_bytes, node_filesystem_*, node_load1/5/15), so its
// dashboards work, and what node_exporter does not give, per installed
// program: opskit_agent_program_up, _restarts_total, _cpu_seconds_total,
// _resident_memory_bytes, _start_time_seconds and _info. Config.Metrics
// serves a handler on GET /metrics of the API, behind the token. This
// package does not import Prometheus.
//
// # Packages
//
// POST /v1/packages/{name} streams the zip to a temporary file (capped by
// MaxUpload; never held in memory) and unpacks it with Extract through an
// os.Root into a staging directory. Extract refuses zip-slip names, absolute
// paths, symlinks that leave the root, devices, pipes and sockets, duplicate
// names, names too deep or too long, too many entries (the directories their
// paths imply count too), and zip bombs (total and per-entry ratio caps
// counted while writing, each directory charged DirSize). The running version is then stopped, the new one swapped in by
// an atomic symlink rename and started; if it fails to start or exits within
// StartGrace, the previous version is swapped back and restarted. Programs
// run from argv, never through a shell, in their own process group, with
// their output in a size-capped log, and are restarted with exponential
// backoff when they exit.
//
// # Crashes
//
// New locks the directory (flock on DIR/.lock): a second agent on it gets
// ErrDirLocked, and Listen does not replace a socket that still accepts
// connections (ErrSocketInUse). Each run's pid and start time are kept in
// DIR/NAME/pid. Programs run in their own process group and so outlive an
// agent killed with SIGKILL, but their output pipe dies with it; the next
// agent therefore stops such orphans (EventOrphanStopped) and removes half
// uploads before Resume starts one supervised copy of each program.
//
// # HTTP API
//
//	GET  /v1/stats                   Stats (503 before the first collection)
//	GET  /v1/packages                []Status
//	POST /v1/packages/{name}?binary=B&arg=A1&arg=A2   body: the zip; Status
//	GET  /v1/packages/{name}         Status
//	POST /v1/packages/{name}/start   Status
//	POST /v1/packages/{name}/stop    Status
//	GET  /v1/packages/{name}/log     the program's output (text/plain)
//	GET  /debug/vars                 expvar-format JSON: cmdline, memstats, stats, packages
//	GET  /metrics                    Config.Metrics, when set (Prometheus text format)
//
// Errors are JSON {"error": "...", "code": "..."}, with the status code
// named on each Err value; Client turns them back into errors that match
// those values through errors.Is.
//
// # Transport
//
// Listen opens a unix socket with mode 0600 by default. TCP needs a token
// (compared in constant time) or TLS; Listen refuses it otherwise.
//
// Tokens (Config.Token, ListenConfig.Token, ClientConfig.Token) have the
// SDK's one secret type, opskit.Secret, which never prints. Migration: these
// fields used to have a type from an internal package that a user could not
// name; build them with opskit.Secret(s) from a string, or read one with
// opskit.SecretFromFileOrEnv(file, "OPSKIT_AGENT_TOKEN").
//
// # Testing
//
// Package fleet/agent/agenttest runs a real Agent in-process on a unix
// socket in a temporary directory, with stats the test sets and recorded
// events, optionally behind fleet/fleettest's in-process SSH server (with
// AllowStreamLocal, for direct-streamlocal channels), so code that uses
// Client is tested through SSH as in production. A Sampler takes any
// CollectFunc, for fixed or slow stats.
package agent
