package intaketest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/gitlabx"
)

// TestIntake runs the contract as subtests of t. newIntake returns a new,
// empty Intake for each subtest, not yet started; TestIntake starts it and
// shuts it down. The contract:
//   - every stored delivery is handed to the handler once (no crash
//     happens here), with its headers and body as stored;
//   - a second Enqueue with the same DedupKey returns gitlabx.ErrDuplicate;
//   - deliveries stored before Start are handled after it;
//   - deliveries of one Partition run one at a time, in Enqueue order;
//   - Idle waits for running handlers and returns ctx's error when it ends
//     first;
//   - Shutdown with an expired ctx cancels a running handler's context and
//     returns an error wrapping ctx's error;
//   - Stats().Intake.Pending counts the stored, unhandled deliveries.
func TestIntake(t *testing.T, newIntake func(t *testing.T) gitlabx.Intake) {
	t.Run("HandlesEveryDeliveryOnce", func(t *testing.T) { handlesOnce(t, newIntake(t)) })
	t.Run("Duplicate", func(t *testing.T) { duplicate(t, newIntake(t)) })
	t.Run("PartitionOrder", func(t *testing.T) { partitionOrder(t, newIntake(t)) })
	t.Run("IdleWaits", func(t *testing.T) { idleWaits(t, newIntake(t)) })
	t.Run("ShutdownCancels", func(t *testing.T) { shutdownCancels(t, newIntake(t)) })
}

// must stops the test when err is not nil.
func must(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// is reports an error unless errors.Is(err, want).
func is(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v; want one wrapping %v", what, err, want)
	}
}

func envelope(partition string, n int) *gitlabx.Envelope {
	e := &gitlabx.Envelope{
		DedupKey:  fmt.Sprintf("%064x", n),
		Partition: partition,
		Body:      fmt.Appendf(nil, `{"object_kind":"push","n":%d}`, n),
	}
	e.Event = "Push Hook"
	e.EventUUID = fmt.Sprintf("event-%d", n)
	e.WebhookUUID = fmt.Sprintf("webhook-%d", n)
	e.IdempotencyKey = fmt.Sprintf("key-%d", n)
	return e
}

// recorder is a HandleFunc that records what it was handed.
type recorder struct {
	mu      sync.Mutex
	got     map[string][]*gitlabx.Envelope // by partition, in handling order
	running map[string]bool
	overlap int
	delay   time.Duration
}

func (r *recorder) handle(ctx context.Context, e *gitlabx.Envelope) error {
	r.mu.Lock()
	if r.got == nil {
		r.got, r.running = map[string][]*gitlabx.Envelope{}, map[string]bool{}
	}
	if e.Partition != "" && r.running[e.Partition] {
		r.overlap++
	}
	r.running[e.Partition] = true
	r.mu.Unlock()
	time.Sleep(r.delay)
	r.mu.Lock()
	r.running[e.Partition] = false
	r.got[e.Partition] = append(r.got[e.Partition], e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) handled() (map[string][]*gitlabx.Envelope, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]*gitlabx.Envelope{}
	for k, v := range r.got {
		out[k] = append([]*gitlabx.Envelope(nil), v...)
	}
	return out, r.overlap
}

func shutdown(t *testing.T, in gitlabx.Intake) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		in.Shutdown(ctx)
	})
}

func handlesOnce(t *testing.T, in gitlabx.Intake) {
	shutdown(t, in)
	var rec recorder
	want := map[string]*gitlabx.Envelope{}
	for n := range 12 {
		e := envelope([]string{"", "mr/1/1", "issue/1/2"}[n%3], n)
		must(t, in.Enqueue(t.Context(), e), "Enqueue #%d before Start", n)
		want[e.DedupKey] = e
	}
	if got := in.Stats().Pending; got != 12 {
		t.Errorf("Stats().Pending with 12 stored, before Start = %d; want 12", got)
	}
	must(t, in.Start(rec.handle), "Start")
	for n := 12; n < 24; n++ {
		e := envelope([]string{"", "mr/1/1", "issue/1/2"}[n%3], n)
		must(t, in.Enqueue(t.Context(), e), "Enqueue #%d after Start", n)
		want[e.DedupKey] = e
	}
	must(t, in.Idle(t.Context()), "Idle")
	got, _ := rec.handled()
	seen := map[string]int{}
	for _, es := range got {
		for _, e := range es {
			seen[e.DedupKey]++
			w := want[e.DedupKey]
			switch {
			case w == nil:
				t.Errorf("handled a delivery never stored: %+v", e)
			case w.Delivery != e.Delivery || string(w.Body) != string(e.Body) || w.Partition != e.Partition:
				t.Errorf("delivery %s handled with partition %q, headers %+v, body %q; stored with %q, %+v, %q",
					e.EventUUID, e.Partition, e.Delivery, e.Body, w.Partition, w.Delivery, w.Body)
			}
		}
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("delivery %s was handled %d times; want once", want[k].EventUUID, seen[k])
		}
	}
	if got := in.Stats().Pending; got != 0 {
		t.Errorf("Stats().Pending after Idle = %d; want 0", got)
	}
}

func duplicate(t *testing.T, in gitlabx.Intake) {
	shutdown(t, in)
	var rec recorder
	must(t, in.Start(rec.handle), "Start")
	must(t, in.Enqueue(t.Context(), envelope("mr/1/1", 1)), "Enqueue")
	again := envelope("mr/1/1", 1)
	again.IdempotencyKey = "another-header"
	is(t, in.Enqueue(t.Context(), again), gitlabx.ErrDuplicate, "Enqueue of the same DedupKey")
	must(t, in.Idle(t.Context()), "Idle")
	is(t, in.Enqueue(t.Context(), envelope("mr/1/1", 1)), gitlabx.ErrDuplicate, "Enqueue of the same DedupKey after it was handled")
	got, _ := rec.handled()
	if len(got["mr/1/1"]) != 1 {
		t.Errorf("handled %d deliveries for one DedupKey; want 1", len(got["mr/1/1"]))
	}
}

func partitionOrder(t *testing.T, in gitlabx.Intake) {
	shutdown(t, in)
	rec := recorder{delay: 2 * time.Millisecond}
	must(t, in.Start(rec.handle), "Start")
	parts := []string{"mr/1/1", "mr/1/2", "issue/1/1"}
	for n := range 30 {
		must(t, in.Enqueue(t.Context(), envelope(parts[n%3], n)), "Enqueue #%d", n)
	}
	must(t, in.Idle(t.Context()), "Idle")
	got, overlap := rec.handled()
	if overlap != 0 {
		t.Errorf("two deliveries of one partition ran at once %d times; want never", overlap)
	}
	for i, p := range parts {
		var order []string
		for _, e := range got[p] {
			order = append(order, e.EventUUID)
		}
		var want []string
		for n := i; n < 30; n += 3 {
			want = append(want, fmt.Sprintf("event-%d", n))
		}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("deliveries of partition %s handled in the order %v; want %v", p, order, want)
		}
	}
}

func idleWaits(t *testing.T, in gitlabx.Intake) {
	shutdown(t, in)
	release := make(chan struct{})
	var done sync.WaitGroup
	done.Add(1)
	must(t, in.Start(func(ctx context.Context, e *gitlabx.Envelope) error {
		defer done.Done()
		<-release
		return nil
	}), "Start")
	must(t, in.Enqueue(t.Context(), envelope("mr/1/1", 1)), "Enqueue")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	is(t, in.Idle(ctx), context.DeadlineExceeded, "Idle while a handler runs, with a deadline")
	close(release)
	must(t, in.Idle(t.Context()), "Idle after the handler returned")
	done.Wait()
}

func shutdownCancels(t *testing.T, in gitlabx.Intake) {
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	must(t, in.Start(func(ctx context.Context, e *gitlabx.Envelope) error {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}), "Start")
	must(t, in.Enqueue(t.Context(), envelope("mr/1/1", 1)), "Enqueue")
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler never started")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := in.Shutdown(ctx)
	is(t, err, context.Canceled, "Shutdown with a cancelled context while a handler runs")
	select {
	case err := <-cancelled:
		is(t, err, context.Canceled, "the running handler's context")
	case <-time.After(30 * time.Second):
		t.Fatal("the running handler's context was never cancelled")
	}
}
