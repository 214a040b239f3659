package workflow_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/opskit/opskit/workflow"
)

// TestWithGoto: outside a Runner, Goto asks the function set with WithGoto
// (how the Temporal backend sees transitions); inside a Runner, the
// Runner's own transition wins over one set on the run's context.
func TestWithGoto(t *testing.T) {
	if _, err := workflow.Goto("b")(t.Context()); !errors.Is(err, workflow.ErrNotInRunner) {
		t.Errorf("Goto without a runner = %v; want ErrNotInRunner", err)
	}
	var entered []string
	ctx := workflow.WithGoto(t.Context(), func(name string) (workflow.StateFn, error) {
		entered = append(entered, name)
		return nil, nil
	})
	if next, err := workflow.Goto("b")(ctx); err != nil || next != nil || !slices.Equal(entered, []string{"b"}) {
		t.Errorf("Goto(b) under WithGoto = %v, %v, entered %v; want nil, nil, [b]", next, err, entered)
	}

	var ran []string
	target := workflow.Target{Name: "t0", States: []workflow.State{
		{Name: "a", Fn: func(context.Context) (workflow.StateFn, error) {
			ran = append(ran, "a")
			return workflow.Goto("b"), nil
		}},
		{Name: "b", Fn: func(context.Context) (workflow.StateFn, error) { ran = append(ran, "b"); return nil, nil }},
	}}
	var r workflow.Runner
	if _, err := r.Run(ctx, []workflow.Target{target}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []string{"a", "b"}) || len(entered) != 1 {
		t.Errorf("Runner under WithGoto ran %v, the WithGoto function saw %v; want [a b] and only the earlier [b]", ran, entered)
	}
}
