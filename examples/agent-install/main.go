// Command agent-install installs and starts a zip package on many hosts'
// agents, reaching each agent's unix socket through SSH, with progress.
//
// Usage:
//
//	agent-install (-host H ... | -hosts FILE) -user U [-key F] [-known-hosts F] \
//		-name NAME -binary PATH [-socket PATH] [-concurrency N] ZIP [-- ARGS...]
//
// It prints one JSON line per host on stdout,
// {"host","release","pid","running","restarts","error"}, progress on
// stderr, and exits 1 when any host failed, 2 on bad flags.
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
	"github.com/opskit/opskit/fleet/agent"
)

func main() {
	cli.Main("agent-install", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var (
	errUsage  = cli.ErrUsage // the run tests compare with errUsage
	errFailed = errors.New("some hosts failed")
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// result is one host's JSON line.
type result struct {
	Host     string `json:"host"`
	Release  string `json:"release,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Running  bool   `json:"running"`
	Restarts int    `json:"restarts"`
	Error    string `json:"error,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("agent-install", stderr, "Usage: agent-install [flags] ZIP [-- ARGS...]\n\nInstalls and starts ZIP on each host's agent through SSH.\n\nFlags:\n")
	var hosts, keys multi
	fs.Var(&hosts, "host", "`host` ([user@]host[:port]) to install on; repeatable")
	hostsFile := fs.String("hosts", "", "`file` with one host per line (# comments)")
	user := fs.String("user", os.Getenv("USER"), "SSH `user`")
	fs.Var(&keys, "key", "SSH private key `file`; repeatable")
	knownHosts := fs.String("known-hosts", "", "known_hosts `file` (default ~/.ssh/known_hosts)")
	port := fs.Int("port", 22, "SSH port")
	socket := fs.String("socket", agent.DefaultSocket, "the agent's socket `path` on each host")
	name := fs.String("name", "", "package `name` (required)")
	binary := fs.String("binary", "", "program to run, a `path` inside the zip (required)")
	concurrency := fs.Int("concurrency", 10, "hosts installed at once")
	timeout := fs.Duration("timeout", 10*time.Minute, "time limit per host")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return cli.Usagef(fs, "no zip file")
	}
	zipPath, progArgs := fs.Arg(0), fs.Args()[1:]
	if len(progArgs) > 0 && progArgs[0] == "--" {
		progArgs = progArgs[1:]
	}
	if *name == "" || *binary == "" {
		return cli.Usagef(fs, "-name and -binary are required")
	}
	if *hostsFile != "" {
		hs, err := cli.ReadHosts(*hostsFile)
		if err != nil {
			return err
		}
		hosts = append(hosts, hs...)
	}
	if len(hosts) == 0 {
		return cli.Usagef(fs, "no hosts (-host or -hosts)")
	}
	if *concurrency < 1 {
		return cli.Usagef(fs, "-concurrency must be at least 1")
	}
	zf, err := os.Stat(zipPath)
	if err != nil {
		return err
	}
	cfg := fleet.SSHConfig{User: *user, Port: *port, KeyFiles: keys, AgentSocket: os.Getenv("SSH_AUTH_SOCK")}
	if *knownHosts != "" {
		cfg.KnownHostsFiles = []string{*knownHosts}
	}
	ex, err := fleet.NewSSH(cfg)
	if err != nil {
		return err
	}
	defer ex.Close()

	var mu sync.Mutex // serialises stdout and stderr lines
	m := agent.Manifest{Binary: *binary, Args: progArgs}
	g := fleet.Group{Concurrency: *concurrency, HostTimeout: *timeout}
	sum, _ := g.Do(ctx, hosts, func(hctx context.Context, h string) (fleet.Result, error) {
		c := agent.NewSSHClient(ex.Client, h, *socket, agent.ClientConfig{})
		defer c.Close()
		lastPct := int64(-1)
		st, err := c.InstallFile(hctx, *name, zipPath, m, agent.InstallOptions{Progress: func(sent int64) {
			pct := sent * 100 / max(zf.Size(), 1)
			if pct/10 != lastPct/10 || sent == zf.Size() {
				lastPct = pct
				mu.Lock()
				fmt.Fprintf(stderr, "%s: sent %d/%d bytes (%d%%)\n", h, sent, zf.Size(), pct)
				mu.Unlock()
			}
		}})
		r := result{Host: h, Release: st.Release, Pid: st.Pid, Running: st.Running, Restarts: st.Restarts}
		if err != nil {
			r.Error = err.Error()
		}
		b, _ := json.Marshal(r)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			fmt.Fprintf(stderr, "%s: failed: %v\n", h, err)
		} else {
			fmt.Fprintf(stderr, "%s: installed %s, running as pid %d\n", h, st.Release, st.Pid)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return fleet.Result{Host: h}, err
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := len(sum.Failed) + len(sum.NotStarted); n > 0 {
		return fmt.Errorf("%w: %d of %d", errFailed, n, len(hosts))
	}
	return nil
}
