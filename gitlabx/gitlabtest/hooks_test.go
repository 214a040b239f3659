package gitlabtest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

func TestHooksFireOnAPIChanges(t *testing.T) {
	srv := gitlabtest.NewServer(t, gitlabtest.WithMergeCloseOrder(gitlabtest.CloseAfterMerge))
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	bot := srv.Client()
	url, got := receiver(t)
	srv.AddHook(7, gitlabtest.Hook{URL: url, Options: gitlabtest.WebhookOptions{Token: "s3cret"}})
	srv.SetFile(7, "main", "VERSION", []byte("1\n"))
	srv.SetFile(7, "12-fix", "VERSION", []byte("2\n"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "seeded, fires nothing"})
	dev := srv.ClientFor(gitlabtest.DeveloperToken)

	mr, _, err := dev.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("Fix"), SourceBranch: gitlab.Ptr("12-fix"), TargetBranch: gitlab.Ptr("main"), Description: gitlab.Ptr("Closes #1"),
	})
	require.NoError(t, err)
	_, _, err = bot.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{AddLabels: &gitlab.LabelOptions{"workflow::In Review"}})
	require.NoError(t, err)
	_, _, err = bot.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{AddLabels: &gitlab.LabelOptions{"workflow::In Review"}})
	require.NoError(t, err, "an update that changes nothing fires nothing")
	_, _, err = bot.Notes.CreateMergeRequestNote(7, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("versions differ")})
	require.NoError(t, err)
	_, _, err = dev.MergeRequests.AcceptMergeRequest(7, mr.IID, nil)
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()), "the background close of #1 ran")
	_, _, err = bot.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.0.0"), Ref: gitlab.Ptr("main")})
	require.NoError(t, err)

	require.NoError(t, srv.WaitDeliveries(t.Context()))
	type seen struct {
		Event, Kind, Action, User string
	}
	var want = []seen{
		{"Merge Request Hook", "merge_request", "open", "developer"},
		{"Issue Hook", "issue", "update", "opskit-bot"},
		{"Note Hook", "note", "create", "opskit-bot"},
		{"Merge Request Hook", "merge_request", "merge", "developer"},
		{"Issue Hook", "issue", "close", "developer"},
		{"Tag Push Hook", "tag_push", "", "opskit-bot"},
	}
	var have []seen
	ds := srv.Deliveries()
	require.Len(t, ds, len(want))
	for i, d := range ds {
		c := <-got
		assert.Equal(t, "s3cret", c.header.Get("X-Gitlab-Token"))
		assert.Equal(t, d.IdempotencyKey, c.header.Get("Idempotency-Key"))
		assert.Equal(t, http.StatusAccepted, d.Status)
		ev, err := gitlab.ParseWebhook(gitlab.EventType(d.Event), d.Body)
		require.NoError(t, err, "delivery %d (%s) parses with client-go", i, d.Event)
		var m struct {
			Kind  string `json:"object_kind"`
			User  struct{ Username string }
			Attrs struct{ Action string } `json:"object_attributes"`
			Name  string                  `json:"user_username"`
		}
		require.NoError(t, json.Unmarshal(d.Body, &m))
		user := m.User.Username
		if user == "" {
			user = m.Name
		}
		have = append(have, seen{d.Event, m.Kind, m.Attrs.Action, user})
		if ie, ok := ev.(*gitlab.IssueEvent); ok && m.Attrs.Action == "update" {
			assert.Equal(t, []string{"workflow::In Review"}, labelTitles(ie.Changes.Labels.Current))
			assert.Empty(t, ie.Changes.Labels.Previous)
		}
		if te, ok := ev.(*gitlab.TagEvent); ok {
			assert.Equal(t, "refs/tags/v1.0.0", te.Ref)
		}
	}
	assert.Equal(t, want, have)
}

func labelTitles(ls []*gitlab.EventLabel) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Title)
	}
	return out
}

func TestHookEventFilterAndFailures(t *testing.T) {
	srv, bot := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv.AddHook(7, gitlabtest.Hook{URL: "http://127.0.0.1:1/closed", Events: []string{gitlabtest.NoteHook}})
	_, _, err := bot.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{Title: gitlab.Ptr("renamed")})
	require.NoError(t, err)
	_, _, err = bot.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	ds := srv.Deliveries()
	require.Len(t, ds, 1, "only Note Hook was asked for")
	assert.Equal(t, gitlabtest.NoteHook, ds[0].Event)
	assert.Error(t, ds[0].Err, "nothing listens there")
	assert.Zero(t, ds[0].Status)
}
