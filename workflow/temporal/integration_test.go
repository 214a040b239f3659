package temporal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/opskit/opskit/internal/testenv"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

// Environment of a re-executed test binary that runs a worker.
const (
	envWorker    = "OPSKIT_TEMPORAL_TEST_WORKER"     // worker name: A or B
	envAddr      = "OPSKIT_TEMPORAL_TEST_ADDR"       // dev server host:port
	envLog       = "OPSKIT_TEMPORAL_TEST_LOG"        // file the states append to
	envTaskQueue = "OPSKIT_TEMPORAL_TEST_TASK_QUEUE" // task queue
)

func TestMain(m *testing.M) {
	if name := os.Getenv(envWorker); name != "" {
		if err := runTestWorker(name); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// temporalBinary finds the temporal CLI: $OPSKIT_TEMPORAL, or the cache
// .ci/run builds into. It skips the test when missing, or fails it when
// integration tests are required.
func temporalBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("OPSKIT_TEMPORAL")
	if p == "" {
		p = "/root/.cache/opskit/bin/temporal"
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, ".cache/opskit/bin/temporal")
		}
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		if testenv.Required() {
			t.Fatalf("the temporal CLI is required (OPSKIT_REQUIRE_INTEGRATION=1) but %s is missing; build it with .ci/run or set OPSKIT_TEMPORAL", p)
		}
		t.Skipf("temporal CLI not found at %s; skipping (set OPSKIT_TEMPORAL, or OPSKIT_REQUIRE_INTEGRATION=1 to fail)", p)
	}
	return p
}

func quietLogger() tlog.Logger { return tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }

// startDevServer starts a dev server with its database in t.TempDir(),
// stopped by t.Cleanup.
func startDevServer(t testing.TB) *testsuite.DevServer {
	t.Helper()
	bin := temporalBinary(t)
	srv, err := testsuite.StartDevServer(t.Context(), testsuite.DevServerOptions{
		ExistingPath:  bin,
		DBFilename:    dbFile(t),
		LogLevel:      "error",
		ClientOptions: &client.Options{Logger: quietLogger()},
		Stdout:        os.Stderr,
		Stderr:        os.Stderr,
	})
	if err != nil {
		t.Fatalf("start dev server: %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// failoverDefinition has targets t0..t2 with states stop → start → check.
// Each state appends "<worker> begin|end <target> <state>" to logPath.
// Worker A never finishes t1's start state.
func failoverDefinition(worker, logPath string) *temporal.Definition {
	appendLine := func(s string) {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintln(f, s)
		f.Close()
	}
	def := &temporal.Definition{}
	for i := range 3 {
		name := fmt.Sprintf("t%d", i)
		state := func(s string, next workflow.StateFn) workflow.StateFn {
			return func(ctx context.Context) (workflow.StateFn, error) {
				appendLine(worker + " begin " + name + " " + s)
				if worker == "A" && name == "t1" && s == "start" {
					<-ctx.Done() // until SIGKILLed
					return nil, ctx.Err()
				}
				appendLine(worker + " end " + name + " " + s)
				return next, nil
			}
		}
		def.Targets = append(def.Targets, workflow.Target{Name: name, States: []workflow.State{
			{Name: "stop", Fn: state("stop", workflow.Goto("start"))},
			{Name: "start", Fn: state("start", workflow.Goto("check"))},
			{Name: "check", Fn: state("check", nil)},
		}})
	}
	return def
}

func runTestWorker(name string) error {
	c, err := client.Dial(client.Options{HostPort: os.Getenv(envAddr), Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer c.Close()
	w := worker.New(c, os.Getenv(envTaskQueue), worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{"failover": failoverDefinition(name, os.Getenv(envLog))})
	return w.Run(worker.InterruptCh())
}

// startWorker re-executes the test binary as worker name; t.Cleanup kills
// it if still running.
func startWorker(t *testing.T, name, addr, tq, logPath string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"="+name, envAddr+"="+addr, envTaskQueue+"="+tq, envLog+"="+logPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestFailoverDevServer: worker A is SIGKILLed while t1 is in its start
// state; worker B finishes the rollout. Every state ran to its end exactly
// once, and only the state A was in began twice.
func TestFailoverDevServer(t *testing.T) {
	srv := startDevServer(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "states.log")
	tq := "failover"
	a := startWorker(t, "A", srv.FrontendHostPort(), tq, logPath)

	const heartbeat = 2 * time.Second
	def := failoverDefinition("client", logPath)
	run, err := temporal.Start(t.Context(), srv.Client(), client.StartWorkflowOptions{ID: "failover", TaskQueue: tq}, def,
		temporal.Options{Definition: "failover", CanaryNum: 1, Concurrency: 1, HeartbeatTimeout: heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !contains(readLines(logPath), "A begin t1 start") {
		if time.Now().After(deadline) {
			t.Fatalf("worker A never began t1's start state; log: %q", readLines(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	a.Wait()
	killed := time.Now()
	startWorker(t, "B", srv.FrontendHostPort(), tq, logPath)
	deadline = time.Now().Add(2 * time.Minute)
	for !contains(readLines(logPath), "B begin t1 start") {
		if time.Now().After(deadline) {
			t.Fatalf("worker B never took over t1's start state; log: %q", readLines(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	failover := time.Since(killed)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rep, st, err := temporal.Wait(ctx, run)
	if err != nil || rep.State != workflow.ESSuccess {
		t.Fatalf("Wait = %+v, %v; want ESSuccess", rep, err)
	}
	lines := readLines(logPath)
	t.Logf("heartbeat timeout %v; failover (SIGKILL of A to B beginning t1's start state) %v; states: %q", heartbeat, failover, lines)
	for _, tg := range []string{"t0", "t1", "t2"} {
		for _, s := range []string{"stop", "start", "check"} {
			begins, ends := 0, 0
			for _, l := range lines {
				f := strings.Fields(l)
				if f[2] == tg && f[3] == s {
					switch f[1] {
					case "begin":
						begins++
					case "end":
						ends++
					}
				}
			}
			wantBegins := 1
			if tg == "t1" && s == "start" {
				wantBegins = 2 // A's, cut short, and B's
			}
			if ends != 1 || begins != wantBegins {
				t.Errorf("%s/%s began %d times and ended %d times; want %d and 1", tg, s, begins, ends, wantBegins)
			}
		}
	}
	if t1 := st.Targets[1]; t1.Outcome != temporal.OutcomeSucceeded {
		t.Errorf("t1 status = %+v; want succeeded", t1)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// TestControlDevServer: pause, status, promote and abort through a real
// server, with an in-process worker.
func TestControlDevServer(t *testing.T) {
	srv := startDevServer(t)
	c := srv.Client()
	tq := "control"
	noop := func(context.Context) (workflow.StateFn, error) { return nil, nil }
	def := &temporal.Definition{}
	for i := range 4 {
		def.Targets = append(def.Targets, workflow.Target{Name: fmt.Sprintf("t%d", i), States: []workflow.State{{Name: "a", Fn: noop}}})
	}
	w := worker.New(c, tq, worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{"control": def})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ctx := t.Context()
	opts := temporal.Options{Definition: "control", CanaryNum: 1, Soak: time.Hour, Concurrency: 2}

	// Promote ends the hour-long soak.
	run, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: "promote", TaskQueue: tq}, def, opts)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "promote", workflow.PhaseSoak)
	if err := temporal.Promote(ctx, c, "promote"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if rep, _, err := temporal.Wait(wctx, run); err != nil || len(rep.Succeeded) != 4 {
		t.Fatalf("after promote: Wait = %+v, %v; want 4 targets succeeded", rep, err)
	}

	// Pause holds; abort ends it with ErrAborted.
	run, err = temporal.Start(ctx, c, client.StartWorkflowOptions{ID: "abort", TaskQueue: tq}, def, opts)
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "abort", workflow.PhaseSoak)
	if err := temporal.Pause(ctx, c, "abort"); err != nil {
		t.Fatal(err)
	}
	if err := temporal.Promote(ctx, c, "abort"); err != nil {
		t.Fatal(err)
	}
	st, err := temporal.GetStatus(ctx, c, "abort")
	if err != nil || !st.Paused || st.Ended {
		t.Fatalf("status after pause and promote = %+v, %v; want paused, not ended", st, err)
	}
	if err := temporal.Abort(ctx, c, "abort", false); err != nil {
		t.Fatal(err)
	}
	rep, _, err := temporal.Wait(wctx, run)
	if !errors.Is(err, temporal.ErrAborted) || len(rep.NotStarted) != 3 {
		t.Fatalf("after abort: Wait = %+v, %v; want ErrAborted with 3 targets not started", rep, err)
	}
}

func waitPhase(t *testing.T, c client.Client, id string, p workflow.Phase) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := temporal.GetStatus(t.Context(), c, id)
		if err == nil && st.Phase == p {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached phase %s: %+v, %v", id, p, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dbFile is the dev server's database: a file in t.TempDir(), or none (in
// memory) when OPSKIT_TEMPORAL_MEMDB=1.
func dbFile(t testing.TB) string {
	if os.Getenv("OPSKIT_TEMPORAL_MEMDB") == "1" {
		return ""
	}
	return filepath.Join(t.TempDir(), "temporal.db")
}
