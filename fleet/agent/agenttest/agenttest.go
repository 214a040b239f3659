// Package agenttest runs a real fleet/agent Agent in-process for tests of
// code that uses agent.Client: on a unix socket in a temporary directory,
// with stats that the test sets, optionally behind an in-process SSH server
// (fleettest) so the client goes through SSH as it would in production.
//
//	srv := agenttest.NewServer(t, agenttest.Config{})
//	c := srv.Client()
//	st, err := c.InstallFile(ctx, "app", "testdata/app.zip", agent.Manifest{Binary: "bin/app"}, agent.InstallOptions{})
//	// srv.Events() lists what happened to the packages.
//
// # Testing
//
// This package is itself a test package; its behaviour is checked by its
// own tests and it serves the agent's real code, so it cannot drift from it.
package agenttest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/fleettest"
)

// Config configures a Server. The zero value serves on a unix socket with
// empty stats.
type Config struct {
	// Stats are what GET /v1/stats returns until SetStats; nil means an
	// empty Stats.
	Stats *agent.Stats
	// StartGrace is the agent's start grace; 0 means 100ms, so installs
	// in tests return quickly.
	StartGrace time.Duration
	// SSH puts an in-process SSH server (fleettest, with password
	// "agenttest") in front of the socket; SSHClient then reaches the
	// agent through it.
	SSH bool
}

// Server is a running agent. The caller must call Close when finished
// (NewServer does it through tb.Cleanup).
type Server struct {
	dir   string
	sock  string
	agent *agent.Agent
	stop  context.CancelFunc
	done  chan struct{}
	ssh   *fleettest.Server
	exec  *fleet.SSH

	mu     sync.Mutex
	stats  *agent.Stats
	events []agent.Event
}

// New starts a Server.
func New(cfg Config) (*Server, error) {
	dir, err := os.MkdirTemp("", "agenttest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, sock: filepath.Join(dir, "agent.sock"), stats: cfg.Stats, done: make(chan struct{})}
	if s.stats == nil {
		s.stats = &agent.Stats{}
	}
	if cfg.StartGrace <= 0 {
		cfg.StartGrace = 100 * time.Millisecond
	}
	sampler := agent.NewSampler(agent.SamplerConfig{Collect: func(context.Context, *agent.Stats) (*agent.Stats, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stats, nil
	}})
	if err := sampler.Collect(context.Background()); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.agent, err = agent.New(agent.Config{
		Dir:        filepath.Join(dir, "pkgs"),
		Sampler:    sampler,
		StartGrace: cfg.StartGrace,
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: time.Second,
		OnEvent: func(e agent.Event) {
			s.mu.Lock()
			s.events = append(s.events, e)
			s.mu.Unlock()
		},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := agent.Listen(context.Background(), agent.ListenConfig{Address: s.sock})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		s.agent.Serve(ctx, ln)
		ln.Close()
	}()
	if cfg.SSH {
		if err := s.startSSH(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) startSSH() error {
	var err error
	s.ssh, err = fleettest.New(fleettest.Config{Password: "agenttest", AllowStreamLocal: true})
	if err != nil {
		return err
	}
	kh := filepath.Join(s.dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(s.ssh.KnownHostsLine()), 0o600); err != nil {
		return err
	}
	s.exec, err = fleet.NewSSH(fleet.SSHConfig{User: "ops", KnownHostsFiles: []string{kh},
		Password: func(string, string) (string, error) { return "agenttest", nil }})
	return err
}

// NewServer starts a Server for a test and closes it with tb.Cleanup.
func NewServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Socket is the agent's unix socket path.
func (s *Server) Socket() string { return s.sock }

// Agent is the running agent, for direct inspection (Status, Packages).
func (s *Server) Agent() *agent.Agent { return s.agent }

// Client returns a client on the socket. The caller closes it, or leaves
// it to the Server's Close.
func (s *Server) Client() *agent.Client {
	return agent.NewUnixClient(s.sock, agent.ClientConfig{})
}

// SSHClient returns a client that reaches the socket through the in-process
// SSH server (Config.SSH must be set), as agent.NewSSHClient does with a real
// host. It returns nil without Config.SSH.
func (s *Server) SSHClient() *agent.Client {
	if s.exec == nil {
		return nil
	}
	return agent.NewSSHClient(s.exec.Client, s.ssh.Addr(), s.sock, agent.ClientConfig{})
}

// SSHAddr is the SSH server's address ("" without Config.SSH).
func (s *Server) SSHAddr() string {
	if s.ssh == nil {
		return ""
	}
	return s.ssh.Addr()
}

// SetStats replaces the stats and publishes them at once.
func (s *Server) SetStats(st *agent.Stats) {
	s.mu.Lock()
	s.stats = st
	s.mu.Unlock()
	s.agent.Sampler().Collect(context.Background())
}

// Events returns the package events so far, oldest first.
func (s *Server) Events() []agent.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agent.Event(nil), s.events...)
}

// Close stops the programs, the servers, and removes the directory.
func (s *Server) Close() error {
	var errs []error
	if s.exec != nil {
		errs = append(errs, s.exec.Close())
	}
	if s.ssh != nil {
		errs = append(errs, s.ssh.Close())
	}
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	errs = append(errs, s.agent.Close(ctx))
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}
