// Command fleet-run runs one command on many hosts over SSH and prints one
// JSON line per host as each finishes:
//
//	{"host":"web1","exit_code":0,"stdout":"...","stderr":"","error":"","duration_ms":312}
//
// It exits 1 when any host failed, 2 on bad flags.
//
// Usage:
//
//	fleet-run (-hosts FILE | -cidr CIDR) -user U [-key F] [-known-hosts F] [-port 22]
//	          [-concurrency N] [-timeout D] [-metrics-file F.prom] -- CMD...
//
// CMD is run by the remote login shell, its words joined by spaces, as ssh
// does. Host keys are verified against -known-hosts (default
// ~/.ssh/known_hosts). With -cidr, the addresses of the prefix are first
// probed by a TCP connect to -port, and only those that answer are run.
// Secrets come from files or the environment only: -key, -password-file,
// $SSH_AUTH_SOCK with -agent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	metricsFile := fs.String("metrics-file", "", "write the run's metrics to this `file` (*.prom) for node_exporter's textfile collector")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case (*hostsFile == "") == (*cidr == ""):
		return cli.Usagef(fs, "give exactly one of -hosts and -cidr")
	case *user == "":
		return cli.Usagef(fs, "-user is required")
	case fs.NArg() == 0:
		return cli.Usagef(fs, "no command given after --")
	case *concurrency < 1 || *port < 1 || *port > 65535 || *timeout <= 0 || *dialRate < 0:
		return cli.Usagef(fs, "-concurrency, -port and -timeout must be positive, -dial-rate not negative")
	case *metricsFile != "" && !strings.HasSuffix(*metricsFile, ".prom"):
		return cli.Usagef(fs, "-metrics-file must end in .prom")
	}
	cfg := fleet.SSHConfig{
		User:                  *user,
		Port:                  *port,
		AcceptNewHostKeys:     *acceptNew,
		InsecureIgnoreHostKey: *insecure,
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
	if cfg.KeyFiles == nil && cfg.AgentSocket == "" && cfg.Password == nil {
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
	if *hostsFile != "" {
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

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	var mu sync.Mutex
	g := fleet.Group{
		Executor:    ex,
		Concurrency: *concurrency,
		HostTimeout: *timeout,
		DialRate:    *dialRate,
		OnResult: func(r fleet.Result, err error) {
			ex.CloseHost(r.Host) // one command per host: free the connection now
			l := line{Host: r.Host, ExitCode: r.ExitCode, Stdout: string(r.Stdout), Stderr: string(r.Stderr), DurationMS: r.Duration.Milliseconds()}
			if err != nil {
				l.Error = err.Error()
			}
			mu.Lock()
			enc.Encode(l)
			mu.Unlock()
		},
	}
	start := time.Now()
	sum, err := g.Run(ctx, hosts, fleet.Command{Shell: strings.Join(fs.Args(), " ")})
	if sum == nil {
		return err
	}
	fmt.Fprintf(stderr, "fleet-run: %d succeeded, %d failed, %d not started\n", len(sum.Succeeded), len(sum.Failed), len(sum.NotStarted))
	if *metricsFile != "" {
		if werr := observe.WriteTextfile(*metricsFile, jobmetrics.FleetRun(sum, time.Since(start), time.Now())); werr != nil {
			return werr
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return errFailed
	}
	return nil
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
