package workflowtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/opskit/opskit/workflow/workflowtest"
)

func TestRecorder(t *testing.T) {
	rec := workflowtest.NewRecorder()
	boom := errors.New("boom")
	rec.Fail("web1", "stop", boom)
	rec.Respond = func(ctx context.Context, host, cmd string) ([]byte, error) { return []byte(host + " " + cmd), nil }

	if _, err := rec.Run(t.Context(), "web1", "stop"); !errors.Is(err, boom) {
		t.Errorf("Run(web1, stop) = %v; want the failure set by Fail", err)
	}
	if out, err := rec.Run(t.Context(), "web2", "stop"); err != nil || string(out) != "web2 stop" {
		t.Errorf("Run(web2, stop) = %q, %v; want Respond's answer", out, err)
	}
	rec.Fail("web1", "stop", nil)
	if _, err := rec.Run(t.Context(), "web1", "stop"); err != nil {
		t.Errorf("Run(web1, stop) after clearing = %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := rec.Run(ctx, "web3", "stop"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(canceled) = %v; want context.Canceled", err)
	}
	if got := rec.Count("web1", "stop"); got != 2 {
		t.Errorf("Count(web1, stop) = %d; want 2", got)
	}
	if got := len(rec.Calls()); got != 4 {
		t.Errorf("len(Calls()) = %d; want 4 (failed and canceled calls are recorded too)", got)
	}
}

func TestEngineLocalRunner(t *testing.T) {
	workflowtest.TestEngine(t, func(t *testing.T) workflowtest.Engine { return workflowtest.NewLocalEngine(t) })
}
