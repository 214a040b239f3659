package main

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

// pusher copies a local file to a host and verifies its SHA-256 there
// before it replaces dst.
type pusher interface {
	Push(ctx context.Context, host, src, dst, sum string) error
}

// plan holds what every backend's state machine needs.
type plan struct {
	exec workflow.Executor
	push pusher
	lb   lbClient
	http *http.Client
	// hostOf names the host that runs a backend's commands; by default
	// the host part of its address.
	hostOf  func(backend string) string
	src     string
	sum     string // hex SHA-256 of src
	dst     string
	stopCmd string
	startCd string
}

func newPlan(c Config, exec workflow.Executor, push pusher, hc *http.Client) (*plan, error) {
	sum, err := fileSum(c.Src)
	if err != nil {
		return nil, err
	}
	return &plan{
		exec: exec, push: push, http: hc,
		lb:      lbClient{base: "http://" + c.LB, http: hc},
		src:     c.Src,
		sum:     sum,
		dst:     c.Dst,
		stopCmd: "pkill -f -- " + fleet.ShellQuote(notSelf(c.Pattern)),
		startCd: "nohup " + fleet.ShellQuote(c.Dst) + " >/dev/null 2>&1 </dev/null &",
	}, nil
}

// notSelf rewrites a pkill -f pattern so that it no longer matches the
// command line that carries it ("app" becomes "[a]pp"): otherwise pkill
// kills the remote shell running it. Patterns that start with a regular
// expression operator are left as they are.
func notSelf(pattern string) string {
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
	stRemove = "remove-from-pool"
	stStop   = "stop"
	stCopy   = "copy"
	stStart  = "start"
	stCheck  = "check"
	stAdd    = "add-to-pool"
)

// target is the talk's per-backend sequence: remove it from the pool, stop
// the job, copy the new binary (checksum verified), start it, check it is
// reachable, add it back.
func (p *plan) target(backend string) workflow.Target {
	host, _, _ := net.SplitHostPort(backend)
	if p.hostOf != nil {
		host = p.hostOf(backend)
	}
	return workflow.Target{Name: backend, States: []workflow.State{
		{Name: stRemove, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(stStop), p.lb.change(ctx, "remove", backend)
		}},
		{Name: stStop, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			_, err := p.exec.Run(ctx, host, p.stopCmd)
			if ee := (*fleet.ExitError)(nil); errors.As(err, &ee) && ee.Code == 1 {
				err = nil // pkill: no process matched, the job is not running
			}
			return workflow.Goto(stCopy), err
		}},
		{Name: stCopy, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(stStart), p.push.Push(ctx, host, p.src, p.dst, p.sum)
		}},
		{Name: stStart, Fn: workflow.Cmd(p.exec, host, p.startCd, workflow.Goto(stCheck))},
		{Name: stCheck, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return workflow.Goto(stAdd), p.reachable(ctx, backend)
		}},
		{Name: stAdd, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			return nil, p.lb.change(ctx, "add", backend)
		}},
	}}
}

// reachable asks the backend for / until it answers 200, for up to 10 tries.
func (p *plan) reachable(ctx context.Context, backend string) error {
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
		if _, err = get(ctx, p.http, "http://"+backend+"/"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("not reachable: %w", err)
}

func get(ctx context.Context, hc *http.Client, u string) (string, error) {
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

// progress turns events into the terminal progress line:
// done / failed / in flight / remaining.
type progress struct {
	w                         io.Writer
	tty                       bool
	total                     int
	started, done, failed, in int
	last                      string
}

func (p *progress) event(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventStart:
		p.started++
		p.in++
	case workflow.EventDone:
		p.done++
		p.in--
	case workflow.EventFail:
		p.failed++
		p.in--
	case workflow.EventInterrupted:
		p.in--
	case workflow.EventSkip:
		p.done++
		p.started++
	case workflow.EventEnd:
		p.flush()
		return
	default:
		return
	}
	p.print()
}

func (p *progress) line() string {
	return fmt.Sprintf("done %d | failed %d | in flight %d | remaining %d", p.done, p.failed, p.in, p.total-p.started)
}

func (p *progress) print() {
	l := p.line()
	if l == p.last {
		return
	}
	p.last = l
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", l)
	} else {
		fmt.Fprintln(p.w, l)
	}
}

func (p *progress) flush() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
