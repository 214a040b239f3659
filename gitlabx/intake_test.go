package gitlabx_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/intaketest"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// issueWithDescription returns the issue_open fixture with a description
// of n bytes, which a parsed gitlab.IssueEvent keeps.
func issueWithDescription(t testing.TB, n int, iid int) []byte {
	t.Helper()
	b := fixture(t, "issue_open")
	big := `"description":"` + strings.Repeat("d", n) + `","x_description":`
	b = bytes.Replace(b, []byte(`"description":`), []byte(big), 1)
	return bytes.Replace(b, []byte(`"iid":`), []byte(`"iid":`+strconv.Itoa(iid)+`,"x_iid":`), 1)
}

// TestHardening08DedupKeysFixedSize: 64 deliveries with 1 MiB
// Idempotency-Keys once retained 64 MiB in the dedupe cache; the keys are
// now remembered by their hash.
func TestHardening08DedupKeysFixedSize(t *testing.T) {
	h := newHooks(t, gitlabx.HooksConfig{Workers: 2})
	h.OnPush(func(context.Context, *gitlab.PushEvent) error { return nil })
	push := fixture(t, "push")
	before := heapInUse()
	for i := range 64 {
		key := strconv.Itoa(i) + strings.Repeat("k", 1<<20)
		resp := deliver(h, "Push Hook", push, "Idempotency-Key", key)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "delivery %d", i)
	}
	require.NoError(t, h.Idle(t.Context()))
	grown := int64(heapInUse()) - int64(before)
	assert.Less(t, grown, int64(8<<20), "heap growth after 64 deliveries with 1 MiB Idempotency-Keys (bytes)")
	// The keys still work: a redelivery is a duplicate.
	key := "7" + strings.Repeat("k", 1<<20)
	assert.Equal(t, http.StatusOK, deliver(h, "Push Hook", push, "Idempotency-Key", key).StatusCode, "redelivery of a long key")
	runtime.KeepAlive(h)
}

// TestHardening08QueuedBytesBounded: deliveries with a large description
// queued behind a slow handler once grew the heap without bound (parsed
// events, up to QueueSize of them); now the queue holds bodies within
// MaxQueuedBytes and answers 202 beyond it, dropping (and logging) the
// delivery.
func TestHardening08QueuedBytesBounded(t *testing.T) {
	const budget = 2 << 20
	h := newHooks(t, gitlabx.HooksConfig{Workers: 1, MaxQueuedBytes: budget})
	release := make(chan struct{})
	var ran atomic.Int32
	h.OnIssue(func(context.Context, *gitlab.IssueEvent) error { <-release; ran.Add(1); return nil })
	before := heapInUse()
	for i := range 24 {
		resp := deliver(h, "Issue Hook", issueWithDescription(t, 512<<10, 100+i), "Idempotency-Key", "big-"+strconv.Itoa(i))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "delivery %d of 24 while the handler is stuck", i)
	}
	grown := int64(heapInUse()) - int64(before)
	s := h.Stats()
	close(release)
	assert.Less(t, grown, int64(3*budget), "heap growth with 24 deliveries of 512 KiB queued (bytes)")
	assert.LessOrEqual(t, s.Intake.PendingBytes, int64(budget), "Stats().Intake.PendingBytes")
	assert.Positive(t, s.Dropped, "deliveries beyond the byte budget are dropped: %+v", s)
	require.NoError(t, h.Idle(t.Context()))
	s = h.Stats()
	assert.Equal(t, int64(24), s.Accepted+s.Dropped, "every delivery is accepted or dropped: %+v", s)
	assert.Equal(t, s.Accepted, int64(ran.Load()), "every accepted delivery ran")
}

// TestHardening09SignedWebhookIDDedupes: one signed delivery replayed
// within the tolerance with a new (unsigned) Idempotency-Key each time ran
// five times; with signing on, the signed webhook-id is the dedupe key.
func TestHardening09SignedWebhookIDDedupes(t *testing.T) {
	const signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1_700_000_000, 0)
	body := fixture(t, "issue_open")
	sig, err := gitlabx.StandardWebhookSignature(signing, "msg-1", now.Unix(), body)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, SigningToken: signing, Now: func() time.Time { return now }})
		require.NoError(t, err)
		var rec recorder
		rec.register(h)
		var codes []int
		for i := range 5 {
			resp := deliver(h, "Issue Hook", body, "webhook-id", "msg-1", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10),
				"webhook-signature", sig, "Idempotency-Key", "forged-"+strconv.Itoa(i))
			codes = append(codes, resp.StatusCode)
		}
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Equal(t, []int{202, 200, 200, 200, 200}, codes, "one signed delivery replayed with five Idempotency-Keys")
		assert.Len(t, rec.calls(), 1, "handler runs")
	})
}

// TestHooksIdle: Idle waits until every accepted delivery has been
// handled, without shutting the receiver down.
func TestHooksIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 2})
		require.NoError(t, err)
		var done atomic.Int32
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error {
			time.Sleep(2 * time.Second) // a slow GitLab, on the fake clock
			done.Add(1)
			return nil
		})
		require.NoError(t, h.Idle(t.Context()), "Idle with nothing accepted")
		for i := range 5 {
			require.Equal(t, http.StatusAccepted, deliver(h, "Push Hook", fixture(t, "push"), "Idempotency-Key", strconv.Itoa(i)).StatusCode)
		}
		require.NoError(t, h.Idle(t.Context()))
		assert.Equal(t, int32(5), done.Load(), "handlers finished when Idle returned")
		// Still serving after Idle.
		require.Equal(t, http.StatusAccepted, deliver(h, "Push Hook", fixture(t, "push"), "Idempotency-Key", "later").StatusCode)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, h.Idle(ctx), context.DeadlineExceeded, "Idle while a handler runs, with a 1 s deadline")
		require.NoError(t, h.Idle(t.Context()))
		assert.Equal(t, int32(6), done.Load())
		require.NoError(t, h.Shutdown(t.Context()))
	})
}

// TestHooksHandlersAccumulate: every handler registered for a kind runs,
// in registration order, even after one fails.
func TestHooksHandlersAccumulate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken})
		require.NoError(t, err)
		var order []string
		for _, name := range []string{"first", "second", "third"} {
			h.OnPush(func(context.Context, *gitlab.PushEvent) error {
				order = append(order, name)
				if name == "first" {
					return fmt.Errorf("first fails")
				}
				return nil
			})
		}
		deliver(h, "Push Hook", fixture(t, "push"))
		require.NoError(t, h.Idle(t.Context()))
		assert.Equal(t, []string{"first", "second", "third"}, order, "handlers run for one push")
		require.NoError(t, h.Shutdown(t.Context()))
	})
}

// TestHooksNeverAnswers5xxUnderFlood: GitLab counts every non-2xx answer
// toward disabling the webhook (4 in a row: disabled with backoff; 40:
// for good). A flood far beyond the in-memory queue's bounds, and
// deliveries that arrive during Shutdown, are all answered 2xx.
func TestHooksNeverAnswers5xxUnderFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 2, QueueSize: 20, MaxQueuedBytes: 256 << 10})
		require.NoError(t, err)
		release := make(chan struct{})
		h.OnIssue(func(context.Context, *gitlab.IssueEvent) error { <-release; return nil })
		const n, senders = 2000, 16
		codes := make([]int, n)
		var wg sync.WaitGroup
		send := func(from, to int) {
			for s := range senders {
				wg.Go(func() {
					for i := from + s; i < to; i += senders {
						body := issueWithDescription(t, 1<<10, i%50)
						codes[i] = deliver(h, "Issue Hook", body, "Idempotency-Key", "flood-"+strconv.Itoa(i)).StatusCode
					}
				})
			}
			wg.Wait()
		}
		send(0, n/2)
		close(release)
		shut := make(chan error, 1)
		go func() { shut <- h.Shutdown(t.Context()) }()
		send(n/2, n)
		require.NoError(t, <-shut)
		bad := map[int]int{}
		for _, c := range codes {
			if c < 200 || c > 299 {
				bad[c]++
			}
		}
		assert.Empty(t, bad, "answers outside 2xx (status: count) to a flood of %d deliveries", n)
		s := h.Stats()
		assert.Equal(t, int64(n), s.Accepted+s.Dropped, "%+v", s)
		assert.Positive(t, s.Dropped, "the flood overflowed the queue: %+v", s)
		assert.Equal(t, s.Accepted, s.Done, "every accepted delivery was handled: %+v", s)
	})
}

// TestMemoryIntakeContract: the in-memory intake passes the checker users
// run against their own Intake.
func TestMemoryIntakeContract(t *testing.T) {
	intaketest.TestIntake(t, func(t *testing.T) gitlabx.Intake { return gitlabx.NewMemoryIntake() })
}
