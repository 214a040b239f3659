package lbrollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/workflow"
)

// Pusher copies a local file to a host and verifies its SHA-256 there
// before it replaces dst; an error fails the backend's copy state.
type Pusher interface {
	Push(ctx context.Context, host, src, dst, sum string) error
}

// Plan holds what every backend's state machine needs. Build it with
// NewPlan.
type Plan struct {
	exec workflow.Executor
	push Pusher
	lb   lbClient
	http *http.Client
	cfg  Config
	// HostOf names the host that runs a backend's commands; nil means
	// the host part of its address.
	HostOf func(backend string) string
	// Sum is the hex SHA-256 of the new binary (Config.Src).
	Sum string
	// StopCmd and StartCmd are the shell commands that stop and start
	// the job on a backend.
	StopCmd, StartCmd string
	src, dst          string
}

// NewPlan reads the binary c.Src to checksum it and returns the plan of
// the rollout c describes, running commands through exec and copying
// with push (both may be nil when only the targets' names and states are
// needed, as in a dry run). It returns the error of reading c.Src.
func NewPlan(c Config, exec workflow.Executor, push Pusher, hc *http.Client) (*Plan, error) {
	sum, err := fileSum(c.Src)
	if err != nil {
		return nil, err
	}
	return &Plan{
		exec: exec, push: push, http: hc,
		lb:       lbClient{base: "http://" + c.LB, http: hc},
		cfg:      c,
		src:      c.Src,
		Sum:      sum,
		dst:      c.Dst,
		StopCmd:  "pkill -f -- " + fleet.ShellQuote(NotSelf(c.Pattern)),
		StartCmd: "nohup " + fleet.ShellQuote(c.Dst) + " >/dev/null 2>&1 </dev/null &",
	}, nil
}

// NotSelf rewrites a pkill -f pattern so that it no longer matches the
// command line that carries it ("app" becomes "[a]pp"): otherwise pkill
// kills the remote shell running it. Patterns that start with a regular
// expression operator are left as they are.
func NotSelf(pattern string) string {
	if pattern == "" {
		return pattern
	}
	c := pattern[0]
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-' {
		return "[" + pattern[:1] + "]" + pattern[1:]
	}
	return pattern
}

func fileSum(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// The states of every backend, in order.
const (
	StRemove = "remove-from-pool"
	StStop   = "stop"
	StCopy   = "copy"
	StStart  = "start"
	StCheck  = "check"
	StAdd    = "add-to-pool"
)

// Target is the talk's per-backend sequence: remove it from the pool, stop
// the job, copy the new binary (checksum verified), start it, check it is
// reachable, add it back.
func (p *Plan) Target(backend string) workflow.Target {
	host, _, _ := net.SplitHostPort(backend)
	if p.HostOf != nil {
		host = p.HostOf(backend)
	}
	return workflow.Target{Name: backend, States: []workflow.State{
		{Name: StRemove, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(StStop), p.lb.change(ctx, "remove", backend)
		}},
		{Name: StStop, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			_, err := p.exec.Run(ctx, host, p.StopCmd)
			if ee := (*fleet.ExitError)(nil); errors.As(err, &ee) && ee.Code == 1 {
				err = nil // pkill: no process matched, the job is not running
			}
			return workflow.Goto(StCopy), err
		}},
		{Name: StCopy, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(StStart), p.push.Push(ctx, host, p.src, p.dst, p.Sum)
		}},
		{Name: StStart, Fn: workflow.Cmd(p.exec, host, p.StartCmd, workflow.Goto(StCheck))},
		{Name: StCheck, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(StAdd), p.Reachable(ctx, backend)
		}},
		{Name: StAdd, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return nil, p.lb.change(ctx, "add", backend)
		}},
	}}
}

// Reachable asks the backend for / until it answers 200, for up to 10 tries.
func (p *Plan) Reachable(ctx context.Context, backend string) error {
	var err error
	for try := 0; try < 10; try++ {
		if try > 0 {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if _, err = Get(ctx, p.http, "http://"+backend+"/"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("not reachable: %w", err)
}

// Get returns the trimmed body of GET u, or an error when the request
// fails or the answer is not 200 OK.
func Get(ctx context.Context, hc *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// Targets returns one target per backend of the plan's config, in order.
func (p *Plan) Targets() []workflow.Target {
	ts := make([]workflow.Target, len(p.cfg.Backends))
	for i, b := range p.cfg.Backends {
		ts[i] = p.Target(b)
	}
	return ts
}

// Preconditions are the rollout's checks before anything starts: the load
// balancer answers.
func (p *Plan) Preconditions() []workflow.Check {
	return []workflow.Check{{Name: "load balancer answers", Fn: func(ctx context.Context) error {
		_, err := p.Pool(ctx)
		return err
	}}}
}

// Postconditions are the rollout's checks after its end: the service
// answers through the load balancer.
func (p *Plan) Postconditions() []workflow.Check {
	return []workflow.Check{{Name: "service answers through the load balancer", Fn: func(ctx context.Context) error {
		_, err := Get(ctx, p.http, "http://"+p.cfg.LB+"/")
		return err
	}}}
}

// Pool returns the backends in the load balancer's pool, or the error of
// asking it.
func (p *Plan) Pool(ctx context.Context) ([]string, error) { return p.lb.pool(ctx) }

// lbClient changes the load balancer's pool through its admin API.
type lbClient struct {
	base string
	http *http.Client
}

func (l lbClient) change(ctx context.Context, op, backend string) error {
	u := l.base + "/lb/pool/" + op + "?backend=" + url.QueryEscape(backend)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load balancer: %s %s: %s", op, backend, resp.Status)
	}
	return nil
}

func (l lbClient) pool(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/lb/pool", nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load balancer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("load balancer: pool: %s", resp.Status)
	}
	var pool []string
	if err := json.NewDecoder(resp.Body).Decode(&pool); err != nil {
		return nil, fmt.Errorf("load balancer: pool: %w", err)
	}
	return pool, nil
}

// FleetPush is the Pusher of a real rollout: it copies the binary with
// fleet.Push, streamed over SSH into a temporary file beside dst, its
// SHA-256 checked on the backend, then renamed over dst (skipped when dst
// already has that checksum).
type FleetPush struct{ SSH *fleet.SSH }

// Push copies src to dst on host. It returns fleet.Push's error, or an
// error when src's checksum is no longer sum (src changed since the plan).
func (p FleetPush) Push(ctx context.Context, host, src, dst, sum string) error {
	res, err := fleet.Push(ctx, p.SSH, host, src, dst, 0o755)
	if err != nil {
		return err
	}
	if res.SHA256 != sum {
		return fmt.Errorf("%s changed during the rollout: sha256 %.12s, planned %.12s", src, res.SHA256, sum)
	}
	return nil
}

// SSHAuth is the SSH configuration of a real rollout: user on port, the
// private key file key (its passphrase, if any, from
// $ROLLOUT_KEY_PASSPHRASE) or, without key, ssh-agent via $SSH_AUTH_SOCK,
// and the known_hosts file knownHosts ("" for ~/.ssh/known_hosts).
func SSHAuth(user, key, knownHosts string, port int) fleet.SSHConfig {
	auth := fleet.SSHConfig{User: user, Port: port}
	if key != "" {
		auth.KeyFiles = []string{key}
	}
	if knownHosts != "" {
		auth.KnownHostsFiles = []string{knownHosts}
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && key == "" {
		auth.AgentSocket = sock
	}
	if pass, ok := os.LookupEnv("ROLLOUT_KEY_PASSPHRASE"); ok {
		auth.Passphrase = func(string) ([]byte, error) { return []byte(pass), nil }
	}
	return auth
}
