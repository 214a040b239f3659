package workflow_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/opskit/opskit/workflow"
)

// recorder collects events and per-state calls; safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []workflow.Event
	calls  map[string]int // "target/state" -> times the state's work completed
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}} }

func (r *recorder) onEvent(ev workflow.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) call(target, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[target+"/"+state]++
}

func (r *recorder) count(target, state string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[target+"/"+state]
}

// started lists the targets with a start event, in event order.
func (r *recorder) started() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, ev := range r.events {
		if ev.Kind == workflow.EventStart {
			s = append(s, ev.Target)
		}
	}
	return s
}

func (r *recorder) kinds(kind workflow.EventKind) []workflow.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []workflow.Event
	for _, ev := range r.events {
		if ev.Kind == kind {
			s = append(s, ev)
		}
	}
	return s
}

// machine builds a target with states a → b → c; each state records its
// call, and the state named in fail (if any) returns failErr.
func machine(rec *recorder, name string, failIn string, failErr error) workflow.Target {
	st := func(state, next string) workflow.State {
		return workflow.State{Name: state, Fn: func(ctx context.Context) (workflow.StateFn, error) {
			if state == failIn {
				return nil, failErr
			}
			rec.call(name, state)
			if next == "" {
				return nil, nil
			}
			return workflow.Goto(next), nil
		}}
	}
	return workflow.Target{Name: name, States: []workflow.State{st("a", "b"), st("b", "c"), st("c", "")}}
}

// gated builds a target whose only state waits for a value on its channel
// (nil error = success) or for the context to end.
func gated(name string, ch <-chan error) workflow.Target {
	return workflow.Target{Name: name, States: []workflow.State{{Name: "work", Fn: func(ctx context.Context) (workflow.StateFn, error) {
		select {
		case err := <-ch:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}}}
}

func names(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func failureNames(rep workflow.Report) []string {
	var s []string
	for _, f := range rep.Failures {
		s = append(s, f.Target)
	}
	return s
}

var _ = testing.TB(nil)
