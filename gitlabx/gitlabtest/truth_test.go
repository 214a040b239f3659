package gitlabtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/gitlaburl"
)

// seen is what a receiver observed when a delivery arrived: the event, its
// action, and the state of issue #1 at that moment.
type seen struct {
	Event, Action, Issue1State string
}

// stateRecorder is a webhook receiver that notes, for each delivery, the
// state issue #1 of project 7 had while the delivery was being answered.
func stateRecorder(t *testing.T, srv *gitlabtest.Server) (string, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m struct {
			Attrs struct{ Action string } `json:"object_attributes"`
		}
		_ = json.Unmarshal(b, &m)
		is, _ := srv.Issue(7, 1)
		mu.Lock()
		got = append(got, seen{r.Header.Get("X-Gitlab-Event"), m.Attrs.Action, is.State})
		mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	return hs.URL, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

// TestMergeClosesIssuesAsynchronously: as GitLab's PostMergeService and
// CloseIssueWorker, the merge and the closing of "Closes #1" are separate
// deliveries whose order WithMergeCloseOrder pins; the close is done as the
// merging user and recorded as a state event that names the MR.
func TestMergeClosesIssuesAsynchronously(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order gitlabtest.MergeCloseOrder
		want  []seen
	}{
		{"merge first", gitlabtest.CloseAfterMerge, []seen{
			{gitlabtest.MergeRequestHook, "merge", "opened"}, // the receiver sees #1 still open
			{gitlabtest.IssueHook, "close", "closed"},
		}},
		{"close first", gitlabtest.CloseBeforeMerge, []seen{
			{gitlabtest.IssueHook, "close", "closed"},
			{gitlabtest.MergeRequestHook, "merge", "closed"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, gitlabtest.WithMergeCloseOrder(tc.order))
			srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
			srv.SetFile(7, "main", "VERSION", []byte("1\n"))
			srv.SetFile(7, "fix", "VERSION", []byte("2\n"))
			srv.AddIssue(7, gitlabtest.Issue{Title: "broken"})
			mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix", Description: "Closes #1", SourceBranch: "fix"})
			url, got := stateRecorder(t, srv)
			srv.AddHook(7, gitlabtest.Hook{URL: url, Events: []string{gitlabtest.MergeRequestHook, gitlabtest.IssueHook}})
			merger := srv.AddUser(gitlabtest.User{Username: "maintainer"}, "glpat-maintainer")

			merged, _, err := srv.ClientFor("glpat-maintainer").MergeRequests.AcceptMergeRequest(7, mr.IID, nil)
			require.NoError(t, err)
			require.NoError(t, srv.WaitDeliveries(t.Context()))
			assert.Equal(t, tc.want, got(), "deliveries, in order, and the state of #1 each receiver saw")
			require.NotNil(t, merged.MergeUser)
			assert.Equal(t, merger.ID, merged.MergeUser.ID, "merge_user (and merged_by) is the merging user, not the author")

			is, _ := srv.Issue(7, 1)
			assert.Equal(t, "closed", is.State)
			assert.Equal(t, merger.ID, is.ClosedByID, "closed as the merging user")
			evs, _, err := srv.Client().ResourceStateEvents.ListIssueStateEvents(7, 1, nil)
			require.NoError(t, err)
			require.Len(t, evs, 1)
			assert.Equal(t, gitlab.EventTypeValue("closed"), evs[0].State)
			assert.Equal(t, merger.ID, evs[0].User.ID)
			assert.Equal(t, mr.ID, srv.StateEvents(7, 1)[0].SourceMergeRequestID, "source_merge_request_id")
		})
	}
}

// TestMergeCloseOrderRandomCoversBoth: the default order is not fixed.
func TestMergeCloseOrderRandomCoversBoth(t *testing.T) {
	orders := map[string]bool{}
	for i := 0; i < 64 && len(orders) < 2; i++ {
		srv := gitlabtest.NewServer(t)
		srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
		srv.SetFile(7, "fix", "VERSION", []byte("2\n"))
		srv.AddIssue(7, gitlabtest.Issue{Title: "broken"})
		mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix", Description: "Fixes #1", SourceBranch: "fix"})
		url, got := stateRecorder(t, srv)
		srv.AddHook(7, gitlabtest.Hook{URL: url})
		srv.MergeMergeRequest(7, mr.IID)
		require.NoError(t, srv.WaitDeliveries(t.Context()))
		d := got()
		require.Len(t, d, 2)
		orders[d[0].Event] = true
	}
	assert.Len(t, orders, 2, "both orders seen in 64 merges")
}

// TestClosesIssuesFollowsGitLab: closes_issues reads the title, the
// description and the commit messages, is empty for a non-default target
// and when the project's auto-close setting is off; merging then closes
// nothing.
func TestClosesIssuesFollowsGitLab(t *testing.T) {
	for _, tc := range []struct {
		name     string
		project  gitlabtest.Project
		target   string
		want     []int64
		wantOpen []int64
	}{
		{"default branch", gitlabtest.Project{ID: 7}, "main", []int64{1, 2, 3}, []int64{4}},
		{"other target", gitlabtest.Project{ID: 7}, "stable", nil, []int64{1, 2, 3, 4}},
		{"auto-close off", gitlabtest.Project{ID: 7, AutocloseDisabled: true}, "main", nil, []int64{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, gitlabtest.WithMergeCloseOrder(gitlabtest.CloseAfterMerge))
			srv.AddProject(tc.project)
			srv.SetFile(7, "main", "a", []byte("1"))
			srv.SetFile(7, "stable", "a", []byte("1"))
			srv.AddCommit(7, "fix", gitlabtest.Commit{Message: "Refactor\n\nResolves #3", Files: map[string][]byte{"a": []byte("2")}})
			for range 4 {
				srv.AddIssue(7, gitlabtest.Issue{Title: "i"})
			}
			mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix #1", Description: "Closes #2, see #4", SourceBranch: "fix", TargetBranch: tc.target})
			mr2, _, err := srv.Client().MergeRequests.UpdateMergeRequest(7, mr.IID, &gitlab.UpdateMergeRequestOptions{Title: gitlab.Ptr("Fixes #1")})
			require.NoError(t, err)
			require.Equal(t, "Fixes #1", mr2.Title)
			closes, _, err := srv.Client().MergeRequests.GetIssuesClosedOnMerge(7, mr.IID, nil)
			require.NoError(t, err)
			var iids []int64
			for _, is := range closes {
				iids = append(iids, is.IID)
			}
			assert.Equal(t, tc.want, iids, "closes_issues")
			srv.MergeMergeRequest(7, mr.IID)
			require.NoError(t, srv.WaitDeliveries(t.Context()))
			for _, is := range srv.Issues(7) {
				want := "closed"
				if contains(tc.wantOpen, is.IID) {
					want = "opened"
				}
				assert.Equal(t, want, is.State, "#%d after the merge", is.IID)
			}
		})
	}
}

func contains(xs []int64, x int64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestIssueWebURL: issues' web_url is /-/work_items/N like GitLab.com's,
// /-/issues/N with WithLegacyIssueURLs; the SDK's parser reads both.
func TestIssueWebURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []gitlabtest.Option
		seg  string
	}{
		{"default", nil, "/-/work_items/1"},
		{"legacy", []gitlabtest.Option{gitlabtest.WithLegacyIssueURLs()}, "/-/issues/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, tc.opts...)
			srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
			is, _, err := srv.Client().Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("t")})
			require.NoError(t, err)
			assert.Equal(t, srv.URL()+"/ops/app"+tc.seg, is.WebURL)
			project, iid, ok := gitlaburl.Issue(is.WebURL)
			assert.True(t, ok, "gitlaburl.Issue(%q)", is.WebURL)
			assert.Equal(t, "ops/app", project)
			assert.Equal(t, int64(1), iid)
			body, err := srv.IssueEvent(7, 1, gitlabtest.EventOptions{})
			require.NoError(t, err)
			ev, err := gitlab.ParseWebhook(gitlab.EventTypeIssue, body)
			require.NoError(t, err)
			assert.Equal(t, is.WebURL, ev.(*gitlab.IssueEvent).ObjectAttributes.URL, "the webhook's url")
		})
	}
}

// TestTitleLimit: GitLab refuses titles over 255 characters on issues and
// merge requests, with its validation body.
func TestTitleLimit(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "fix", "a", []byte("1"))
	srv.SetFile(7, "main", "a", []byte("0"))
	ok := strings.Repeat("é", 255)
	long := ok + "x"
	_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr(ok)})
	require.NoError(t, err, "255 characters (not bytes) are fine")
	for name, call := range map[string]func() error{
		"create issue": func() error {
			_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr(long)})
			return err
		},
		"update issue": func() error {
			_, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{Title: gitlab.Ptr(long)})
			return err
		},
		"create merge request": func() error {
			_, _, err := c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr(long), SourceBranch: gitlab.Ptr("fix"), TargetBranch: gitlab.Ptr("main")})
			return err
		},
	} {
		var er *gitlab.ErrorResponse
		require.ErrorAs(t, call(), &er, name)
		assert.Equal(t, http.StatusBadRequest, er.Response.StatusCode, name)
		assert.Equal(t, "{message: {title: [is too long (maximum is 255 characters)]}}", er.Message, name)
	}
	assert.Len(t, srv.Issues(7), 1)
}

// TestDraftFollowsTitle: editing an MR's title to add or remove "Draft:"
// recomputes draft, and the webhook's changes say so.
func TestDraftFollowsTitle(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "main", "a", []byte("0"))
	srv.SetFile(7, "fix", "a", []byte("1"))
	url, got := receiver(t)
	srv.AddHook(7, gitlabtest.Hook{URL: url, Events: []string{gitlabtest.MergeRequestHook}})
	mr, _, err := c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("Draft: fix"), SourceBranch: gitlab.Ptr("fix"), TargetBranch: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.True(t, mr.Draft)
	for _, tc := range []struct {
		title string
		draft bool
	}{{"fix", false}, {"[Draft] fix", true}, {"Fix drafts", false}, {"(draft) fix", true}, {"Draft - fix", true}} {
		prev := mr.Draft
		mr, _, err = c.MergeRequests.UpdateMergeRequest(7, mr.IID, &gitlab.UpdateMergeRequestOptions{Title: gitlab.Ptr(tc.title)})
		require.NoError(t, err)
		assert.Equal(t, tc.draft, mr.Draft, "draft after retitling to %q", tc.title)
		require.NoError(t, srv.WaitDeliveries(t.Context()))
		var ev *gitlab.MergeEvent
		for len(got) > 0 {
			d := <-got
			e, err := gitlab.ParseWebhook(gitlab.EventTypeMergeRequest, d.body)
			require.NoError(t, err)
			ev = e.(*gitlab.MergeEvent)
		}
		require.NotNil(t, ev)
		assert.Equal(t, tc.draft, ev.ObjectAttributes.Draft)
		if prev != tc.draft {
			assert.Equal(t, prev, ev.Changes.Draft.Previous, "changes.draft.previous for %q", tc.title)
			assert.Equal(t, tc.draft, ev.Changes.Draft.Current, "changes.draft.current for %q", tc.title)
		}
	}
}

// TestProtectedTags: creating a tag that matches a protected pattern
// without being allowed to fails with GitLab's TagCheck message; an
// allowed user creates it.
func TestProtectedTags(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "main", "a", []byte("1"))
	srv.ProtectTag(7, gitlabtest.ProtectedTag{Name: "v*", CreateUserIDs: []int64{srv.Developer().ID}})
	_, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.0.0"), Ref: gitlab.Ptr("main")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusBadRequest, er.Response.StatusCode)
	assert.Equal(t, "{message: You are not allowed to create this tag as it is protected.}", er.Message)
	assert.Empty(t, srv.Tags(7))
	_, _, err = c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("build-1"), Ref: gitlab.Ptr("main")})
	require.NoError(t, err, "an unprotected name")
	tag, _, err := srv.ClientFor(gitlabtest.DeveloperToken).Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.0.0"), Ref: gitlab.Ptr("main")})
	require.NoError(t, err, "an allowed user")
	assert.True(t, tag.Protected)
}

// TestScopedLabels: with WithScopedLabels, adding a::b removes the other
// a::* labels (Premium); by default (Free) both stay.
func TestScopedLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []gitlabtest.Option
		want []string
	}{
		{"free", nil, []string{"bug", "workflow::Doing", "workflow::To Do", "x::y::a"}},
		{"premium", []gitlabtest.Option{gitlabtest.WithScopedLabels()}, []string{"bug", "workflow::Doing", "x::y::a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, tc.opts...)
			srv.AddProject(gitlabtest.Project{ID: 7})
			c := srv.Client()
			_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("t"), Labels: &gitlab.LabelOptions{"bug", "workflow::To Do", "x::y::a"}})
			require.NoError(t, err)
			is, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{AddLabels: &gitlab.LabelOptions{"workflow::Doing"}})
			require.NoError(t, err)
			assert.Equal(t, tc.want, []string(is.Labels))
		})
	}
}

// TestUploadLimitDefault: the default limit is GitLab's 100 MiB, so a
// 20 MiB attachment (refused by the fake's old 10 MiB default) is taken.
func TestUploadLimitDefault(t *testing.T) {
	assert.Equal(t, int64(100<<20), int64(gitlabtest.DefaultMaxUploadSize))
	srv, c := newProject(t)
	_, _, err := c.ProjectMarkdownUploads.UploadProjectMarkdown(7, strings.NewReader(strings.Repeat("x", 20<<20)), "dump.bin")
	require.NoError(t, err)
	require.Len(t, srv.Uploads(7), 1)
	assert.Len(t, srv.Uploads(7)[0].Content, 20<<20)
}

// TestSystemNotesAndShortPages: GitLab writes system notes into note lists
// (title and description edits, "mentioned in merge request !N"), and its
// notes API drops notes the user may not read after paging, so a page can
// be short while more pages follow.
func TestSystemNotesAndShortPages(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "main", "a", []byte("0"))
	srv.SetFile(7, "fix", "a", []byte("1"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "old"})
	_, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{Title: gitlab.Ptr("new"), Description: gitlab.Ptr("d")})
	require.NoError(t, err)
	_, _, err = c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("Fix #1"), SourceBranch: gitlab.Ptr("fix"), TargetBranch: gitlab.Ptr("main")})
	require.NoError(t, err)
	notes, _, err := c.Notes.ListIssueNotes(7, 1, &gitlab.ListIssueNotesOptions{Sort: gitlab.Ptr("asc")})
	require.NoError(t, err)
	var bodies []string
	for _, n := range notes {
		assert.True(t, n.System, "%q is a system note", n.Body)
		bodies = append(bodies, n.Body)
	}
	assert.Equal(t, []string{"changed title from **old** to **new**", "changed the description", "mentioned in merge request !1"}, bodies)
	is, _, err := c.Issues.GetIssue(7, 1)
	require.NoError(t, err)
	assert.Zero(t, is.UserNotesCount, "system notes are not user notes")

	// Page 1 of 2 loses the note the bot may not read.
	srv.AddNote(7, gitlabtest.IssueNoteable, 1, gitlabtest.Note{Body: "mentioned in a confidential issue", System: true, VisibleTo: []int64{srv.Developer().ID}})
	srv.AddNote(7, gitlabtest.IssueNoteable, 1, gitlabtest.Note{Body: "last"})
	page, resp, err := c.Notes.ListIssueNotes(7, 1, &gitlab.ListIssueNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 3}, Sort: gitlab.Ptr("desc")})
	require.NoError(t, err)
	assert.Len(t, page, 2, "a short page")
	assert.Equal(t, int64(2), resp.NextPage, "while another page follows")
	devPage, _, err := srv.ClientFor(gitlabtest.DeveloperToken).Notes.ListIssueNotes(7, 1, &gitlab.ListIssueNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 3}, Sort: gitlab.Ptr("desc")})
	require.NoError(t, err)
	assert.Len(t, devPage, 3, "a user who may read it gets a full page")
}
