package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/examples/internal/lbrollout"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/internal/testenv"
)

// TestMain runs the worker subcommand instead of the tests when
// $ROLLOUT_TEMPORAL_WORKER holds its arguments (JSON): TestFailover runs a
// worker it can SIGKILL as a process of its own.
func TestMain(m *testing.M) {
	if args := os.Getenv("ROLLOUT_TEMPORAL_WORKER"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			panic(err)
		}
		if err := run(context.Background(), a, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"deploy"},
		{"status"}, // no -temporal
		{"status", "-temporal", "127.0.0.1:1", "extra"},
		{"worker", "-temporal", "127.0.0.1:1"},                              // neither -demo nor -config
		{"start", "-temporal", "127.0.0.1:1", "-demo", "-config", "x.json"}, // both
		{"worker", "-temporal", "127.0.0.1:1", "-config", "x.json"},         // no -user
		{"worker", "-temporal", "127.0.0.1:1", "-demo", "-demo-corrupt", "9"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v; want errUsage", args, err)
		}
	}
}

// TestDemoRollout runs the talk's -demo rollout through a worker and a
// real dev server: it ends ESSuccess, and the load balancer has all 8
// backends in its pool, each serving app v2.
func TestDemoRollout(t *testing.T) {
	addr := devServer(t)
	port, dir := demoPort(t), t.TempDir()
	demo := []string{"-temporal", addr, "-task-queue", "q-demo", "-demo", "-demo-port", fmt.Sprint(port), "-demo-dir", dir}
	wout := startWorker(t, append([]string{"worker"}, demo...))

	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"start", "-id", "demo", "-wait"}, demo...), &out, &out); err != nil {
		t.Fatalf("start -wait: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"ended ESSuccess", "pool: 8 of 8 backends in rotation", "end state: ESSuccess"} {
		if !strings.Contains(got, want) {
			t.Errorf("start -wait printed:\n%s\nwant %q", got, want)
		}
	}
	if n := strings.Count(got, "in pool      app v2"); n != 8 {
		t.Errorf("start -wait printed:\n%s\nwant 8 backends in pool on app v2, got %d", got, n)
	}
	// What a user of the load balancer sees, asked directly.
	pool := lbPool(t, port)
	if len(pool) != 8 {
		t.Errorf("load balancer pool = %q; want 8 backends", pool)
	}
	for _, b := range pool {
		if v := serves(t, b); v != "app v2" {
			t.Errorf("%s serves %q; want app v2", b, v)
		}
	}
	if !strings.Contains(wout.String(), "end state: ESSuccess") {
		t.Errorf("worker printed:\n%s\nwant the end state", wout.String())
	}
}

// TestControlThroughCLI: start with an hour's soak, then status, pause,
// promote and abort through the command: the canary alone is upgraded,
// the others keep app v1 and the rollout ends ESCanceled.
func TestControlThroughCLI(t *testing.T) {
	addr := devServer(t)
	port, dir := demoPort(t), t.TempDir()
	demo := []string{"-temporal", addr, "-task-queue", "q-control", "-demo", "-demo-port", fmt.Sprint(port), "-demo-dir", dir}
	startWorker(t, append([]string{"worker"}, demo...))
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append(args, "-temporal", addr, "-id", "ctl"), &out, &out); err != nil {
			t.Fatalf("rollout-temporal %q: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"start", "-id", "ctl", "-soak", "1h"}, demo...), &out, &out); err != nil {
		t.Fatalf("start: %v\n%s", err, out.String())
	}
	waitFor(t, func() bool { return strings.Contains(cli("status"), "phase soak") })
	cli("pause")
	cli("promote")
	canary := fmt.Sprintf("127.0.0.1:%d", port+1)
	if got := cli("status"); !strings.Contains(got, "phase soak paused promoted") || !strings.Contains(got, canary+" succeeded") {
		t.Errorf("status after pause and promote:\n%s\nwant the soak held, paused and promoted, the canary %s succeeded", got, canary)
	}
	cli("abort")
	waitFor(t, func() bool { return strings.Contains(cli("status"), "ended ESCanceled") })
	if got := cli("status"); !strings.Contains(got, fmt.Sprintf("127.0.0.1:%d not_started", port+2)) {
		t.Errorf("status after abort:\n%s\nwant the second backend not started", got)
	}
	if v := serves(t, canary); v != "app v2" {
		t.Errorf("canary serves %q; want app v2", v)
	}
	for i := 2; i <= 8; i++ {
		if b := fmt.Sprintf("127.0.0.1:%d", port+i); serves(t, b) != "app v1" {
			t.Errorf("%s serves %q after the abort; want app v1", b, serves(t, b))
		}
	}
	if pool := lbPool(t, port); len(pool) != 8 {
		t.Errorf("load balancer pool after the abort = %q; want all 8 backends", pool)
	}
}

// TestFailover is the README's failover demo: worker A (a process of its
// own, the demo's backends inside it) is SIGKILLed while the canary is in
// its stop state; worker B, started on the same -demo-dir, brings the
// backends back, runs that state again and finishes the rollout.
func TestFailover(t *testing.T) {
	addr := devServer(t)
	port, dir := demoPort(t), t.TempDir()
	demo := []string{"-temporal", addr, "-task-queue", "q-failover", "-demo", "-demo-port", fmt.Sprint(port), "-demo-dir", dir}
	args, _ := json.Marshal(append([]string{"worker", "-demo-step", "1h"}, demo...)) // A never finishes a state
	a := exec.Command(os.Args[0], "-test.run=^$")
	a.Env = append(os.Environ(), "ROLLOUT_TEMPORAL_WORKER="+string(args))
	aout := &syncBuffer{}
	a.Stdout, a.Stderr = aout, aout
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Process.Kill(); a.Wait() })
	waitFor(t, func() bool { return strings.Contains(aout.String(), "worker on task queue") })

	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"start", "-id", "fo", "-heartbeat-timeout", "2s"}, demo...), &out, &out); err != nil {
		t.Fatalf("start: %v\n%s", err, out.String())
	}
	canary := fmt.Sprintf("127.0.0.1:%d", port+1)
	status := func() string {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"status", "-temporal", addr, "-id", "fo"}, &out, &out); err != nil {
			t.Fatalf("status: %v\n%s", err, out.String())
		}
		return out.String()
	}
	inStop := func() bool {
		for _, l := range strings.Split(status(), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == canary && f[1] == "running" {
				return f[2] == "stop" // stop takes -demo-step: A is in the middle of it
			}
		}
		return false
	}
	waitFor(t, inStop)
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	if v := serves(t, canary); v != "down" {
		t.Fatalf("canary serves %q after worker A died; want down (its backends died with it)", v)
	}

	startWorker(t, append([]string{"worker"}, demo...))
	waitFor(t, func() bool { return strings.Contains(status(), "ended ") })
	got := status()
	if !strings.Contains(got, "ended ESSuccess") {
		t.Fatalf("status after failover:\n%s\nwant ESSuccess", got)
	}
	for i := 1; i <= 8; i++ {
		if b := fmt.Sprintf("127.0.0.1:%d", port+i); serves(t, b) != "app v2" {
			t.Errorf("%s serves %q after the failover; want app v2", b, serves(t, b))
		}
	}
	if pool := lbPool(t, port); len(pool) != 8 {
		t.Errorf("load balancer pool after the failover = %q; want all 8 backends", pool)
	}
}

// TestConfigRollout runs a -config rollout over SSH (fleet's in-process
// server: the copy and checksum run for real through /bin/sh, stop and
// start drive a demo backend) through a worker and a dev server: the
// backend's binary is replaced and it serves the new version.
func TestConfigRollout(t *testing.T) {
	addr := devServer(t)
	dir := t.TempDir()
	b, err := lbrollout.NewDemoBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	lb, err := lbrollout.NewDemoLB([]string{b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	writeFile(t, keyFile, string(pem.EncodeToMemory(blk)))
	srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sshPub},
		Handler: func(ctx context.Context, s *fleettest.Session) int {
			switch {
			case strings.HasPrefix(s.Command, "pkill -f -- "):
				b.Stop()
				return 0
			case strings.HasPrefix(s.Command, "nohup "):
				if err := b.Start(); err != nil {
					return 1
				}
				return 0
			}
			return fleettest.RunReal(ctx, s)
		}})
	kh := filepath.Join(dir, "known_hosts")
	writeFile(t, kh, srv.KnownHostsLine())
	_, sshPort, _ := net.SplitHostPort(srv.Addr())
	src := filepath.Join(dir, "app-v2")
	writeFile(t, src, "app v2\n")
	cfg := filepath.Join(dir, "rollout.json")
	writeFile(t, cfg, `{"Concurrency":1,"CanaryNum":1,"MaxFailures":0,"Src":"`+src+`","LB":"`+lb.Addr()+
		`","Pattern":"app","Backends":["`+b.Addr()+`"],"Dst":"`+b.Binary()+`"}`)

	common := []string{"-temporal", addr, "-task-queue", "q-config", "-config", cfg}
	startWorker(t, append([]string{"worker", "-user", "ops", "-key", keyFile, "-known-hosts", kh, "-ssh-port", sshPort}, common...))
	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"start", "-id", "cfg", "-wait"}, common...), &out, &out); err != nil {
		t.Fatalf("start -wait: %v\n%s", err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "end state: ESSuccess") || !strings.Contains(got, "pool: 1 of 1 backends in rotation") {
		t.Errorf("start -wait printed:\n%s\nwant ESSuccess and the backend in the pool", got)
	}
	if got, _ := os.ReadFile(b.Binary()); string(got) != "app v2\n" {
		t.Errorf("backend binary = %q; want app v2 copied over SSH", got)
	}
	if v := serves(t, b.Addr()); v != "app v2" {
		t.Errorf("backend serves %q; want app v2", v)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// devServer starts a Temporal dev server for t and returns its address.
func devServer(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OPSKIT_TEMPORAL")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache/opskit/bin/temporal")
	}
	if _, err := os.Stat(bin); err != nil {
		if testenv.Required() {
			t.Fatalf("the temporal CLI is required (OPSKIT_REQUIRE_INTEGRATION=1) but %s is missing", bin)
		}
		t.Skipf("temporal CLI not found at %s; skipping", bin)
	}
	srv, err := testsuite.StartDevServer(t.Context(), testsuite.DevServerOptions{ExistingPath: bin, LogLevel: "error",
		DBFilename: filepath.Join(t.TempDir(), "temporal.db"), Stdout: os.Stderr, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv.FrontendHostPort()
}

// demoPort finds a port P with P..P+8 free on loopback.
func demoPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+8 > 65535 {
			continue
		}
		free := true
		for i := 0; i <= 8 && free; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+i))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no 9 consecutive free ports on loopback")
	return 0
}

// startWorker runs the worker subcommand until the test ends.
func startWorker(t *testing.T, args []string) *syncBuffer {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out, out) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v\n%s", err, out.String())
		}
	})
	waitFor(t, func() bool { return strings.Contains(out.String(), "worker on task queue") })
	return out
}

func lbPool(t *testing.T, port int) []string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/lb/pool", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pool []string
	if err := json.NewDecoder(resp.Body).Decode(&pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// serves is what the backend at addr answers, or "down".
func serves(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return "down"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
