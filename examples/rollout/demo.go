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
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opskit/opskit/internal/atomicfile"
)

// demo is the -demo world on loopback: backends that serve their installed
// "binary" (a file whose first line is the version) over HTTP, and a load
// balancer with an admin API for its pool.
type demo struct {
	dir      string
	backends map[string]*demoBackend // by address
	order    []string
	lb       *demoLB
	// stopCmd and startCmd are the commands the executor understands.
	stopCmd, startCmd string
	corrupt           string // backend whose copies arrive corrupted
}

// newDemo starts n backends running "app v1" and a load balancer with all
// of them in its pool. The caller must call Close.
func newDemo(dir string, n int) (*demo, error) {
	d := &demo{dir: dir, backends: map[string]*demoBackend{}}
	for i := range n {
		b := &demoBackend{dir: filepath.Join(dir, fmt.Sprintf("backend%d", i+1))}
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			d.Close()
			return nil, err
		}
		if err := os.WriteFile(b.binary(), []byte("app v1\n"), 0o755); err != nil {
			d.Close()
			return nil, err
		}
		if err := b.start("127.0.0.1:0"); err != nil {
			d.Close()
			return nil, err
		}
		d.backends[b.addr] = b
		d.order = append(d.order, b.addr)
	}
	lb, err := newDemoLB(d.order)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.lb = lb
	return d, nil
}

// Close stops everything.
func (d *demo) Close() {
	for _, b := range d.backends {
		b.stop()
	}
	if d.lb != nil {
		d.lb.srv.Close()
	}
}

// Run is the demo's workflow.Executor: it understands the rollout's stop
// and start commands. Every backend is on 127.0.0.1, so host alone cannot
// tell them apart; the demo therefore runs each backend's commands with
// the backend's address as host (see demoHosts).
func (d *demo) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	b, ok := d.backends[host]
	if !ok {
		return nil, fmt.Errorf("demo: no backend %s", host)
	}
	switch cmd {
	case d.stopCmd:
		b.stop()
		return nil, nil
	case d.startCmd:
		return nil, b.start(b.addr)
	}
	return nil, fmt.Errorf("demo: %s: unknown command %q", host, cmd)
}

// Push copies src into the backend's directory beside dst, checks the
// SHA-256 of what arrived, and renames it over the binary.
func (d *demo) Push(ctx context.Context, host, src, dst, sum string) error {
	b, ok := d.backends[host]
	if !ok {
		return fmt.Errorf("demo: no backend %s", host)
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
	if host == d.corrupt {
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

// version is what a backend serves now: its version, or "down".
func (d *demo) version(addr string) string {
	b := d.backends[addr]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return "down"
	}
	return b.version
}

type demoBackend struct {
	dir     string
	addr    string
	mu      sync.Mutex
	srv     *http.Server
	version string
}

func (b *demoBackend) binary() string { return filepath.Join(b.dir, "app") }

// start "runs the binary": it serves the binary's first line on addr.
func (b *demoBackend) start(addr string) error {
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

func (b *demoBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// demoLB is a round-robin HTTP load balancer whose pool is changed
// through /lb/pool/add and /lb/pool/remove and listed by GET /lb/pool.
type demoLB struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	pool []string
	next int
}

func newDemoLB(pool []string) (*demoLB, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lb := &demoLB{addr: ln.Addr().String(), pool: slices.Clone(pool)}
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
