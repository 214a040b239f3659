// Command fleet-run runs one command on many hosts over SSH and prints one
// JSON line per host as each finishes:
//
//	{"host":"web1","exit_code":0,"stdout":"...","stderr":"","error":"","duration_ms":312,"connect_retries":0}
//
// It exits 1 when any host failed, 2 on bad flags.
//
// Usage:
//
//	fleet-run (-hosts FILE | -cidr CIDR | -i INVENTORY [-limit PATTERN]) -user U [-key F] [-known-hosts F] [-port 22]
//	          [-F ssh_config] [-concurrency N] [-timeout D] [-metrics-file F.prom] -- CMD...
//
// CMD is run by the remote login shell, its words joined by spaces, as ssh
// does. Host keys are verified against -known-hosts (default
// ~/.ssh/known_hosts). With -cidr, the addresses of the prefix are first
// probed by a TCP connect to -port, and only those that answer are run.
// -inline prints each host as parallel-ssh -i does instead of JSON lines;
// -outdir DIR also writes DIR/HOST.stdout and DIR/HOST.stderr. A summary
// (and the failed hosts) ends the run on stderr, and on a terminal a
// progress line (done, failed, in flight, ETA) is kept up to date there.
// With -i, hosts come from an Ansible inventory (INI, or YAML for .yml and
// .yaml files) and are printed by their inventory names; ansible_host,
// ansible_port and ansible_user say where and as whom; -limit selects
// groups and hosts as Ansible's --limit does.
// With -F, hosts are looked up in that OpenSSH client config file as ssh
// -F does (aliases, HostName, Port, User, IdentityFile, ProxyJump,
// StrictHostKeyChecking, UserKnownHostsFile, ConnectTimeout,
// ServerAliveInterval), -user becomes optional, and flags given
// explicitly win over the file.
// Each host in flight holds one socket: when -concurrency would not fit
// under the open-file limit (the soft RLIMIT_NOFILE, which Go raises to the
// hard limit at start), fewer hosts are kept in flight and stderr says so,
// rather than failing the rest as unreachable.
// Secrets come from files or the environment only: -key, -password-file,
// $SSH_AUTH_SOCK with -agent.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/jobmetrics"
	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/observe"
)

func main() {
	cli.Main("fleet-run", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var (
	errUsage  = cli.ErrUsage                                // the run tests compare with errUsage
	errFailed = cli.Silent(errors.New("some hosts failed")) // main exits 1; run has printed every host
)

// line is the JSON printed per host.
type line struct {
	Host       string `json:"host"`
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Error      string `json:"error"`
	DurationMS int64  `json:"duration_ms"`
	// ConnectRetries counts transient connection failures retried
	// before the command ran (it runs at most once).
	ConnectRetries int `json:"connect_retries"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet-run", stderr, "Usage: fleet-run (-hosts FILE | -cidr CIDR) -user U [flags] -- CMD...\n\nRuns CMD on every host over SSH and prints one JSON line per host.\nExits 1 when any host failed.\n\nFlags:\n")
	hostsFile := fs.String("hosts", "", "`file` with one [user@]host[:port] per line (# comments)")
	cidr := fs.String("cidr", "", "run on the addresses of this `prefix` that answer on -port")
	user := fs.String("user", "", "login `name` (required)")
	key := fs.String("key", "", "private key `file`")
	knownHosts := fs.String("known-hosts", "", "known_hosts `file` (default ~/.ssh/known_hosts)")
	acceptNew := fs.Bool("accept-new", false, "record the keys of hosts not yet in known_hosts (a changed key is still refused)")
	insecure := fs.Bool("insecure-ignore-host-key", false, "do not verify host keys at all (INSECURE)")
	port := fs.Int("port", 22, "SSH `port` for hosts given without one")
	concurrency := fs.Int("concurrency", 50, "hosts in flight at once")
	timeout := fs.Duration("timeout", 30*time.Second, "per-host `limit` for connecting and running")
	agentSock := fs.Bool("agent", false, "also authenticate with the ssh-agent at $SSH_AUTH_SOCK")
	passwordFile := fs.String("password-file", "", "read the login password from this `file`")
	dialRate := fs.Float64("dial-rate", 0, "start at most this many hosts per `second` (0: no limit)")
	jump := fs.String("jump", "", "comma-separated jump `hosts`, first hop first (like ssh -J)")
	retries := fs.Int("retries", 2, "retry a host's connection this many times after a transient failure (refused, reset, timeout before the handshake); a command never runs twice")
	inventory := fs.String("i", "", "Ansible inventory `file` (INI; YAML when it ends in .yml or .yaml): hosts by inventory name, with ansible_host, ansible_port and ansible_user")
	limit := fs.String("limit", "", "with -i, the groups and hosts to run on, as Ansible's --limit `pattern` (web:&prod:!web3)")
	inline := fs.Bool("inline", false, "print each host's output as parallel-ssh -i does instead of JSON lines")
	outdir := fs.String("outdir", "", "also write each host's stdout and stderr to `dir`/HOST.stdout and HOST.stderr")
	progress := fs.String("progress", "auto", "progress line on stderr: auto (when stderr is a terminal), always or never")
	configFile := fs.String("F", "", "OpenSSH client config `file`, as ssh -F (Host aliases, HostName, Port, User, IdentityFile, ProxyJump, ...); flags given explicitly win")
	metricsFile := fs.String("metrics-file", "", "write the run's metrics to this `file` (*.prom) for node_exporter's textfile collector")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case btoi(*hostsFile != "")+btoi(*cidr != "")+btoi(*inventory != "") != 1:
		return cli.Usagef(fs, "give exactly one of -hosts, -cidr and -i")
	case *progress != "auto" && *progress != "always" && *progress != "never":
		return cli.Usagef(fs, "-progress must be auto, always or never")
	case *limit != "" && *inventory == "":
		return cli.Usagef(fs, "-limit needs -i")
	case *user == "" && *configFile == "" && *inventory == "":
		return cli.Usagef(fs, "-user is required (or a User in the -F file, or ansible_user in the -i inventory)")
	case fs.NArg() == 0:
		return cli.Usagef(fs, "no command given after --")
	case *concurrency < 1 || *port < 1 || *port > 65535 || *timeout <= 0 || *dialRate < 0 || *retries < 0:
		return cli.Usagef(fs, "-concurrency, -port and -timeout must be positive, -dial-rate and -retries not negative")
	case *metricsFile != "" && !strings.HasSuffix(*metricsFile, ".prom"):
		return cli.Usagef(fs, "-metrics-file must end in .prom")
	}
	portGiven := false
	fs.Visit(func(f *flag.Flag) { portGiven = portGiven || f.Name == "port" })
	cfg := fleet.SSHConfig{
		User:                  *user,
		Port:                  *port,
		AcceptNewHostKeys:     *acceptNew,
		InsecureIgnoreHostKey: *insecure,
		ConnectRetries:        *retries,
	}
	if *configFile != "" {
		if _, err := os.Stat(*configFile); err != nil {
			return err
		}
		cfg.ConfigFiles = []string{*configFile}
		if !portGiven {
			cfg.Port = 0 // the file's Port, or 22
		}
	}
	if *key != "" {
		cfg.KeyFiles = []string{*key}
		cfg.Passphrase = func(string) ([]byte, error) {
			if p := os.Getenv("FLEET_KEY_PASSPHRASE"); p != "" {
				return []byte(p), nil
			}
			return nil, errors.New("key is encrypted; set FLEET_KEY_PASSPHRASE")
		}
	}
	if *knownHosts != "" {
		cfg.KnownHostsFiles = []string{*knownHosts}
	}
	if *agentSock {
		cfg.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
		if cfg.AgentSocket == "" {
			return cli.Usagef(fs, "-agent needs $SSH_AUTH_SOCK")
		}
	}
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			return err
		}
		pw := strings.TrimRight(string(b), "\r\n")
		cfg.Password = func(string, string) (string, error) { return pw, nil }
	}
	if *jump != "" {
		cfg.Jump = strings.Split(*jump, ",")
	}
	if cfg.KeyFiles == nil && cfg.AgentSocket == "" && cfg.Password == nil && cfg.ConfigFiles == nil {
		home, _ := os.UserHomeDir()
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", name); fileExists(p) {
				cfg.KeyFiles = append(cfg.KeyFiles, p)
			}
		}
	}

	var addrs []netip.Addr
	if *cidr != "" {
		var err error
		if addrs, err = fleet.ExpandCIDR(*cidr, 0); err != nil {
			return cli.Usagef(fs, "%v", err)
		}
	}
	ex, err := fleet.NewSSH(cfg)
	if err != nil {
		return err
	}
	defer ex.Close()

	var hosts []string
	addr := map[string]string{} // inventory name -> address
	if *inventory != "" {
		inv, err := fleet.ReadInventory(*inventory)
		if err != nil {
			return err
		}
		sel, err := inv.Limit(*limit)
		if err != nil {
			return err
		}
		if len(sel) == 0 {
			return fmt.Errorf("%s: no hosts", *inventory)
		}
		for _, h := range sel {
			hosts = append(hosts, h.Name)
			addr[h.Name] = h.Address()
		}
	} else if *hostsFile != "" {
		var err error
		if hosts, err = readHosts(*hostsFile); err != nil {
			return err
		}
	} else {
		p := fleet.Prober{Port: *port, Timeout: min(*timeout, 3*time.Second)}
		alive, err := p.Alive(ctx, addrs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "fleet-run: %d of %d addresses answer on port %d\n", len(alive), len(addrs), *port)
		for _, a := range alive {
			hosts = append(hosts, netip.AddrPortFrom(a, uint16(*port)).String())
		}
	}

	if *outdir != "" {
		if err := os.MkdirAll(*outdir, 0o755); err != nil {
			return err
		}
	}
	out := &output{w: stdout, inline: *inline, outdir: *outdir, total: len(hosts), start: time.Now()}
	if *progress == "always" || (*progress == "auto" && isTerminal(stderr)) {
		out.progress = stderr
	}
	// One socket per host in flight: keep them under the open-file limit
	// rather than fail the hosts past it as unreachable.
	if n, lim := fitFileLimit(min(*concurrency, len(hosts))); n < min(*concurrency, len(hosts)) {
		fmt.Fprintf(stderr, "fleet-run: -concurrency %d lowered to %d: the open-file limit is %d (raise the hard limit, e.g. ulimit -Hn or systemd LimitNOFILE=, to run more at once)\n", *concurrency, n, lim)
		*concurrency = n
	}
	g := fleet.Group{
		Executor:    ex,
		Concurrency: *concurrency,
		HostTimeout: *timeout,
		DialRate:    *dialRate,
		OnResult: func(r fleet.Result, err error) {
			ex.CloseHost(cmp.Or(addr[r.Host], r.Host)) // one command per host: free the connection now
			l := line{Host: r.Host, ExitCode: r.ExitCode, Stdout: string(r.Stdout), Stderr: string(r.Stderr), DurationMS: r.Duration.Milliseconds(), ConnectRetries: r.ConnectRetries}
			if err != nil {
				l.Error = err.Error()
			}
			out.result(l, r, err)
		},
	}
	cmd := fleet.Command{Shell: strings.Join(fs.Args(), " ")}
	// Hosts are run, and printed, by name; an inventory maps each name to
	// its address.
	sum, err := g.Do(ctx, hosts, func(ctx context.Context, host string) (fleet.Result, error) {
		out.started()
		c := cmd
		c.Host = cmp.Or(addr[host], host)
		return ex.Run(ctx, c)
	})
	if sum == nil {
		return err
	}
	out.summary(stderr, sum, time.Since(out.start))
	if *metricsFile != "" {
		if werr := observe.WriteTextfile(*metricsFile, jobmetrics.FleetRun(sum, time.Since(out.start), time.Now())); werr != nil {
			return werr
		}
	}
	if len(out.errs) > 0 {
		return fmt.Errorf("writing -outdir: %w", errors.Join(out.errs...))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return errFailed
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readHosts reads a hosts file and insists on at least one host.
func readHosts(path string) ([]string, error) {
	hosts, err := cli.ReadHosts(path)
	if err == nil && len(hosts) == 0 {
		err = fmt.Errorf("%s: no hosts", path)
	}
	return hosts, err
}
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
