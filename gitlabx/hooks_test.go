package gitlabx_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
	"github.com/opskit/opskit/internal/fixtures"
)

const hookToken = "hook-token"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fixtures.GitLabWebhook(name)
	require.NoError(t, err, "fixture %s", name)
	return b
}

func newHooks(t testing.TB, cfg gitlabx.HooksConfig) *gitlabx.Hooks {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = hookToken
	}
	h, err := gitlabx.NewHooks(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// deliver posts body to h as GitLab would, with headers overriding the defaults.
func deliver(h http.Handler, event string, body []byte, headers ...string) *http.Response {
	r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Gitlab-Token", hookToken)
	r.Header.Set("X-Gitlab-Event", event)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
		} else {
			r.Header.Set(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHooksRejectsBadInput(t *testing.T) {
	mr := fixture(t, "merge_request_open")
	tests := []struct {
		name    string
		event   string
		body    []byte
		headers []string
		want    int
	}{
		{"right token", "Merge Request Hook", mr, nil, http.StatusAccepted},
		{"missing token", "Merge Request Hook", mr, []string{"X-Gitlab-Token", ""}, http.StatusUnauthorized},
		{"wrong token", "Merge Request Hook", mr, []string{"X-Gitlab-Token", "hook-tokem"}, http.StatusUnauthorized},
		{"token prefix", "Merge Request Hook", mr, []string{"X-Gitlab-Token", "hook"}, http.StatusUnauthorized},
		{"malformed JSON", "Merge Request Hook", []byte(`{"object_kind": merge_request}`), nil, http.StatusBadRequest},
		{"truncated JSON", "Merge Request Hook", mr[:len(mr)/2], nil, http.StatusBadRequest},
		{"empty body", "Merge Request Hook", nil, nil, http.StatusBadRequest},
		{"wrong field types", "Merge Request Hook", []byte(`{"object_kind":"merge_request","object_attributes":{"iid":"seven"}}`), nil, http.StatusBadRequest},
		{"unknown event type", "Frobnicate Hook", []byte(`{"object_kind":"frobnicate"}`), nil, http.StatusOK},
		{"event not handled", "Job Hook", []byte(`{"object_kind":"build"}`), nil, http.StatusOK},
		{"unknown noteable type", "Note Hook", []byte(`{"object_kind":"note","object_attributes":{"noteable_type":"Epic"}}`), nil, http.StatusOK},
		{"unknown service kind", "Service Hook", []byte(`{"object_kind":"wiki_page"}`), nil, http.StatusOK},
		{"too large", "Merge Request Hook", append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 9000)...), `"}`...), nil, http.StatusRequestEntityTooLarge},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHooks(t, gitlabx.HooksConfig{MaxBodyBytes: 8000})
			h.OnMergeRequest(func(context.Context, *gitlab.MergeEvent) error { return nil })
			h.OnNote(func(context.Context, gitlabx.NoteEvent) error { return nil })
			headers := append([]string{"Idempotency-Key", "key-" + strconv.Itoa(i)}, tt.headers...)
			resp := deliver(h, tt.event, tt.body, headers...)
			assert.Equal(t, tt.want, resp.StatusCode, "POST %s (%s)", tt.event, tt.name)
		})
	}
}

func TestHooksMethodNotAllowed(t *testing.T) {
	h := newHooks(t, gitlabx.HooksConfig{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hooks", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

func TestNewHooksConfig(t *testing.T) {
	for _, cfg := range []gitlabx.HooksConfig{
		{},
		{Token: "t", SigningToken: "not-whsec"},
		{Token: "t", SigningToken: "whsec_%%%"},
	} {
		_, err := gitlabx.NewHooks(cfg)
		assert.ErrorIs(t, err, gitlabx.ErrConfig, "NewHooks(%+v)", cfg)
	}
}

func TestHooksSignature(t *testing.T) {
	const signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := fixture(t, "issue_open")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good, err := gitlabx.StandardWebhookSignature(signing, "msg-1", now.Unix(), body)
	require.NoError(t, err)
	other, err := gitlabx.StandardWebhookSignature("whsec_b3RoZXIta2V5", "msg-1", now.Unix(), body)
	require.NoError(t, err)
	stale, err := gitlabx.StandardWebhookSignature(signing, "msg-1", now.Add(-time.Hour).Unix(), body)
	require.NoError(t, err)

	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"valid", []string{"webhook-id", "msg-1", "webhook-timestamp", ts, "webhook-signature", good}, http.StatusAccepted},
		{"valid among several", []string{"webhook-id", "msg-1", "webhook-timestamp", ts, "webhook-signature", other + " " + good}, http.StatusAccepted},
		{"missing", nil, http.StatusUnauthorized},
		{"wrong key", []string{"webhook-id", "msg-1", "webhook-timestamp", ts, "webhook-signature", other}, http.StatusUnauthorized},
		{"other id", []string{"webhook-id", "msg-2", "webhook-timestamp", ts, "webhook-signature", good}, http.StatusUnauthorized},
		{"stale", []string{"webhook-id", "msg-1", "webhook-timestamp", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), "webhook-signature", stale}, http.StatusUnauthorized},
		{"bad timestamp", []string{"webhook-id", "msg-1", "webhook-timestamp", "soon", "webhook-signature", good}, http.StatusUnauthorized},
		{"not base64", []string{"webhook-id", "msg-1", "webhook-timestamp", ts, "webhook-signature", "v1,%%%"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHooks(t, gitlabx.HooksConfig{SigningToken: signing, Now: func() time.Time { return now }})
			h.OnIssue(func(context.Context, *gitlab.IssueEvent) error { return nil })
			resp := deliver(h, "Issue Hook", body, tt.headers...)
			assert.Equal(t, tt.want, resp.StatusCode, "signed delivery (%s)", tt.name)
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		h := newHooks(t, gitlabx.HooksConfig{SigningToken: signing, Now: func() time.Time { return now }})
		h.OnIssue(func(context.Context, *gitlab.IssueEvent) error { return nil })
		tampered := bytes.Replace(body, []byte(`"open"`), []byte(`"close"`), 1)
		resp := deliver(h, "Issue Hook", tampered, "webhook-id", "msg-1", "webhook-timestamp", ts, "webhook-signature", good)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

// recorder registers a handler for every kind and records what ran.
type recorder struct {
	mu   sync.Mutex
	got  []string // "<kind> <detail>"
	uuid []string
}

func (r *recorder) add(ctx context.Context, s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	d, _ := gitlabx.DeliveryFrom(ctx)
	r.uuid = append(r.uuid, d.EventUUID)
	return nil
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) register(h *gitlabx.Hooks) {
	h.OnMergeRequest(func(ctx context.Context, e *gitlab.MergeEvent) error {
		return r.add(ctx, "mr "+e.ObjectAttributes.Action+" !"+strconv.FormatInt(e.ObjectAttributes.IID, 10))
	})
	h.OnIssue(func(ctx context.Context, e *gitlab.IssueEvent) error {
		return r.add(ctx, "issue "+e.ObjectAttributes.Action+" #"+strconv.FormatInt(e.ObjectAttributes.IID, 10))
	})
	h.OnNote(func(ctx context.Context, e gitlabx.NoteEvent) error {
		switch {
		case e.MergeRequest != nil:
			return r.add(ctx, "note on !"+strconv.FormatInt(e.MergeRequest.MergeRequest.IID, 10))
		case e.Issue != nil:
			return r.add(ctx, "note on #"+strconv.FormatInt(e.Issue.Issue.IID, 10))
		}
		return r.add(ctx, "note elsewhere")
	})
	h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error { return r.add(ctx, "push "+e.Ref) })
	h.OnTagPush(func(ctx context.Context, e *gitlab.TagEvent) error { return r.add(ctx, "tag "+e.Ref) })
	h.OnPipeline(func(ctx context.Context, e *gitlab.PipelineEvent) error {
		return r.add(ctx, "pipeline "+e.ObjectAttributes.Status)
	})
}

func TestHooksDispatchesRecordedPayloads(t *testing.T) {
	want := map[string]string{
		"merge_request_open":                     "mr open !1",
		"merge_request_open_gitlab_com":          "mr open !",
		"merge_request_update_new_commits":       "mr update !",
		"merge_request_update_labels":            "mr update !",
		"merge_request_update_title_description": "mr update !",
		"merge_request_update_service_hook":      "mr update !",
		"merge_request_merge":                    "mr merge !",
		"merge_request_close":                    "mr close !",
		"merge_request_reopen":                   "mr reopen !",
		"issue_open":                             "issue open #",
		"note_issue":                             "note on #",
		"note_merge_request":                     "note on !",
		"push":                                   "push refs/heads/master",
		"tag_push":                               "tag refs/tags/v1.0.0",
		"pipeline":                               "pipeline ",
	}
	for name, event := range fixtures.GitLabEvents() {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken})
				require.NoError(t, err)
				var rec recorder
				rec.register(h)
				resp := deliver(h, event, fixture(t, name), "X-Gitlab-Event-UUID", "uuid-"+name)
				require.Equal(t, http.StatusAccepted, resp.StatusCode, "POST %s with X-Gitlab-Event %q", name, event)
				require.NoError(t, h.Shutdown(t.Context()))
				got := rec.calls()
				require.Len(t, got, 1, "handlers run for %s", name)
				assert.True(t, strings.HasPrefix(got[0], want[name]), "handler for %s saw %q; want prefix %q", name, got[0], want[name])
				assert.Equal(t, []string{"uuid-" + name}, rec.uuid, "DeliveryFrom(ctx).EventUUID")
			})
		})
	}
}

func TestHooksDropsDuplicates(t *testing.T) {
	mr := fixture(t, "merge_request_open")
	tests := []struct {
		name     string
		first    []string
		second   []string
		body2    []byte
		wantRuns int
	}{
		{"same Idempotency-Key", []string{"Idempotency-Key", "k1"}, []string{"Idempotency-Key", "k1"}, mr, 1},
		{"different Idempotency-Key", []string{"Idempotency-Key", "k1"}, []string{"Idempotency-Key", "k2"}, mr, 2},
		{"no key, same body", nil, nil, mr, 1},
		{"no key, different body", nil, nil, fixture(t, "merge_request_reopen"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken})
				require.NoError(t, err)
				var rec recorder
				rec.register(h)
				first := deliver(h, "Merge Request Hook", mr, tt.first...)
				second := deliver(h, "Merge Request Hook", tt.body2, tt.second...)
				require.NoError(t, h.Shutdown(t.Context()))
				assert.Equal(t, http.StatusAccepted, first.StatusCode)
				assert.Len(t, rec.calls(), tt.wantRuns, "handler runs after two deliveries")
				if tt.wantRuns == 1 {
					assert.Equal(t, http.StatusOK, second.StatusCode, "redelivery answered 200")
					assert.Equal(t, int64(1), h.Stats().Duplicate)
				}
			})
		})
	}
}

func TestHooksDedupExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, DedupTTL: time.Minute, DedupSize: 2})
		require.NoError(t, err)
		var rec recorder
		rec.register(h)
		mr := fixture(t, "merge_request_open")
		deliver(h, "Merge Request Hook", mr, "Idempotency-Key", "a")
		time.Sleep(2 * time.Minute) // fake clock: the key expires
		deliver(h, "Merge Request Hook", mr, "Idempotency-Key", "a")
		// Bounded: "a" is evicted by two newer keys.
		deliver(h, "Merge Request Hook", mr, "Idempotency-Key", "b")
		deliver(h, "Merge Request Hook", mr, "Idempotency-Key", "c")
		deliver(h, "Merge Request Hook", mr, "Idempotency-Key", "a")
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Len(t, rec.calls(), 5, "every delivery ran: expired and evicted keys are forgotten")
	})
}

func TestHooksIgnoresBotEvents(t *testing.T) {
	tests := []struct {
		name string
		cfg  gitlabx.HooksConfig
		runs int
	}{
		{"by id", gitlabx.HooksConfig{BotUserID: 1}, 0},
		{"by username", gitlabx.HooksConfig{BotUsername: "user1"}, 0},
		{"someone else", gitlabx.HooksConfig{BotUserID: 99, BotUsername: "opskit-bot"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.cfg.Token = hookToken
				h, err := gitlabx.NewHooks(tt.cfg)
				require.NoError(t, err)
				var rec recorder
				rec.register(h)
				// merge_request_open.json is by user 1, "user1".
				resp := deliver(h, "Merge Request Hook", fixture(t, "merge_request_open"))
				require.NoError(t, h.Shutdown(t.Context()))
				assert.Len(t, rec.calls(), tt.runs, "handler runs")
				if tt.runs == 0 {
					assert.Equal(t, http.StatusOK, resp.StatusCode)
				}
			})
		})
	}
}

func TestHooksSerializesPerMergeRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 4})
		require.NoError(t, err)
		var running, most atomic.Int32
		release := make(chan struct{})
		var order []string
		var mu sync.Mutex
		h.OnMergeRequest(func(ctx context.Context, e *gitlab.MergeEvent) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			mu.Lock()
			order = append(order, e.ObjectAttributes.Action)
			mu.Unlock()
			return nil
		})
		// Three events for one MR (same project and IID).
		for _, name := range []string{"merge_request_open", "merge_request_update_labels", "merge_request_close"} {
			b := bytes.Replace(fixture(t, name), []byte(`"iid":`), []byte(`"iid":7,"x_iid":`), 1)
			b = bytes.Replace(b, []byte(`"target_project_id":`), []byte(`"target_project_id":5,"x_tp":`), 1)
			require.Equal(t, http.StatusAccepted, deliver(h, "Merge Request Hook", b).StatusCode, name)
		}
		synctest.Wait()
		assert.Equal(t, int32(1), running.Load(), "events for one MR run one at a time")
		close(release)
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Equal(t, int32(1), most.Load(), "most handlers running at once for one MR")
		assert.Equal(t, []string{"open", "update", "close"}, order, "events for one MR run in arrival order")
	})
}

func TestHooksDifferentMergeRequestsRunConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 4})
		require.NoError(t, err)
		var running atomic.Int32
		release := make(chan struct{})
		h.OnMergeRequest(func(ctx context.Context, e *gitlab.MergeEvent) error {
			running.Add(1)
			<-release
			return nil
		})
		for iid := range 3 {
			b := bytes.Replace(fixture(t, "merge_request_open"), []byte(`"iid":`), []byte(`"iid":`+strconv.Itoa(iid+10)+`,"x_iid":`), 1)
			require.Equal(t, http.StatusAccepted, deliver(h, "Merge Request Hook", b).StatusCode)
		}
		synctest.Wait()
		assert.Equal(t, int32(3), running.Load(), "three MRs handled at once")
		close(release)
		require.NoError(t, h.Shutdown(t.Context()))
	})
}

func TestHooksShutdownDrainsQueuedWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 2})
		require.NoError(t, err)
		var done atomic.Int32
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error {
			time.Sleep(2 * time.Second) // a slow GitLab, on the fake clock
			done.Add(1)
			return nil
		})
		push := fixture(t, "push")
		for i := range 20 {
			require.Equal(t, http.StatusAccepted, deliver(h, "Push Hook", push, "Idempotency-Key", strconv.Itoa(i)).StatusCode)
		}
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Equal(t, int32(20), done.Load(), "handlers finished before Shutdown returned")
		s := h.Stats()
		assert.Equal(t, s.Accepted, s.Done, "accepted deliveries all done: %+v", s)
		resp := deliver(h, "Push Hook", push, "Idempotency-Key", "late")
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, "delivery after Shutdown: never an answer that counts toward auto-disabling")
		assert.Equal(t, int64(1), h.Stats().Dropped, "the late delivery is dropped (and logged)")
		assert.Equal(t, int32(20), done.Load(), "the late delivery did not run")
	})
}

func TestHooksShutdownGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 1})
		require.NoError(t, err)
		handlerErr := make(chan error, 1)
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error {
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return ctx.Err()
		})
		deliver(h, "Push Hook", fixture(t, "push"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err = h.Shutdown(ctx)
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, "1 accepted deliveries not finished")
		assert.ErrorIs(t, <-handlerErr, context.Canceled, "running handler is cancelled")
	})
}

// TestHooksQueueFull: a full in-memory queue answers 202 and drops the
// delivery (GitLab would count a 503 toward disabling the webhook); the
// dropped delivery's key is forgotten, so GitLab's manual redelivery runs.
func TestHooksQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 1, QueueSize: 1})
		require.NoError(t, err)
		release := make(chan struct{})
		var runs atomic.Int32
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error { runs.Add(1); <-release; return nil })
		push := fixture(t, "push")
		require.Equal(t, http.StatusAccepted, deliver(h, "Push Hook", push, "Idempotency-Key", "1").StatusCode)
		synctest.Wait() // the worker holds 1
		require.Equal(t, http.StatusAccepted, deliver(h, "Push Hook", push, "Idempotency-Key", "2").StatusCode)
		resp := deliver(h, "Push Hook", push, "Idempotency-Key", "3")
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, "third delivery with a full queue")
		assert.Equal(t, int64(1), h.Stats().Dropped, "Stats().Dropped after a delivery beyond the queue")
		close(release)
		synctest.Wait()
		resp = deliver(h, "Push Hook", push, "Idempotency-Key", "3")
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, "GitLab's redelivery of the dropped delivery is accepted")
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Equal(t, int32(3), runs.Load())
	})
}

func TestHooksRetriesTransientErrors(t *testing.T) {
	status := func(code int) error {
		return &gitlab.ErrorResponse{Response: &http.Response{StatusCode: code, Request: httptest.NewRequest("GET", "/api/v4/x", nil)}}
	}
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantFail  bool
	}{
		{"ok", []error{nil}, 1, false},
		{"502 then ok", []error{status(502), nil}, 2, false},
		{"429 twice then ok", []error{status(429), status(429), nil}, 3, false},
		{"always 500", []error{status(500), status(500), status(500), status(500)}, 3, true},
		{"404 is not retried", []error{status(404), nil}, 1, true},
		{"plain error is not retried", []error{errors.New("boom"), nil}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken})
				require.NoError(t, err)
				calls := 0
				h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error {
					calls++
					return tt.errs[calls-1]
				})
				deliver(h, "Push Hook", fixture(t, "push"))
				require.NoError(t, h.Shutdown(t.Context()))
				assert.Equal(t, tt.wantCalls, calls, "handler calls")
				assert.Equal(t, tt.wantFail, h.Stats().Failed == 1, "delivery failed: %+v", h.Stats())
			})
		})
	}
}

func TestHooksSurvivesPanickingHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 1})
		require.NoError(t, err)
		var ran atomic.Int32
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error { panic("bad handler") })
		h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error { ran.Add(1); return nil })
		deliver(h, "Push Hook", fixture(t, "push"), "Idempotency-Key", "1")
		deliver(h, "Push Hook", fixture(t, "push"), "Idempotency-Key", "2")
		require.NoError(t, h.Shutdown(t.Context()))
		assert.Equal(t, int32(2), ran.Load(), "the other handler ran for both deliveries")
		assert.Equal(t, int64(2), h.Stats().Failed)
	})
}

func TestRequestOptionsEchoEventUUID(t *testing.T) {
	got := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Gitlab-Event-UUID")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":1,"username":"bot"}`))
	}))
	defer api.Close()
	client, err := gitlab.NewClient("t", gitlab.WithBaseURL(api.URL))
	require.NoError(t, err)
	h := newHooks(t, gitlabx.HooksConfig{})
	h.OnPush(func(ctx context.Context, e *gitlab.PushEvent) error {
		_, _, err := client.Users.CurrentUser(gitlabx.RequestOptions(ctx)...)
		return err
	})
	deliver(h, "Push Hook", fixture(t, "push"), "X-Gitlab-Event-UUID", "ev-123")
	require.NoError(t, h.Shutdown(t.Context()))
	assert.Equal(t, "ev-123", <-got, "X-Gitlab-Event-UUID on the API call")
}

func TestSecretNeverPrints(t *testing.T) {
	s := gitlabx.Secret("hunter2")
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		assert.NotContains(t, out, "hunter2")
	}
}
