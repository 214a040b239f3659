package gitlabtest_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// statusReceiver answers every delivery with *status and counts them.
func statusReceiver(t *testing.T, status *atomic.Int32) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(hs.Close)
	return hs.URL, &n
}

// TestHookAutoDisable follows WebHooks::AutoDisabling: the 4th consecutive
// failure disables the hook for a minute, each further failure doubles
// the back-off up to 24 hours, the 40th disables it for good, events
// meanwhile are not delivered, and a success before that resets the count.
func TestHookAutoDisable(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	srv := gitlabtest.NewServer(t, gitlabtest.WithWallClock(clock.Now))
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable) // a busy receiver
	url, received := statusReceiver(t, &status)
	id := srv.AddHook(7, gitlabtest.Hook{URL: url})
	c := srv.Client()
	event := func() {
		t.Helper()
		_, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
		require.NoError(t, err)
		require.NoError(t, srv.WaitDeliveries(t.Context()))
	}
	hook := func() gitlabtest.HookStatus {
		t.Helper()
		hs := srv.HookStatuses(7)
		require.Len(t, hs, 1)
		require.Equal(t, id, hs[0].ID)
		return hs[0]
	}

	for range 3 {
		event()
	}
	assert.Equal(t, gitlabtest.HookExecutable, hook().State, "3 failures are within the grace")
	assert.Equal(t, 3, hook().RecentFailures)
	event()
	h := hook()
	assert.Equal(t, gitlabtest.HookTemporarilyDisabled, h.State, "the 4th failure disables it")
	assert.Equal(t, clock.Now().Add(time.Minute), h.DisabledUntil, "for one minute")
	event()
	assert.Equal(t, int32(4), received.Load(), "no delivery while disabled")
	assert.Equal(t, 1, hook().Skipped)

	wantBackoff := 2 * time.Minute
	for n := 5; n <= 40; n++ {
		clock.Add(hook().DisabledUntil.Sub(clock.Now()) + time.Second)
		require.Equal(t, gitlabtest.HookExecutable, hook().State, "back after the back-off (failure %d)", n)
		event()
		h := hook()
		require.Equal(t, n, h.RecentFailures)
		if n == 40 {
			break
		}
		require.Equal(t, wantBackoff, h.DisabledUntil.Sub(clock.Now()), "back-off after failure %d", n)
		wantBackoff = min(2*wantBackoff, 24*time.Hour)
	}
	assert.Equal(t, 24*time.Hour, wantBackoff, "the back-off reached its 24 h cap")
	assert.Equal(t, gitlabtest.HookDisabled, hook().State, "the 40th failure disables it for good")
	clock.Add(48 * time.Hour)
	status.Store(http.StatusOK)
	event()
	assert.Equal(t, gitlabtest.HookDisabled, hook().State, "still disabled two days later")

	// A success within the grace resets the count.
	srv2 := gitlabtest.NewServer(t, gitlabtest.WithWallClock(clock.Now))
	srv2.AddProject(gitlabtest.Project{ID: 7})
	srv2.AddIssue(7, gitlabtest.Issue{Title: "t"})
	status2 := &atomic.Int32{}
	status2.Store(http.StatusInternalServerError)
	url2, _ := statusReceiver(t, status2)
	srv2.AddHook(7, gitlabtest.Hook{URL: url2})
	for i, st := range []int32{500, 500, 500, 202} {
		status2.Store(st)
		_, _, err := srv2.Client().Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
		require.NoError(t, err)
		require.NoError(t, srv2.WaitDeliveries(t.Context()), "event %d", i)
	}
	assert.Equal(t, 0, srv2.HookStatuses(7)[0].RecentFailures, "a 2xx answer resets the failures")

	// Nothing listening counts as a failure too.
	srv3 := gitlabtest.NewServer(t)
	srv3.AddProject(gitlabtest.Project{ID: 7})
	srv3.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv3.AddHook(7, gitlabtest.Hook{URL: "http://127.0.0.1:1/closed"})
	_, _, err := srv3.Client().Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	require.NoError(t, err)
	require.NoError(t, srv3.WaitDeliveries(t.Context()))
	assert.Equal(t, 1, srv3.HookStatuses(7)[0].RecentFailures, "a transport error is a failure")
}

// TestRedeliverKeepsIdempotencyKey: GitLab does not retry a failed
// delivery by itself; "Resend request" (Redeliver) sends the same event
// with the same Idempotency-Key and X-Gitlab-Event-UUID and a fresh
// X-Gitlab-Webhook-UUID.
func TestRedeliverKeepsIdempotencyKey(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	var mu sync.Mutex
	var headers []http.Header
	fail := true
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		headers = append(headers, r.Header.Clone())
		if fail {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer hs.Close()
	srv.AddHook(7, gitlabtest.Hook{URL: hs.URL})
	_, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	require.Len(t, srv.Deliveries(), 1, "a failed delivery is not retried by itself")
	assert.Equal(t, 1, srv.HookStatuses(7)[0].RecentFailures)

	mu.Lock()
	fail = false
	mu.Unlock()
	d, err := srv.Redeliver(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, d.Attempt)
	assert.Equal(t, http.StatusOK, d.Status)
	require.Len(t, headers, 2)
	first, second := headers[0], headers[1]
	assert.Equal(t, first.Get("Idempotency-Key"), second.Get("Idempotency-Key"), "the same Idempotency-Key across attempts")
	assert.NotEmpty(t, second.Get("Idempotency-Key"))
	assert.Equal(t, first.Get("X-Gitlab-Event-UUID"), second.Get("X-Gitlab-Event-UUID"))
	assert.NotEqual(t, first.Get("X-Gitlab-Webhook-UUID"), second.Get("X-Gitlab-Webhook-UUID"), "a fresh X-Gitlab-Webhook-UUID per attempt")
	assert.Equal(t, 0, srv.HookStatuses(7)[0].RecentFailures, "the successful resend re-enabled the hook")
	_, err = srv.Redeliver(t.Context(), 5)
	assert.ErrorIs(t, err, gitlabtest.ErrNoDelivery)
}

// TestRecursionDetection follows Gitlab::WebHooks::RecursionDetection: an
// API call that carries the X-Gitlab-Event-UUID of a delivery causes no
// new delivery to the hook that received it, but reaches other hooks with
// the same UUID; calls without the header are never blocked.
func TestRecursionDetection(t *testing.T) {
	srv, _ := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	var status atomic.Int32
	status.Store(http.StatusOK)
	botURL, _ := statusReceiver(t, &status)
	otherURL, _ := statusReceiver(t, &status)
	bot := srv.AddHook(7, gitlabtest.Hook{URL: botURL})
	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	_, _, err := dev.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("please look")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	first := srv.Deliveries()[0]
	require.Equal(t, bot, first.HookID)
	other := srv.AddHook(7, gitlabtest.Hook{URL: otherURL})

	// The bot answers the delivery through the API, echoing its UUID.
	_, _, err = srv.Client().Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("on it")},
		gitlab.WithHeader("X-Gitlab-Event-UUID", first.EventUUID))
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	ds := srv.Deliveries()
	require.Len(t, ds, 2, "the bot's own note reached only the other hook")
	assert.Equal(t, other, ds[1].HookID)
	assert.Equal(t, first.EventUUID, ds[1].EventUUID, "the chain keeps its UUID")
	st := srv.HookStatuses(7)
	assert.Equal(t, 1, st[0].Blocked, "recursion blocked for the bot's hook")
	assert.Equal(t, 0, st[1].Blocked)

	_, _, err = srv.Client().Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("unrelated")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	assert.Len(t, srv.Deliveries(), 4, "a call without the header reaches both hooks")
}

// TestHookTimeoutIsAFailure: a receiver that does not answer within the
// client's timeout (GitLab's is 10 s; here Options.Client sets a short one)
// counts as a failed delivery.
func TestHookTimeoutIsAFailure(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)
	srv.AddHook(7, gitlabtest.Hook{URL: hs.URL, Options: gitlabtest.WebhookOptions{Client: &http.Client{Timeout: 20 * time.Millisecond}}})
	_, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	ds := srv.Deliveries()
	require.Len(t, ds, 1)
	assert.Error(t, ds[0].Err, "the delivery timed out")
	assert.Equal(t, 1, srv.HookStatuses(7)[0].RecentFailures)
}
