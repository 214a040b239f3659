package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
	"github.com/opskit/opskit/fleet/fleettest"
)

// agentChapter is the tour's agent chapter.
func agentChapter() chapter {
	return chapter{
		name:    "agent",
		summary: "install a program through the host agent and watch it restart",
		run:     runAgentChapter,
	}
}

func runAgentChapter(ctx context.Context, n *narrator) error {
	dir, err := os.MkdirTemp("", "opskit-tour-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The agent, on a unix socket with mode 0600.
	events := make(chan agent.Event, 100)
	sampler := agent.NewSampler(agent.SamplerConfig{})
	if err := sampler.Collect(ctx); err != nil {
		return err
	}
	a, err := agent.New(agent.Config{
		Sampler:    sampler,
		Dir:        filepath.Join(dir, "pkgs"),
		StartGrace: 200 * time.Millisecond,
		BackoffMin: 100 * time.Millisecond,
		OnEvent: func(e agent.Event) {
			select {
			case events <- e:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	sock := filepath.Join(dir, "agent.sock")
	ln, err := agent.Listen(ctx, agent.ListenConfig{Address: sock})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { a.Serve(sctx, ln); close(served) }()
	defer func() { stop(); <-served }()
	st, _ := os.Stat(sock)
	n.Say("the agent listens on a unix socket with mode %o; SSH will do authentication", st.Mode().Perm())

	// The in-process SSH server forwards direct-streamlocal channels to the socket.
	srv, err := fleettest.New(fleettest.Config{Password: "tour", AllowStreamLocal: true})
	if err != nil {
		return err
	}
	defer srv.Close()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600); err != nil {
		return err
	}
	ex, err := fleet.NewSSH(fleet.SSHConfig{User: "ops", KnownHostsFiles: []string{kh},
		Password: func(string, string) (string, error) { return "tour", nil }})
	if err != nil {
		return err
	}
	defer ex.Close()
	c := agent.NewSSHClient(ex.Client, srv.Addr(), sock, agent.ClientConfig{})
	defer c.Close()

	// Stats, collected on an interval and read without waiting.
	stats, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	if len(stats.CPU.PerCPU) == 0 || stats.Memory == nil || stats.Load == nil || stats.Host == nil {
		return errors.New("stats are missing parts")
	}
	n.Say("read stats through SSH: per-CPU times and percentages, memory, swap, disk usage per mount, load, host info and uptime")

	// A package: a copy of sleep as bin/napper.
	z, err := agenttest.ProgramZip("sleep", "bin/napper")
	if err != nil {
		return err
	}
	pst, err := c.Install(ctx, "napper", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/napper", Args: []string{"600"}}, agent.InstallOptions{})
	if err != nil {
		return err
	}
	if err := agentTourWait(ctx, events, agent.EventInstalled); err != nil {
		return err
	}
	n.Say("installed package napper (bin/napper 600, argv only): running=%v restarts=%d", pst.Running, pst.Restarts)

	// Crash it.
	if err := syscall.Kill(pst.Pid, syscall.SIGKILL); err != nil {
		return err
	}
	n.Say("killed the program with SIGKILL")
	exited, err := agentTourNext(ctx, events, agent.EventExited)
	if err != nil {
		return err
	}
	n.Say("the supervisor saw it exit (%s) and restarts it after a backoff", exited.Exit)
	started, err := agentTourNext(ctx, events, agent.EventStarted)
	if err != nil {
		return err
	}
	after, err := c.Status(ctx, "napper")
	if err != nil {
		return err
	}
	if !after.Running || after.Pid != started.Pid || after.Pid == pst.Pid {
		return fmt.Errorf("after the restart: %+v", after)
	}
	n.Say("status: running=%v restarts=%d last exit=%q, under a new pid", after.Running, after.Restarts, after.LastExit)

	// A hostile archive is refused and writes nothing outside the package.
	var bad bytes.Buffer
	zw := zip.NewWriter(&bad)
	w, _ := zw.Create("../../etc/cron.d/evil")
	w.Write([]byte("* * * * * root id\n"))
	zw.Close()
	_, err = c.Install(ctx, "napper", &bad, int64(bad.Len()), agent.Manifest{Binary: "bin/napper"}, agent.InstallOptions{})
	if !errors.Is(err, agent.ErrUnsafeArchive) {
		return fmt.Errorf("zip-slip archive: got %v, want ErrUnsafeArchive", err)
	}
	still, err := c.Status(ctx, "napper")
	if err != nil {
		return err
	}
	n.Say("a zip-slip archive is refused (%s); napper still runs: %v", "unsafe archive", still.Running && still.Pid == after.Pid)

	stopped, err := c.Stop(ctx, "napper")
	if err != nil {
		return err
	}
	n.Say("stopped napper: running=%v", stopped.Running)
	return nil
}

// agentTourNext returns the next event of kind.
func agentTourNext(ctx context.Context, events <-chan agent.Event, kind agent.EventKind) (agent.Event, error) {
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				return e, nil
			}
		case <-ctx.Done():
			return agent.Event{}, fmt.Errorf("waiting for %s: %w", kind, ctx.Err())
		}
	}
}

func agentTourWait(ctx context.Context, events <-chan agent.Event, kind agent.EventKind) error {
	_, err := agentTourNext(ctx, events, kind)
	return err
}
