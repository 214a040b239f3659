// Command agent is the opskit host agent daemon: it serves system stats and
// installs and supervises packages, on a unix socket (mode 0600, reached
// through SSH) or on TCP with a token.
//
// Usage:
//
//	agent [-dir DIR] [-socket PATH | -tcp ADDR -token-file F [-tls-cert F -tls-key F]]
//	      [-metrics-addr HOST:PORT] [-log-format text|json]
//
// Metrics (host metrics under node_exporter's names, per-program metrics
// under opskit_agent_*, and the agent's own go_* and process_*) are served
// on GET /metrics of the API (behind the token when there is one) and, with
// -metrics-addr, on a separate plain-HTTP listener for a local Prometheus.
// Traces follow the OTEL_* environment variables (no exporter unless they
// ask for one).
//
// The token is read from -token-file or the OPSKIT_AGENT_TOKEN environment
// variable, never from a flag value. opskit-agent.service beside this file
// is a systemd unit for it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/telemetry"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agentmetrics"
)

func main() {
	cli.Main("agent", func(ctx context.Context) error {
		return mainError(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	}, syscall.SIGTERM)
}

// mainError adapts run's error for cli.Main: a stop by SIGINT or SIGTERM
// (a cancelled context) is a clean exit, and an error that already starts
// with "agent: " is not prefixed a second time.
func mainError(err error) error {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
		return err
	case errors.Is(err, context.Canceled):
		return nil
	}
	if msg, ok := strings.CutPrefix(err.Error(), "agent: "); ok {
		return errors.New(msg)
	}
	return err
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("agent", stderr, "Usage: agent [flags]\n\nServes host stats and installs and supervises packages.\n\nFlags:\n")
	dir := fs.String("dir", "/var/lib/opskit-agent", "package `directory`")
	socket := fs.String("socket", agent.DefaultSocket, "unix socket `path` (mode 0600)")
	tcp := fs.String("tcp", "", "listen on this TCP `address` instead of the socket (needs -token-file or TLS)")
	tokenFile := fs.String("token-file", "", "`file` holding the API token (or $OPSKIT_AGENT_TOKEN)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` for -tcp")
	tlsKey := fs.String("tls-key", "", "TLS key `file` for -tcp")
	interval := fs.Duration("interval", agent.DefaultInterval, "stats collection interval")
	collectTimeout := fs.Duration("collect-timeout", agent.DefaultCollectTimeout, "timeout of one stats collection")
	maxUpload := fs.Int64("max-upload", agent.DefaultMaxUpload, "largest accepted zip, in `bytes`")
	maxUnpacked := fs.Int64("max-unpacked", agent.DefaultMaxUnpacked, "largest total unpacked size, in `bytes`")
	maxLog := fs.Int64("max-log", agent.DefaultMaxLog, "size cap of each program's output log, in `bytes`")
	startGrace := fs.Duration("start-grace", agent.DefaultStartGrace, "how long a new version must run for an install to succeed")
	verbose := fs.Bool("v", false, "log debug events")
	metricsAddr := fs.String("metrics-addr", "", "also serve /metrics without a token on this `address` (e.g. 127.0.0.1:9101)")
	logFormat := telemetry.LogFormatFlag(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "agent: -tls-cert and -tls-key go together")
		return errUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log, err := telemetry.NewLogger(stderr, *logFormat, level)
	if err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	shutdownTracing, err := telemetry.SetupTracing(ctx, "opskit-agent")
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx))
	reg := telemetry.NewRegistry()

	token, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	lc := agent.ListenConfig{Network: "unix", Address: *socket, Token: token}
	if *tcp != "" {
		lc.Network, lc.Address = "tcp", *tcp
		if *tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
			if err != nil {
				return err
			}
			lc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	} else if err := os.MkdirAll(filepath.Dir(*socket), 0o700); err != nil {
		return err
	}

	a, err := agent.New(agent.Config{
		Dir:        *dir,
		Limits:     agent.Limits{MaxUnpacked: *maxUnpacked},
		MaxUpload:  *maxUpload,
		MaxLog:     *maxLog,
		StartGrace: *startGrace,
		Token:      token,
		Sampler:    agent.NewSampler(agent.SamplerConfig{Interval: *interval, Timeout: *collectTimeout, Logger: log}),
		OnEvent: func(e agent.Event) {
			log.Info("package event", "package", e.Package, "event", string(e.Kind), "pid", e.Pid, "exit", e.Exit, "restarts", e.Restarts)
		},
		Logger:  log,
		Metrics: telemetry.MetricsHandler(reg),
	})
	if err != nil {
		return err
	}
	reg.MustRegister(agentmetrics.New(a))
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agent.DefaultStopTimeout+time.Second)
		defer cancel()
		a.Close(sctx)
	}()
	ln, err := agent.Listen(ctx, lc)
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := a.Resume(ctx); err != nil {
		log.Error("resuming packages", "err", err)
	}
	fmt.Fprintf(stdout, "agent: listening on %s %s\n", ln.Addr().Network(), ln.Addr())
	ms, err := telemetry.StartMetrics(ctx, *metricsAddr, reg, log)
	if err != nil {
		return err
	}
	defer ms.Close()
	if ms != nil {
		fmt.Fprintf(stdout, "agent: metrics on http://%s/metrics\n", ms.Addr())
	}
	return a.Serve(ctx, ln)
}

// readToken reads the optional API token from file, or else from
// $OPSKIT_AGENT_TOKEN; without either the agent has no token.
func readToken(file string) (opskit.Secret, error) {
	tok, err := opskit.SecretFromFileOrEnv(file, "OPSKIT_AGENT_TOKEN")
	if file == "" && errors.Is(err, opskit.ErrNoSecret) {
		return "", nil
	}
	return tok, err
}
