// Command agent is the opskit host agent daemon: it serves system stats and
// installs and supervises packages, on a unix socket (mode 0600, reached
// through SSH) or on TCP with a token.
//
// Usage:
//
//	agent [-dir DIR] [-socket PATH | -tcp ADDR -token-file F [-tls-cert F -tls-key F]]
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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/internal/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil && !errors.Is(err, context.Canceled):
		msg := err.Error()
		if !strings.HasPrefix(msg, "agent: ") {
			msg = "agent: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: agent [flags]\n\nServes host stats and installs and supervises packages.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "agent: -tls-cert and -tls-key go together")
		return errUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

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
		Logger: log,
	})
	if err != nil {
		return err
	}
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
	return a.Serve(ctx, ln)
}

func readToken(file string) (secret.String, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("token file %s is empty", file)
		}
		return secret.String(t), nil
	}
	return secret.String(os.Getenv("OPSKIT_AGENT_TOKEN")), nil
}
