package jetstream_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/gitlabx/intaketest"
	"github.com/opskit/opskit/gitlabx/jetstream"
)

const hookToken = "hook-token"

// natsServer starts a JetStream server for one test, on a random loopback
// port with file storage in a temporary directory.
func natsServer(t testing.TB, maxPayload ...int32) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	if len(maxPayload) > 0 {
		opts.MaxPayload = maxPayload[0]
	}
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats server ready")
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// fastConfig fails over in about a second, for tests.
func fastConfig(nc *nats.Conn) jetstream.Config {
	return jetstream.Config{Conn: nc, Partitions: 8, AckWait: time.Second, PinnedTTL: time.Second}
}

// replica is one process's Hooks on a shared stream.
func replica(t testing.TB, cfg jetstream.Config) *gitlabx.Hooks {
	t.Helper()
	in, err := jetstream.New(t.Context(), cfg)
	require.NoError(t, err)
	h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Intake: in, RetryBackoff: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// mrEvent is a Merge Request Hook body for MR !iid whose title carries seq.
func mrEvent(t testing.TB, iid, seq int) []byte {
	t.Helper()
	b, _, err := gitlabtest.Fixture("merge_request_open")
	require.NoError(t, err)
	b = bytes.Replace(b, []byte(`"iid":`), []byte(`"iid":`+strconv.Itoa(iid)+`,"x_iid":`), 1)
	return bytes.Replace(b, []byte(`"title":`), []byte(`"title":"`+strconv.Itoa(seq)+`","x_title":`), 1)
}

func send(t testing.TB, url string, body []byte, key string) int {
	t.Helper()
	resp, err := gitlabtest.SendWebhook(t.Context(), url, gitlabtest.MergeRequestHook, body,
		gitlabtest.WebhookOptions{Token: hookToken, IdempotencyKey: key})
	require.NoError(t, err)
	return resp.StatusCode
}

// log records handled deliveries per MR and checks that one MR never has
// two handlers running at once.
type log struct {
	mu         sync.Mutex
	seqs       map[int64][]int
	running    map[int64]bool
	concurrent int
}

func (l *log) handler(delay time.Duration) func(context.Context, *gitlab.MergeEvent) error {
	return func(ctx context.Context, e *gitlab.MergeEvent) error {
		iid := e.ObjectAttributes.IID
		l.mu.Lock()
		if l.seqs == nil {
			l.seqs, l.running = map[int64][]int{}, map[int64]bool{}
		}
		if l.running[iid] {
			l.concurrent++
		}
		l.running[iid] = true
		l.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			l.mu.Lock()
			l.running[iid] = false
			l.mu.Unlock()
			return ctx.Err()
		}
		seq, _ := strconv.Atoi(e.ObjectAttributes.Title)
		l.mu.Lock()
		l.running[iid] = false
		l.seqs[iid] = append(l.seqs[iid], seq)
		l.mu.Unlock()
		return nil
	}
}

func (l *log) snapshot() (map[int64][]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int64][]int{}
	for k, v := range l.seqs {
		out[k] = append([]int(nil), v...)
	}
	return out, l.concurrent
}

// TestIntakeStoresOnceAndHandlesInOrder: two replicas behind a load
// balancer receive every delivery of five MRs twice (GitLab's redelivery
// lands on the other replica): each delivery is stored once (the second is
// answered 200), and each MR's deliveries are handled once, one at a time,
// in the order they were accepted.
func TestIntakeStoresOnceAndHandlesInOrder(t *testing.T) {
	srv := natsServer(t)
	var l log
	var urls []string
	var hooks []*gitlabx.Hooks
	for range 2 {
		h := replica(t, fastConfig(connect(t, srv.ClientURL())))
		h.OnMergeRequest(l.handler(time.Millisecond))
		require.NoError(t, h.Start())
		hs := httptest.NewServer(h)
		t.Cleanup(hs.Close)
		urls = append(urls, hs.URL)
		hooks = append(hooks, h)
	}
	const mrs, events = 5, 12
	var wg sync.WaitGroup
	for iid := 1; iid <= mrs; iid++ {
		wg.Go(func() {
			for seq := range events {
				key := fmt.Sprintf("mr%d-%d", iid, seq)
				first := send(t, urls[(iid+seq)%2], mrEvent(t, iid, seq), key)
				again := send(t, urls[(iid+seq+1)%2], mrEvent(t, iid, seq), key)
				assert.Equal(t, http.StatusAccepted, first, "delivery %s", key)
				assert.Equal(t, http.StatusOK, again, "redelivery %s to the other replica", key)
			}
		})
	}
	wg.Wait()
	require.NoError(t, hooks[0].Idle(t.Context()))
	seqs, concurrent := l.snapshot()
	want := make([]int, events)
	for i := range want {
		want[i] = i
	}
	for iid := int64(1); iid <= mrs; iid++ {
		assert.Equal(t, want, seqs[iid], "deliveries of MR !%d handled, in order", iid)
	}
	assert.Zero(t, concurrent, "times two handlers ran at once for one MR")
	var accepted, dup int64
	for _, h := range hooks {
		s := h.Stats()
		accepted += s.Accepted
		dup += s.Duplicate
		assert.Zero(t, s.Intake.Pending, "stream depth after Idle")
	}
	assert.Equal(t, int64(mrs*events), accepted, "accepted across replicas")
	assert.Equal(t, int64(mrs*events), dup, "duplicates across replicas")
}

// TestIntakeShutdownLosesNothing: a replica shut down with a short deadline
// while its handlers are stuck hands its deliveries back; another replica
// handles every one of them.
func TestIntakeShutdownLosesNothing(t *testing.T) {
	srv := natsServer(t)
	a := replica(t, fastConfig(connect(t, srv.ClientURL())))
	stuck := make(chan struct{})
	var started atomic.Int32
	a.OnMergeRequest(func(ctx context.Context, e *gitlab.MergeEvent) error {
		started.Add(1)
		select {
		case <-stuck:
		case <-ctx.Done():
		}
		return ctx.Err()
	})
	require.NoError(t, a.Start())
	hs := httptest.NewServer(a)
	defer hs.Close()
	const n = 10
	for i := range n {
		require.Equal(t, http.StatusAccepted, send(t, hs.URL, mrEvent(t, 100+i, 0), "k"+strconv.Itoa(i)))
	}
	require.Eventually(t, func() bool { return started.Load() > 0 }, 10*time.Second, 10*time.Millisecond, "a handler started")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := a.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Shutdown with stuck handlers")
	assert.Equal(t, int64(n), a.Stats().Intake.Pending, "stream depth after the replica stopped")

	var l log
	b := replica(t, fastConfig(connect(t, srv.ClientURL())))
	b.OnMergeRequest(l.handler(0))
	require.NoError(t, b.Start())
	require.NoError(t, b.Idle(t.Context()))
	seqs, _ := l.snapshot()
	assert.Len(t, seqs, n, "MRs handled by the other replica")
	assert.Zero(t, b.Stats().Intake.Pending)
}

// TestIntakeFailoverAfterCrash: a replica whose connection drops while it
// handles a delivery (as when the process is killed) does not lose it: the
// other replica takes the partition over and handles it again.
func TestIntakeFailoverAfterCrash(t *testing.T) {
	srv := natsServer(t)
	ncA := connect(t, srv.ClientURL())
	a := replica(t, fastConfig(ncA))
	got := make(chan struct{})
	a.OnMergeRequest(func(ctx context.Context, e *gitlab.MergeEvent) error {
		close(got)
		<-ctx.Done()
		return ctx.Err()
	})
	require.NoError(t, a.Start())
	hs := httptest.NewServer(a)
	defer hs.Close()

	var l log
	b := replica(t, fastConfig(connect(t, srv.ClientURL())))
	b.OnMergeRequest(l.handler(0))
	require.Equal(t, http.StatusAccepted, send(t, hs.URL, mrEvent(t, 1, 0), "only"))
	<-got
	require.NoError(t, b.Start()) // b asks only now, so a held the delivery
	ncA.Close()                   // a "crashes": no ack, no more pulls
	require.NoError(t, b.Idle(t.Context()))
	seqs, _ := l.snapshot()
	assert.Equal(t, map[int64][]int{1: {0}}, seqs, "deliveries handled by the surviving replica")
	assert.Equal(t, int64(1), b.Stats().Intake.Redelivered, "Stats().Intake.Redelivered on the survivor")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a.Shutdown(ctx) // the "crashed" replica's handler is still waiting
}

// TestIntakeShutdownHandsOverPartitions: a replica that shuts down
// gracefully unpins its partitions, so another replica handles what
// arrives next at once, not after PinnedTTL (an hour here).
func TestIntakeShutdownHandsOverPartitions(t *testing.T) {
	srv := natsServer(t)
	cfg := func() jetstream.Config {
		c := fastConfig(connect(t, srv.ClientURL()))
		c.PinnedTTL = time.Hour
		return c
	}
	var la, lb log
	a := replica(t, cfg())
	a.OnMergeRequest(la.handler(0))
	require.NoError(t, a.Start())
	b := replica(t, cfg())
	b.OnMergeRequest(lb.handler(0))
	hs := httptest.NewServer(a)
	defer hs.Close()
	for iid := 1; iid <= 8; iid++ { // MRs over every partition, all pinned to a
		require.Equal(t, http.StatusAccepted, send(t, hs.URL, mrEvent(t, iid, 0), fmt.Sprintf("first-%d", iid)))
	}
	require.NoError(t, a.Idle(t.Context()))
	require.NoError(t, b.Start())
	require.NoError(t, a.Shutdown(t.Context()))
	for iid := 1; iid <= 8; iid++ { // a still stores deliveries after Shutdown; b handles them
		require.Equal(t, http.StatusAccepted, send(t, hs.URL, mrEvent(t, iid, 1), fmt.Sprintf("second-%d", iid)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Idle(ctx), "b handles a's partitions well before PinnedTTL (1 h)")
	seqs, _ := lb.snapshot()
	assert.Len(t, seqs, 8, "MRs whose second delivery b handled")
}

// TestEnqueueUnavailable: when JetStream cannot store a delivery, Hooks
// answers 503 (GitLab may deliver it again) instead of a 202 that would
// lose it.
func TestEnqueueUnavailable(t *testing.T) {
	srv := natsServer(t)
	nc := connect(t, srv.ClientURL())
	h := replica(t, fastConfig(nc))
	h.OnMergeRequest(func(context.Context, *gitlab.MergeEvent) error { return nil })
	hs := httptest.NewServer(h)
	defer hs.Close()
	nc.Close()
	assert.Equal(t, http.StatusServiceUnavailable, send(t, hs.URL, mrEvent(t, 1, 0), "k"))
	assert.Equal(t, int64(1), h.Stats().Unavailable)
}

// TestEnqueueTooLarge: a delivery above the server's max_payload is
// answered 413 (the operator raises max_payload), not 503 for ever.
func TestEnqueueTooLarge(t *testing.T) {
	srv := natsServer(t, 64<<10)
	h := replica(t, fastConfig(connect(t, srv.ClientURL())))
	h.OnMergeRequest(func(context.Context, *gitlab.MergeEvent) error { return nil })
	hs := httptest.NewServer(h)
	defer hs.Close()
	big := bytes.Replace(mrEvent(t, 1, 0), []byte(`"description":`), []byte(`"description":"`+strings.Repeat("d", 100<<10)+`","x_description":`), 1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, send(t, hs.URL, big, "big"))
	assert.Equal(t, http.StatusAccepted, send(t, hs.URL, mrEvent(t, 1, 0), "small"))
}

func TestNewConfig(t *testing.T) {
	_, err := jetstream.New(t.Context(), jetstream.Config{})
	assert.ErrorIs(t, err, jetstream.ErrConfig)
	_, err = jetstream.StartEmbedded(jetstream.EmbeddedConfig{})
	assert.ErrorIs(t, err, jetstream.ErrConfig)
}

// TestIntakeContract: the JetStream intake passes the checker users run
// against their own Intake.
func TestIntakeContract(t *testing.T) {
	intaketest.TestIntake(t, func(t *testing.T) gitlabx.Intake {
		in, err := jetstream.New(t.Context(), fastConfig(connect(t, natsServer(t).ClientURL())))
		require.NoError(t, err)
		return in
	})
}
