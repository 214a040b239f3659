package fleettest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opskit/opskit/fleet"
)

// TestExecutor checks that an Executor behaves as fleet.Executor
// documents, by running real commands through it (echo, printf, cat,
// head, sleep and /bin/sh must exist where the commands run). newExecutor
// returns a fresh executor and the host name to put in Command.Host;
// it registers its own cleanup with t.Cleanup.
//
// It checks: stdout and stderr kept apart, arguments passed unchanged
// without a shell, shell lines, exit codes as *fleet.ExitError with the
// Result, stdin, the output cap, an empty command, a pre-cancelled
// context, cancellation and a deadline while the command runs.
func TestExecutor(t *testing.T, newExecutor func(t *testing.T) (ex fleet.Executor, host string)) {
	t.Helper()
	type check func(t *testing.T, res fleet.Result, err error)
	ok := func(stdout, stderr string) check {
		return func(t *testing.T, res fleet.Result, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("Run: unexpected error %v", err)
			}
			if res.ExitCode != 0 || !res.OK() {
				t.Errorf("ExitCode = %d, Signal = %q; want 0, \"\"", res.ExitCode, res.Signal)
			}
			if string(res.Stdout) != stdout {
				t.Errorf("Stdout = %q; want %q", res.Stdout, stdout)
			}
			if string(res.Stderr) != stderr {
				t.Errorf("Stderr = %q; want %q", res.Stderr, stderr)
			}
		}
	}
	isErr := func(target error) check {
		return func(t *testing.T, res fleet.Result, err error) {
			t.Helper()
			if !errors.Is(err, target) {
				t.Fatalf("Run error = %v; want one matching %v", err, target)
			}
			if res.OK() {
				t.Errorf("Result.OK() = true after error %v", err)
			}
		}
	}
	tests := []struct {
		name    string
		cmd     fleet.Command
		timeout time.Duration
		cancel  bool // cancel before Run
		later   bool // cancel while running
		check   check
	}{
		{name: "stdout", cmd: fleet.Command{Args: []string{"echo", "hello world"}}, check: ok("hello world\n", "")},
		{name: "args unchanged", cmd: fleet.Command{Args: []string{"printf", "%s|", "a b", "it's", "$HOME", "*", ""}}, check: ok("a b|it's|$HOME|*||", "")},
		{name: "shell with stderr", cmd: fleet.Command{Shell: "echo out; echo err >&2"}, check: ok("out\n", "err\n")},
		{name: "stdin", cmd: fleet.Command{Args: []string{"cat"}, Stdin: strings.NewReader("line 1\nline 2\n")}, check: ok("line 1\nline 2\n", "")},
		{name: "exit status", cmd: fleet.Command{Shell: "echo failing >&2; exit 3"}, check: func(t *testing.T, res fleet.Result, err error) {
			var ee *fleet.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("Run error = %v; want a *fleet.ExitError", err)
			}
			if ee.Code != 3 || res.ExitCode != 3 {
				t.Errorf("ExitError.Code = %d, Result.ExitCode = %d; want 3, 3", ee.Code, res.ExitCode)
			}
			if !bytes.Contains(ee.Stderr, []byte("failing")) || string(res.Stderr) != "failing\n" {
				t.Errorf("stderr = %q (ExitError) and %q (Result); want \"failing\\n\"", ee.Stderr, res.Stderr)
			}
		}},
		{name: "output cap", cmd: fleet.Command{Shell: "head -c 100 /dev/zero", MaxOutput: 10}, check: func(t *testing.T, res fleet.Result, err error) {
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res.Stdout) != 10 || !res.StdoutTruncated {
				t.Errorf("len(Stdout) = %d, StdoutTruncated = %v; want 10, true", len(res.Stdout), res.StdoutTruncated)
			}
		}},
		{name: "empty command", cmd: fleet.Command{}, check: isErr(fleet.ErrEmptyCommand)},
		{name: "cancelled before", cmd: fleet.Command{Args: []string{"echo", "never"}}, cancel: true, check: isErr(context.Canceled)},
		{name: "cancelled while running", cmd: fleet.Command{Args: []string{"sleep", "30"}}, later: true, check: isErr(context.Canceled)},
		{name: "deadline", cmd: fleet.Command{Args: []string{"sleep", "30"}}, timeout: 300 * time.Millisecond, check: func(t *testing.T, res fleet.Result, err error) {
			if !errors.Is(err, fleet.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run error = %v; want one matching fleet.ErrTimeout and context.DeadlineExceeded", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, host := newExecutor(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			if tc.cancel {
				cancel()
			}
			if tc.later {
				tm := time.AfterFunc(300*time.Millisecond, cancel)
				defer tm.Stop()
			}
			cmd := tc.cmd
			cmd.Host = host
			done := make(chan struct{})
			var res fleet.Result
			var err error
			go func() { defer close(done); res, err = ex.Run(ctx, cmd) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("Run(%q) did not return 20s after it started", cmd.String())
			}
			if res.Host != host && !errors.Is(err, fleet.ErrEmptyCommand) {
				t.Errorf("Result.Host = %q; want %q", res.Host, host)
			}
			tc.check(t, res, err)
		})
	}
}
