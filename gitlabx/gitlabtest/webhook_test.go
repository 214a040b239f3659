package gitlabtest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

type captured struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T) (string, <-chan captured) {
	t.Helper()
	ch := make(chan captured, 100)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- captured{r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(hs.Close)
	return hs.URL, ch
}

func TestSendWebhookHeaders(t *testing.T) {
	url, got := receiver(t)
	body, event, err := gitlabtest.Fixture("merge_request_open")
	require.NoError(t, err)
	resp, err := gitlabtest.SendWebhook(t.Context(), url, event, body, gitlabtest.WebhookOptions{
		Token: "s3cret", IdempotencyKey: "idem-1", EventUUID: "ev-1", WebhookUUID: "wh-1",
	})
	require.NoError(t, err)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	rb, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "ok", string(rb))

	c := <-got
	assert.Equal(t, body, c.body)
	for k, want := range map[string]string{
		"X-Gitlab-Event":        "Merge Request Hook",
		"X-Gitlab-Token":        "s3cret",
		"Idempotency-Key":       "idem-1",
		"X-Gitlab-Event-Uuid":   "ev-1",
		"X-Gitlab-Webhook-Uuid": "wh-1",
		"X-Gitlab-Instance":     "https://gitlab.example.com",
		"User-Agent":            gitlabtest.DefaultUserAgent,
		"Content-Type":          "application/json",
	} {
		assert.Equal(t, want, c.header.Get(k), k)
	}
	assert.Empty(t, c.header.Get("webhook-signature"), "no signing token, no signature")

	// Defaults: fresh UUIDs per delivery, no token header.
	_, err = gitlabtest.SendWebhook(t.Context(), url, event, body, gitlabtest.WebhookOptions{})
	require.NoError(t, err)
	_, err = gitlabtest.SendWebhook(t.Context(), url, event, body, gitlabtest.WebhookOptions{})
	require.NoError(t, err)
	a, b := <-got, <-got
	assert.NotEqual(t, a.header.Get("Idempotency-Key"), b.header.Get("Idempotency-Key"))
	assert.Len(t, a.header.Get("X-Gitlab-Event-UUID"), 36)
	_, hasToken := a.header["X-Gitlab-Token"]
	assert.False(t, hasToken)
}

func TestSendWebhookSigning(t *testing.T) {
	url, got := receiver(t)
	secret := gitlabtest.NewSigningToken()
	at := time.Unix(1767225600, 0)
	body := []byte(`{"object_kind":"push"}`)
	_, err := gitlabtest.SendWebhook(t.Context(), url, gitlabtest.PushHook, body, gitlabtest.WebhookOptions{
		SigningToken: secret, IdempotencyKey: "msg_1", Timestamp: at,
	})
	require.NoError(t, err)
	c := <-got
	assert.Equal(t, "msg_1", c.header.Get("webhook-id"), "webhook-id equals Idempotency-Key")
	assert.Equal(t, strconv.FormatInt(at.Unix(), 10), c.header.Get("webhook-timestamp"))

	// Verify independently, as a Standard Webhooks receiver would.
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_1." + c.header.Get("webhook-timestamp") + "." + string(c.body)))
	assert.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)), c.header.Get("webhook-signature"))

	// Known vector: key "0123456789abcdef0123456789abcdef".
	sig, err := gitlabtest.SignWebhook("whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), "id", time.Unix(1, 0), []byte("b"))
	require.NoError(t, err)
	m = hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	m.Write([]byte("id.1.b"))
	assert.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)), sig)

	for _, bad := range []string{"nope", "whsec_", "whsec_!!!"} {
		_, err := gitlabtest.SignWebhook(bad, "id", at, body)
		assert.ErrorIs(t, err, gitlabtest.ErrBadSigningToken, bad)
		_, err = gitlabtest.SendWebhook(t.Context(), url, gitlabtest.PushHook, body, gitlabtest.WebhookOptions{SigningToken: bad})
		assert.ErrorIs(t, err, gitlabtest.ErrBadSigningToken, bad)
	}
}

func TestSendWebhookCancelled(t *testing.T) {
	url, _ := receiver(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := gitlabtest.SendWebhook(ctx, url, gitlabtest.PushHook, []byte("{}"), gitlabtest.WebhookOptions{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestFixturesParseWithClientGo(t *testing.T) {
	for _, name := range []string{"merge_request_open", "issue_open", "note_issue", "push", "tag_push", "pipeline"} {
		t.Run(name, func(t *testing.T) {
			body, event, err := gitlabtest.Fixture(name)
			require.NoError(t, err)
			_, err = gitlab.ParseWebhook(gitlab.EventType(event), body)
			require.NoError(t, err)
		})
	}
	_, _, err := gitlabtest.Fixture("nope")
	assert.Error(t, err)
}

func TestEventsFromState(t *testing.T) {
	srv, _ := newProject(t)
	alice := srv.AddUser(gitlabtest.User{Username: "alice", Name: "Alice"}, "alice-token")
	srv.SetFile(7, "main", "VERSION", []byte("1\n"))
	head := srv.SetFile(7, "12-fix", "VERSION", []byte("2\n"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "bug", Labels: []string{"workflow::To Do"}})
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix #1", SourceBranch: "12-fix", AuthorID: alice.ID, Labels: []string{"backend"}})

	for _, action := range []string{"open", "update", "merge", "close", "reopen"} {
		t.Run("mr "+action, func(t *testing.T) {
			body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: action, OldRev: "abc"})
			require.NoError(t, err)
			ev, err := gitlab.ParseWebhook(gitlab.EventTypeMergeRequest, body)
			require.NoError(t, err)
			me, ok := ev.(*gitlab.MergeEvent)
			require.True(t, ok, "%T", ev)
			assert.Equal(t, action, me.ObjectAttributes.Action)
			assert.Equal(t, mr.IID, me.ObjectAttributes.IID)
			assert.Equal(t, mr.ID, me.ObjectAttributes.ID)
			assert.Equal(t, "12-fix", me.ObjectAttributes.SourceBranch)
			assert.Equal(t, "main", me.ObjectAttributes.TargetBranch)
			assert.Equal(t, "Fix #1", me.ObjectAttributes.Title)
			assert.Equal(t, head.SHA, me.ObjectAttributes.LastCommit.ID)
			assert.Equal(t, "abc", me.ObjectAttributes.OldRev)
			assert.Equal(t, int64(7), me.Project.ID)
			assert.Equal(t, "ops/app", me.Project.PathWithNamespace)
			assert.Equal(t, alice.ID, me.User.ID, "the user defaults to the author")
			require.Len(t, me.Labels, 1)
			assert.Equal(t, "backend", me.Labels[0].Title)
		})
	}
	body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{UserID: srv.BotUser().ID})
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
	user := raw["user"].(map[string]any)
	assert.Equal(t, srv.BotUser().Username, user["username"])
	_, hasRepo := raw["repository"]
	assert.True(t, hasRepo, "fields of the recorded payload are kept")

	body, err = srv.IssueEvent(7, 1, gitlabtest.EventOptions{Action: "update"})
	require.NoError(t, err)
	ev, err := gitlab.ParseWebhook(gitlab.EventTypeIssue, body)
	require.NoError(t, err)
	ie := ev.(*gitlab.IssueEvent)
	assert.Equal(t, int64(1), ie.ObjectAttributes.IID)
	assert.Equal(t, "update", ie.ObjectAttributes.Action)
	assert.Equal(t, "bug", ie.ObjectAttributes.Title)
	require.Len(t, ie.Labels, 1)
	assert.Equal(t, "workflow::To Do", ie.Labels[0].Title)

	_, err = srv.MergeRequestEvent(7, 99, gitlabtest.EventOptions{})
	assert.Error(t, err)
	_, err = srv.IssueEvent(99, 1, gitlabtest.EventOptions{})
	assert.Error(t, err)
}

func TestNoteEventsFromState(t *testing.T) {
	srv, _ := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "bug"})
	srv.SetFile(7, "feature", "a", []byte("a"))
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "feature"})
	in := srv.AddNote(7, gitlabtest.IssueNoteable, 1, gitlabtest.Note{Body: "on issue", Internal: true})
	on := srv.AddNote(7, gitlabtest.MergeRequestNoteable, mr.IID, gitlabtest.Note{Body: "on mr"})

	body, err := srv.NoteEvent(7, gitlabtest.IssueNoteable, 1, in.ID, gitlabtest.EventOptions{})
	require.NoError(t, err)
	ev, err := gitlab.ParseWebhook(gitlab.EventTypeNote, body)
	require.NoError(t, err)
	ic, ok := ev.(*gitlab.IssueCommentEvent)
	require.True(t, ok, "%T", ev)
	assert.Equal(t, "on issue", ic.ObjectAttributes.Note)
	assert.Equal(t, in.ID, ic.ObjectAttributes.ID)
	assert.Equal(t, int64(1), ic.Issue.IID)
	assert.Equal(t, "bug", ic.Issue.Title)
	assert.Equal(t, "confidential_note", ic.EventType)
	assert.EqualValues(t, "create", ic.ObjectAttributes.Action)

	body, err = srv.NoteEvent(7, gitlabtest.MergeRequestNoteable, mr.IID, on.ID, gitlabtest.EventOptions{Action: "update"})
	require.NoError(t, err)
	ev, err = gitlab.ParseWebhook(gitlab.EventTypeNote, body)
	require.NoError(t, err)
	mc, ok := ev.(*gitlab.MergeCommentEvent)
	require.True(t, ok, "%T", ev)
	assert.Equal(t, "on mr", mc.ObjectAttributes.Note)
	assert.Equal(t, mr.IID, mc.MergeRequest.IID)
	assert.Equal(t, "feature", mc.MergeRequest.SourceBranch)
	assert.Equal(t, srv.BotUser().ID, mc.User.ID, "seeded notes are the bot's")

	_, err = srv.NoteEvent(7, gitlabtest.IssueNoteable, 1, on.ID, gitlabtest.EventOptions{})
	assert.Error(t, err, "the MR note is not on the issue")
}

// TestEventsKeepRecordedShape checks that payloads built from state carry
// every field of the recorded GitLab payload they imitate.
func TestEventsKeepRecordedShape(t *testing.T) {
	srv, bot := newProject(t)
	srv.SetFile(7, "f", "a", []byte("a"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "f"})
	n := srv.AddNote(7, gitlabtest.MergeRequestNoteable, 1, gitlabtest.Note{Body: "x"})
	in := srv.AddNote(7, gitlabtest.IssueNoteable, 1, gitlabtest.Note{Body: "y"})
	url, _ := receiver(t)
	srv.AddHook(7, gitlabtest.Hook{URL: url, Events: []string{gitlabtest.TagPushHook}})
	_, _, err := bot.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1"), Ref: gitlab.Ptr("f")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	tagBody := srv.Deliveries()[0].Body

	build := map[string]func() ([]byte, error){
		"merge_request_open": func() ([]byte, error) { return srv.MergeRequestEvent(7, 1, gitlabtest.EventOptions{}) },
		"issue_open":         func() ([]byte, error) { return srv.IssueEvent(7, 1, gitlabtest.EventOptions{}) },
		"note_merge_request": func() ([]byte, error) {
			return srv.NoteEvent(7, gitlabtest.MergeRequestNoteable, 1, n.ID, gitlabtest.EventOptions{})
		},
		"note_issue": func() ([]byte, error) {
			return srv.NoteEvent(7, gitlabtest.IssueNoteable, 1, in.ID, gitlabtest.EventOptions{})
		},
		"tag_push": func() ([]byte, error) { return tagBody, nil },
	}
	for name, f := range build {
		t.Run(name, func(t *testing.T) {
			rec, _, err := gitlabtest.Fixture(name)
			require.NoError(t, err)
			got, err := f()
			require.NoError(t, err)
			var want, have map[string]any
			require.NoError(t, json.Unmarshal(rec, &want))
			require.NoError(t, json.Unmarshal(got, &have))
			for _, sub := range []string{"", "object_attributes", "project", "merge_request", "issue"} {
				w, h := want, have
				if sub != "" {
					w, _ = want[sub].(map[string]any)
					h, _ = have[sub].(map[string]any)
				}
				for k := range w {
					_, ok := h[k]
					assert.True(t, ok, "%s: %s.%s of the recorded payload is missing", name, sub, k)
				}
			}
		})
	}
}
