package workflowtest

import (
	"context"
	"errors"
	"testing"

	"github.com/opskit/opskit/workflow"
)

// TestExecutor checks that ex, an Executor that runs commands with a POSIX
// shell on host, behaves as package workflow expects: it returns the
// command's standard output, reports a non-zero exit as an error, and
// returns an error matching context.Canceled when ctx is canceled before
// or while the command runs.
func TestExecutor(t *testing.T, ex workflow.Executor, host string) {
	t.Helper()
	t.Run("output", func(t *testing.T) {
		out, err := ex.Run(t.Context(), host, "echo hello")
		if err != nil || string(out) != "hello\n" {
			t.Errorf("Run(%q, echo hello) = %q, %v; want \"hello\\n\", nil", host, out, err)
		}
	})
	t.Run("non-zero exit", func(t *testing.T) {
		if _, err := ex.Run(t.Context(), host, "exit 3"); err == nil {
			t.Errorf("Run(%q, exit 3) = nil error; want an error", host)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := ex.Run(ctx, host, "echo hello"); !errors.Is(err, context.Canceled) {
			t.Errorf("Run(canceled ctx) = %v; want an error matching context.Canceled", err)
		}
	})
	t.Run("canceled while running", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := ex.Run(ctx, host, "sleep 60")
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run(sleep 60) canceled = %v; want an error matching context.Canceled", err)
		}
	})
}
