package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/opskit/opskit/internal/testenv"
)

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

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"deploy"}, {"status", "extra"}} {
		if err := run(t.Context(), args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v; want errUsage", args, err)
		}
	}
}

// TestControlThroughCLI: start, status, pause, promote and abort through
// the command against a real dev server, with the worker subcommand
// running in-process.
func TestControlThroughCLI(t *testing.T) {
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
	addr := srv.FrontendHostPort()
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append(args, "-addr", addr, "-targets", "3"), &out, &out); err != nil {
			t.Fatalf("rollout-temporal %q: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	wctx, stop := context.WithCancel(t.Context())
	var workerOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(wctx, []string{"worker", "-addr", addr, "-targets", "3", "-step", "10ms"}, &workerOut, &workerOut)
	}()
	t.Cleanup(func() { stop(); <-done })

	cli("start", "-soak", "1h")
	waitFor(t, func() bool { return strings.Contains(cli("status"), "phase soak") })
	cli("pause")
	cli("promote")
	if got := cli("status"); !strings.Contains(got, "phase soak paused promoted") || !strings.Contains(got, "web1     succeeded") {
		t.Errorf("status after pause and promote:\n%s\nwant the soak held, paused and promoted, web1 succeeded", got)
	}
	cli("abort")
	waitFor(t, func() bool { return strings.Contains(cli("status"), "ended ESCanceled") })
	got := cli("status")
	if !strings.Contains(got, "web2     not_started") || !strings.Contains(got, "rollout aborted") {
		t.Errorf("status after abort:\n%s\nwant web2 not started and the abort named", got)
	}
	if !strings.Contains(workerOut.String(), "web1: check") || strings.Contains(workerOut.String(), "web2:") {
		t.Errorf("worker output:\n%s\nwant web1's states and nothing of web2", workerOut.String())
	}
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
