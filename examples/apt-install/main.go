// Command apt-install installs Debian packages on hosts over SSH by
// talking to apt-get install the way a person would: it answers
// "Do you want to continue? [Y/n]" and copes with packages that are
// "already the newest version". It prints one JSON line per host:
//
//	{"host":"web1","installed":["nginx"],"already_newest":[],"answered":true,"exit_code":0,"error":"","duration_ms":5120}
//
// and exits 1 when any host failed, 2 on bad flags.
//
// Usage:
//
//	apt-install (-hosts FILE | -host H[,H...] | -local) -user U [-key F] [-known-hosts F]
//	            [-port 22] [-concurrency N] [-timeout D] [-sudo [-sudo-password-file F]] [-apt-get PROG] PKG...
//
// -local runs the dialogue on this machine through a local pseudo-terminal.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/fleet"
)

func main() {
	cli.Main("apt-install", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var (
	errUsage  = cli.ErrUsage                                // the run tests compare with errUsage
	errFailed = cli.Silent(errors.New("some hosts failed")) // main exits 1; run has printed every host
)

type line struct {
	Host          string   `json:"host"`
	Installed     []string `json:"installed"`
	AlreadyNewest []string `json:"already_newest"`
	Answered      bool     `json:"answered"`
	ExitCode      int      `json:"exit_code"`
	Error         string   `json:"error"`
	DurationMS    int64    `json:"duration_ms"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("apt-install", stderr, "Usage: apt-install (-hosts FILE | -host H,... | -local) -user U [flags] PKG...\n\nInstalls packages with apt-get install, answering its prompt.\n\nFlags:\n")
	hostsFile := fs.String("hosts", "", "`file` with one [user@]host[:port] per line (# comments)")
	hostList := fs.String("host", "", "comma-separated `hosts`")
	local := fs.Bool("local", false, "run apt-get on this machine instead")
	user := fs.String("user", "", "login `name` (required with -hosts and -host)")
	key := fs.String("key", "", "private key `file`")
	knownHosts := fs.String("known-hosts", "", "known_hosts `file` (default ~/.ssh/known_hosts)")
	port := fs.Int("port", 22, "SSH `port` for hosts given without one")
	concurrency := fs.Int("concurrency", 20, "hosts in flight at once")
	timeout := fs.Duration("timeout", 10*time.Minute, "per-host `limit` for the whole dialogue")
	sudo := fs.Bool("sudo", false, "run apt-get through sudo (as root); a password is answered only with -sudo-password-file")
	sudoPasswordFile := fs.String("sudo-password-file", "", "with -sudo, read the sudo password from this `file`")
	aptGet := fs.String("apt-get", "apt-get", "the apt-get `program` to run")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	targets := 0
	for _, set := range []bool{*hostsFile != "", *hostList != "", *local} {
		if set {
			targets++
		}
	}
	switch {
	case targets != 1:
		return cli.Usagef(fs, "give exactly one of -hosts, -host and -local")
	case !*local && *user == "":
		return cli.Usagef(fs, "-user is required")
	case fs.NArg() == 0:
		return cli.Usagef(fs, "no packages given")
	case *concurrency < 1 || *timeout <= 0:
		return cli.Usagef(fs, "-concurrency and -timeout must be positive")
	}
	for _, p := range fs.Args() {
		if strings.HasPrefix(p, "-") {
			return cli.Usagef(fs, "package %q looks like an option", p)
		}
	}
	argv := append([]string{*aptGet, "install"}, fs.Args()...)
	var sudoCfg *fleet.Sudo
	if *sudoPasswordFile != "" && !*sudo {
		return cli.Usagef(fs, "-sudo-password-file needs -sudo")
	}
	if *sudo {
		sudoCfg = &fleet.Sudo{}
		if *sudoPasswordFile != "" {
			b, err := os.ReadFile(*sudoPasswordFile)
			if err != nil {
				return err
			}
			pw := strings.TrimRight(string(b), "\r\n")
			sudoCfg.Password = func(string) (string, error) { return pw, nil }
		}
	}

	var sp fleet.Spawner
	var hosts []string
	switch {
	case *local:
		sp, hosts = &fleet.Local{}, []string{"localhost"}
	default:
		if *hostsFile != "" {
			var err error
			if hosts, err = readHosts(*hostsFile); err != nil {
				return err
			}
		} else {
			hosts = strings.Split(*hostList, ",")
		}
		cfg := fleet.SSHConfig{User: *user, Port: *port}
		if *key != "" {
			cfg.KeyFiles = []string{*key}
		}
		if *knownHosts != "" {
			cfg.KnownHostsFiles = []string{*knownHosts}
		}
		if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && *key == "" {
			cfg.AgentSocket = sock
		}
		ex, err := fleet.NewSSH(cfg)
		if err != nil {
			return err
		}
		defer ex.Close()
		sp = ex
	}

	enc := json.NewEncoder(stdout)
	var mu sync.Mutex
	g := fleet.Group{Concurrency: *concurrency, HostTimeout: *timeout}
	sum, err := g.Do(ctx, hosts, func(ctx context.Context, host string) (fleet.Result, error) {
		out, err := fleet.AptGetInstall(ctx, sp, fleet.Command{Host: host, Args: argv, Sudo: sudoCfg})
		l := line{Host: host, Installed: out.Installed, AlreadyNewest: out.AlreadyNewest, Answered: out.Answered,
			ExitCode: out.Result.ExitCode, DurationMS: out.Result.Duration.Milliseconds()}
		if l.Installed == nil {
			l.Installed = []string{}
		}
		if l.AlreadyNewest == nil {
			l.AlreadyNewest = []string{}
		}
		if err != nil {
			l.Error = err.Error()
		}
		mu.Lock()
		enc.Encode(l)
		mu.Unlock()
		return out.Result, err
	})
	fmt.Fprintf(stderr, "apt-install: %d succeeded, %d failed, %d not started\n", len(sum.Succeeded), len(sum.Failed), len(sum.NotStarted))
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
