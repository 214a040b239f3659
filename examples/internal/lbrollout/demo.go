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
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opskit/opskit/internal/atomicfile"
)

// Demo is the -demo world on loopback: backends that serve their installed
// "binary" (a file whose first line is the version) over HTTP, and a load
// balancer with an admin API for its pool. It is the rollout's
// workflow.Executor and Pusher; Use wires a Plan to it.
type Demo struct {
	dir      string
	backends map[string]*DemoBackend // by address
	// Order lists the backends' addresses, backend1 first.
	Order []string
	// LB is the load balancer.
	LB *DemoLB
	// stopCmd and startCmd are the commands the executor understands.
	stopCmd, startCmd string
	// Corrupt names a backend whose copies arrive corrupted (set it
	// before the rollout starts).
	Corrupt string
	// Step, if set, is how long every stop, start and copy takes, so
	// that a demo can be watched, paused or killed in the middle of a
	// state (set it before the rollout starts).
	Step time.Duration
}

// wait sleeps d.Step, or returns ctx's error when ctx ends first.
func (d *Demo) wait(ctx context.Context) error {
	if d.Step <= 0 {
		return nil
	}
	t := time.NewTimer(d.Step)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewDemo starts n backends and a load balancer with all of them in its
// pool, keeping the backends' binaries under dir. A backend whose binary
// is already there (left by an earlier demo on the same dir) runs it;
// the others get "app v1". With port 0 every listener takes a free port;
// otherwise the load balancer listens on 127.0.0.1:port and backend i on
// 127.0.0.1:port+i, so that every process using the same port sees the
// same backends. It returns the error of making a directory or listening.
// The caller must call Close.
func NewDemo(dir string, n, port int) (*Demo, error) {
	d := &Demo{dir: dir, backends: map[string]*DemoBackend{}}
	for i := range n {
		addr := "127.0.0.1:0"
		if port != 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", port+i+1)
		}
		b, err := startBackend(filepath.Join(dir, fmt.Sprintf("backend%d", i+1)), addr)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.backends[b.addr] = b
		d.Order = append(d.Order, b.addr)
	}
	lbAddr := "127.0.0.1:0"
	if port != 0 {
		lbAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	lb, err := newDemoLB(lbAddr, d.Order)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.LB = lb
	return d, nil
}

// NewDemoBackend starts one demo backend running "app v1" (or the binary
// already in dir) on a free loopback port; see Addr. It returns the error
// of writing its binary or listening. The caller must call Stop.
func NewDemoBackend(dir string) (*DemoBackend, error) {
	return startBackend(dir, "127.0.0.1:0")
}

func startBackend(dir, addr string) (*DemoBackend, error) {
	b := &DemoBackend{dir: dir}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(b.binary()); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(b.binary(), []byte("app v1\n"), 0o755); err != nil {
			return nil, err
		}
	}
	if err := b.start(addr); err != nil {
		return nil, err
	}
	return b, nil
}

// Use makes p run its commands and copies on the demo's backends: the
// demo learns p's stop and start commands, and p names each backend's
// host by its address (they all live on 127.0.0.1). Call it before p.Target
// or p.Targets: a target names its host when it is built.
func (d *Demo) Use(p *Plan) {
	d.stopCmd, d.startCmd = p.StopCmd, p.StartCmd
	p.HostOf = func(backend string) string { return backend }
}

// Config returns the talk's settings for the demo (concurrency 3, one
// canary, one failure tolerated, pattern "app", Dst /srv/app) installing
// src.
func (d *Demo) Config(src string) Config { return demoConfig(src, d.LB.Addr(), d.Order) }

// DemoConfig is Demo.Config for the demo NewDemo(dir, n, port) starts
// with port not 0, without starting it: another process (one that starts
// the rollout on Temporal) gets the same targets.
func DemoConfig(src string, n, port int) Config {
	backends := make([]string, n)
	for i := range backends {
		backends[i] = fmt.Sprintf("127.0.0.1:%d", port+i+1)
	}
	return demoConfig(src, fmt.Sprintf("127.0.0.1:%d", port), backends)
}

func demoConfig(src, lb string, backends []string) Config {
	return Config{Concurrency: 3, CanaryNum: 1, MaxFailures: 1, Src: src, LB: lb, Pattern: "app", Backends: backends, Dst: "/srv/app"}
}

// Close stops everything.
func (d *Demo) Close() {
	for _, b := range d.backends {
		b.stop()
	}
	if d.LB != nil {
		d.LB.srv.Close()
	}
}

// Run is the demo's workflow.Executor: it understands the rollout's stop
// and start commands. Every backend is on 127.0.0.1, so host alone cannot
// tell them apart; the demo therefore runs each backend's commands with
// the backend's address as host (see demoHosts).
func (d *Demo) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	b, ok := d.backends[host]
	if !ok {
		return nil, fmt.Errorf("demo: no backend %s", host)
	}
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	switch cmd {
	case d.stopCmd:
		b.stop()
		return nil, nil
	case d.startCmd:
		// Starting a job that already runs the installed binary does
		// nothing, as a service manager's start: a rollout resumed
		// after its worker died may run its start state again.
		if b.runsInstalled() {
			return nil, nil
		}
		return nil, b.start(b.addr)
	}
	return nil, fmt.Errorf("demo: %s: unknown command %q", host, cmd)
}

// Push copies src into the backend's directory beside dst, checks the
// SHA-256 of what arrived, and renames it over the binary.
func (d *Demo) Push(ctx context.Context, host, src, dst, sum string) error {
	b, ok := d.backends[host]
	if !ok {
		return fmt.Errorf("demo: no backend %s", host)
	}
	if err := d.wait(ctx); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := atomicfile.Create(b.binary(), 0o644)
	if err != nil {
		return err
	}
	defer out.Abort() // a no-op once committed
	h := sha256.New()
	var w io.Writer = io.MultiWriter(out, h)
	if host == d.Corrupt {
		w = &flipFirst{w: w} // a transfer that goes wrong
	}
	if _, err := io.Copy(w, in); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("checksum mismatch: got %s, want %s", got[:12], sum[:12])
	}
	return out.Commit()
}

type flipFirst struct {
	w    io.Writer
	done bool
}

func (f *flipFirst) Write(p []byte) (int, error) {
	if !f.done && len(p) > 0 {
		f.done = true
		q := slices.Clone(p)
		q[0] ^= 0xff
		return f.w.Write(q)
	}
	return f.w.Write(p)
}

// Version is what the backend at addr serves now: its version, or "down".
func (d *Demo) Version(addr string) string {
	b := d.backends[addr]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return "down"
	}
	return b.version
}

// DemoBackend is one demo backend: an HTTP server answering its binary's
// first line.
type DemoBackend struct {
	dir     string
	addr    string
	mu      sync.Mutex
	srv     *http.Server
	version string
}

// Addr is the backend's address, host:port.
func (b *DemoBackend) Addr() string { return b.addr }

// Stop stops the backend's job, as the rollout's stop command does.
func (b *DemoBackend) Stop() { b.stop() }

// Start starts the backend's job again on its address, running the binary
// now installed, as the rollout's start command does. It returns an error
// when the job runs already or the address cannot be listened on.
func (b *DemoBackend) Start() error { return b.start(b.addr) }

// Binary is the path of the backend's installed binary.
func (b *DemoBackend) Binary() string { return b.binary() }

func (b *DemoBackend) binary() string { return filepath.Join(b.dir, "app") }

// start "runs the binary": it serves the binary's first line on addr.
func (b *DemoBackend) start(addr string) error {
	content, err := os.ReadFile(b.binary())
	if err != nil {
		return err
	}
	version, _, _ := strings.Cut(string(content), "\n")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		return errors.New("demo: job already running")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b.addr, b.version = ln.Addr().String(), version
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})}
	go b.srv.Serve(ln)
	return nil
}

// runsInstalled says whether the job runs the binary now installed.
func (b *DemoBackend) runsInstalled() bool {
	content, err := os.ReadFile(b.binary())
	if err != nil {
		return false
	}
	version, _, _ := strings.Cut(string(content), "\n")
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv != nil && b.version == version
}

func (b *DemoBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// DemoLB is a round-robin HTTP load balancer whose pool is changed
// through /lb/pool/add and /lb/pool/remove and listed by GET /lb/pool.
type DemoLB struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	pool []string
	next int
}

// Addr is the load balancer's address, host:port.
func (lb *DemoLB) Addr() string { return lb.addr }

// Close stops the load balancer.
func (lb *DemoLB) Close() error { return lb.srv.Close() }

// NewDemoLB starts a load balancer on a free loopback port with pool in
// its pool. It returns the error of listening. The caller must call Close.
func NewDemoLB(pool []string) (*DemoLB, error) { return newDemoLB("127.0.0.1:0", pool) }

func newDemoLB(addr string, pool []string) (*DemoLB, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	lb := &DemoLB{addr: ln.Addr().String(), pool: slices.Clone(pool)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lb/pool", func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		json.NewEncoder(w).Encode(lb.pool)
	})
	mux.HandleFunc("POST /lb/pool/{op}", func(w http.ResponseWriter, r *http.Request) {
		backend := r.URL.Query().Get("backend")
		lb.mu.Lock()
		defer lb.mu.Unlock()
		i := slices.Index(lb.pool, backend)
		switch r.PathValue("op") {
		case "add":
			if i < 0 {
				lb.pool = append(lb.pool, backend)
			}
		case "remove":
			if i >= 0 {
				lb.pool = slices.Delete(lb.pool, i, i+1)
			}
		default:
			http.NotFound(w, r)
		}
	})
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		if len(lb.pool) == 0 {
			return
		}
		target := lb.pool[lb.next%len(lb.pool)]
		lb.next++
		pr.SetURL(&url.URL{Scheme: "http", Host: target})
	}}
	mux.Handle("/", proxy)
	lb.srv = &http.Server{Handler: mux}
	go lb.srv.Serve(ln)
	return lb, nil
}
