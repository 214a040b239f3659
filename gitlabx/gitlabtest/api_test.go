package gitlabtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// rawGet calls the API without client-go and decodes the JSON answer.
func rawGet(t *testing.T, srv *gitlabtest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL()+"/api/v4/"+path, nil)
	require.NoError(t, err)
	req.Header.Set("Private-Token", srv.Token())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestErrorBodies(t *testing.T) {
	srv, _ := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	for _, tc := range []struct{ path, want string }{
		{"projects/99", `{"message":"404 Project Not Found"}`},
		{"projects/ops%2Fnope/issues", `{"message":"404 Project Not Found"}`},
		{"projects/7/issues/42", `{"message":"404 Not found"}`},
		{"projects/7/repository/files/none/raw?ref=main", `{"message":"404 Commit Not Found"}`},
		{"projects/7/repository/branches/nope", `{"message":"404 Branch Not Found"}`},
		{"projects/7/repository/tags/nope", `{"message":"404 Tag Not Found"}`},
		{"projects/7/repository/commits/0123456789", `{"message":"404 Commit Not Found"}`},
		{"projects/7/issues/1/notes/5", `{"message":"404 Note Not Found"}`},
		{"nonsense", `{"message":"404 Not Found"}`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, b := rawGet(t, srv, tc.path)
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)
			assert.JSONEq(t, tc.want, string(b))
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		})
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL()+"/api/v4/projects/7", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"message":"401 Unauthorized"}`, string(b))
}

func TestBadInputAnswers400(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv.SetFile(7, "main", "a", []byte("x"))
	srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "main"})
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"issue without title", func() error {
			_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Description: gitlab.Ptr("d")})
			return err
		}, "title is missing"},
		{"issue update without params", func() error {
			_, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{})
			return err
		}, "at least one parameter must be provided"},
		{"bad state_event", func() error {
			_, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("explode")})
			return err
		}, "state_event does not have a valid value"},
		{"bad MR state_event", func() error {
			_, _, err := c.MergeRequests.UpdateMergeRequest(7, 1, &gitlab.UpdateMergeRequestOptions{StateEvent: gitlab.Ptr("merge")})
			return err
		}, "state_event does not have a valid value"},
		{"note without body", func() error {
			_, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{})
			return err
		}, "body is missing"},
		{"tag without ref", func() error {
			_, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1")})
			return err
		}, "ref is missing"},
		{"tag on unknown ref", func() error {
			_, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1"), Ref: gitlab.Ptr("nope")})
			return err
		}, "Target nope is invalid"},
		{"invalid tag name", func() error {
			_, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("bad name"), Ref: gitlab.Ptr("main")})
			return err
		}, "Tag name invalid"},
		{"label without name", func() error {
			_, _, err := c.Labels.CreateLabel(7, &gitlab.CreateLabelOptions{Color: gitlab.Ptr("#fff")})
			return err
		}, "name is missing"},
		{"file without ref", func() error {
			_, _, err := c.RepositoryFiles.GetFile(7, "a", &gitlab.GetFileOptions{})
			return err
		}, "ref is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var er *gitlab.ErrorResponse
			require.ErrorAs(t, err, &er)
			assert.Equal(t, http.StatusBadRequest, er.Response.StatusCode)
			assert.Contains(t, er.Message, tc.want)
		})
	}
}

func TestMalformedJSONBody(t *testing.T) {
	srv, _ := newProject(t)
	for _, body := range []string{`{"title":"t"`, `["title"]`, `not json`} {
		t.Run(body, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/api/v4/projects/7/issues", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Private-Token", srv.Token())
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.JSONEq(t, `{"message":"400 Bad request - malformed JSON body"}`, string(b))
		})
	}
	assert.Empty(t, srv.Issues(7), "nothing was created")
}

func TestListIssuesFilters(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "Data race in cache", Description: "fingerprint=aaa", Labels: []string{"bug", "race"}})
	srv.AddIssue(7, gitlabtest.Issue{Title: "Login broken", Description: "see race report", Labels: []string{"bug"}})
	third := srv.AddIssue(7, gitlabtest.Issue{Title: "Old race", State: "closed", Labels: []string{"race"}})
	srv.AddIssue(7, gitlabtest.Issue{Title: "No labels"})

	iids := func(is []*gitlab.Issue) []int64 {
		out := []int64{}
		for _, x := range is {
			out = append(out, x.IID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opt  gitlab.ListProjectIssuesOptions
		want []int64
	}{
		{"all by default, newest first", gitlab.ListProjectIssuesOptions{}, []int64{4, 3, 2, 1}},
		{"state opened", gitlab.ListProjectIssuesOptions{State: gitlab.Ptr("opened")}, []int64{4, 2, 1}},
		{"state closed", gitlab.ListProjectIssuesOptions{State: gitlab.Ptr("closed")}, []int64{3}},
		{"labels all must match", gitlab.ListProjectIssuesOptions{Labels: &gitlab.LabelOptions{"bug", "race"}}, []int64{1}},
		{"labels None", gitlab.ListProjectIssuesOptions{Labels: &gitlab.LabelOptions{"None"}}, []int64{4}},
		{"labels Any", gitlab.ListProjectIssuesOptions{Labels: &gitlab.LabelOptions{"Any"}}, []int64{3, 2, 1}},
		{"not labels", gitlab.ListProjectIssuesOptions{NotLabels: &gitlab.LabelOptions{"race"}}, []int64{4, 2}},
		{"search title and description", gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("RACE")}, []int64{3, 2, 1}},
		{"search in title", gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("race"), In: gitlab.Ptr("title")}, []int64{3, 1}},
		{"search in description", gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("fingerprint=aaa"), In: gitlab.Ptr("description")}, []int64{1}},
		{"iids", gitlab.ListProjectIssuesOptions{IIDs: &[]int64{1, 3}}, []int64{3, 1}},
		{"sort asc", gitlab.ListProjectIssuesOptions{Sort: gitlab.Ptr("asc")}, []int64{1, 2, 3, 4}},
		{"order by title asc", gitlab.ListProjectIssuesOptions{OrderBy: gitlab.Ptr("title"), Sort: gitlab.Ptr("asc")}, []int64{1, 2, 4, 3}},
		{"created_after", gitlab.ListProjectIssuesOptions{CreatedAfter: gitlab.Ptr(third.CreatedAt)}, []int64{4, 3}},
		{"created_before", gitlab.ListProjectIssuesOptions{CreatedBefore: gitlab.Ptr(third.CreatedAt)}, []int64{3, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := c.Issues.ListProjectIssues(7, &tc.opt)
			require.NoError(t, err)
			assert.Equal(t, tc.want, iids(got))
		})
	}
	_, _, err := c.Issues.UpdateIssue(7, 2, &gitlab.UpdateIssueOptions{Title: gitlab.Ptr("Login fixed")})
	require.NoError(t, err)
	got, _, err := c.Issues.ListProjectIssues(7, &gitlab.ListProjectIssuesOptions{OrderBy: gitlab.Ptr("updated_at")})
	require.NoError(t, err)
	assert.Equal(t, int64(2), got[0].IID, "order_by=updated_at puts the just-updated issue first")
}

func TestIDsAreGlobalIIDsPerProject(t *testing.T) {
	srv, c := newProject(t)
	srv.AddProject(gitlabtest.Project{ID: 8, Path: "ops/other"})
	a, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("a")})
	require.NoError(t, err)
	b, _, err := c.Issues.CreateIssue(8, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("b")})
	require.NoError(t, err)
	assert.Equal(t, int64(1), a.IID)
	assert.Equal(t, int64(1), b.IID)
	assert.NotEqual(t, a.ID, b.ID)
	resp, body := rawGet(t, srv, "projects/8/issues/1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	assert.EqualValues(t, b.ID, m["id"], "issue JSON always carries id")
}

func TestPagination(t *testing.T) {
	srv, c := newProject(t)
	for i := range 45 {
		srv.AddIssue(7, gitlabtest.Issue{Title: fmt.Sprintf("issue %d", i+1)})
	}
	opt := &gitlab.ListProjectIssuesOptions{ListOptions: gitlab.ListOptions{PerPage: 20}, Sort: gitlab.Ptr("asc")}
	var all []*gitlab.Issue
	var pages []int64
	for {
		is, resp, err := c.Issues.ListProjectIssues(7, opt)
		require.NoError(t, err)
		all = append(all, is...)
		pages = append(pages, resp.CurrentPage)
		assert.Equal(t, int64(45), resp.TotalItems)
		assert.Equal(t, int64(3), resp.TotalPages)
		assert.Equal(t, int64(20), resp.ItemsPerPage)
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	assert.Equal(t, []int64{1, 2, 3}, pages)
	require.Len(t, all, 45)
	assert.Equal(t, "issue 1", all[0].Title)
	assert.Equal(t, "issue 45", all[44].Title)

	resp, _ := rawGet(t, srv, "projects/7/issues?page=2&per_page=20&sort=asc")
	h := resp.Header
	assert.Equal(t, "2", h.Get("X-Page"))
	assert.Equal(t, "3", h.Get("X-Next-Page"))
	assert.Equal(t, "1", h.Get("X-Prev-Page"))
	link := h.Get("Link")
	for _, rel := range []string{`rel="prev"`, `rel="next"`, `rel="first"`, `rel="last"`} {
		assert.Contains(t, link, rel)
	}
	assert.Contains(t, link, srv.URL()+"/api/v4/projects/7/issues?page=3&per_page=20&sort=asc>; rel=\"next\"")

	resp, _ = rawGet(t, srv, "projects/7/issues?page=3&per_page=20")
	assert.Equal(t, "", resp.Header.Get("X-Next-Page"), "last page has an empty X-Next-Page")
	assert.NotContains(t, resp.Header.Get("Link"), `rel="next"`)

	resp, body := rawGet(t, srv, "projects/7/issues?per_page=500")
	assert.Equal(t, "100", resp.Header.Get("X-Per-Page"), "per_page is capped at 100")
	var list []any
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Len(t, list, 45)

	resp, body = rawGet(t, srv, "projects/7/issues?page=9")
	assert.Equal(t, "[]", string(body), "a page past the end is empty")
	assert.Equal(t, "45", resp.Header.Get("X-Total"))
	assert.Equal(t, "", resp.Header.Get("X-Prev-Page"), "a page past the end has no previous page")
	assert.Equal(t, "", resp.Header.Get("X-Next-Page"))

	empty := gitlabtest.NewServer(t)
	empty.AddProject(gitlabtest.Project{ID: 1})
	resp, body = rawGet(t, empty, "projects/1/issues")
	assert.Equal(t, "[]", string(body))
	assert.Equal(t, "0", resp.Header.Get("X-Total"))
	assert.Equal(t, "1", resp.Header.Get("X-Total-Pages"), "GitLab reports at least one page")

	// Above 10,000 rows GitLab stops counting.
	big := gitlabtest.NewServer(t)
	big.AddProject(gitlabtest.Project{ID: 1})
	c0 := big.SetFile(1, "main", "a", []byte("a"))
	for i := range 10001 {
		big.AddTag(1, gitlabtest.Tag{Name: fmt.Sprintf("v0.0.%d", i), Commit: c0.SHA})
	}
	resp, _ = rawGet(t, big, "projects/1/repository/tags?per_page=100")
	assert.Empty(t, resp.Header.Values("X-Total"))
	assert.Empty(t, resp.Header.Values("X-Total-Pages"))
	assert.Equal(t, "2", resp.Header.Get("X-Next-Page"))
	assert.NotContains(t, resp.Header.Get("Link"), `rel="last"`)

	// client-go's own pagination helper walks every page.
	n := 0
	for is, err := range gitlab.Scan2(func(p gitlab.PaginationOptionFunc) ([]*gitlab.Issue, *gitlab.Response, error) {
		return c.Issues.ListProjectIssues(7, &gitlab.ListProjectIssuesOptions{ListOptions: gitlab.ListOptions{PerPage: 10}}, p)
	}) {
		require.NoError(t, err)
		_ = is
		n++
	}
	assert.Equal(t, 45, n)
}

func TestMergeRequests(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "main", "VERSION", []byte("1\n"))
	head := srv.SetFile(7, "42-fix-login", "VERSION", []byte("2\n"))
	for i := range 3 {
		srv.AddIssue(7, gitlabtest.Issue{Title: fmt.Sprintf("i%d", i+1)})
	}
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{
		Title: "Fix login", SourceBranch: "42-fix-login", ClosesIssues: []int64{1, 2}, RelatedIssues: []int64{3},
		Labels: []string{"backend"},
	})
	srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Other", SourceBranch: "x", State: "merged"})

	got, _, err := c.MergeRequests.GetMergeRequest(7, mr.IID, nil)
	require.NoError(t, err)
	assert.Equal(t, mr.ID, got.ID)
	assert.Equal(t, "42-fix-login", got.SourceBranch)
	assert.Equal(t, "main", got.TargetBranch)
	assert.Equal(t, head.SHA, got.SHA)
	assert.Equal(t, gitlab.Labels{"backend"}, got.Labels)

	closes, _, err := c.MergeRequests.GetIssuesClosedOnMerge(7, mr.IID, nil)
	require.NoError(t, err)
	require.Len(t, closes, 2)
	assert.Equal(t, []int64{1, 2}, []int64{closes[0].IID, closes[1].IID})
	related, _, err := c.MergeRequests.ListRelatedIssues(7, mr.IID, nil)
	require.NoError(t, err)
	require.Len(t, related, 1)
	assert.Equal(t, int64(3), related[0].IID)

	list, _, err := c.MergeRequests.ListProjectMergeRequests(7, &gitlab.ListProjectMergeRequestsOptions{State: gitlab.Ptr("opened")})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "Fix login", list[0].Title)
	list, _, err = c.MergeRequests.ListProjectMergeRequests(7, nil)
	require.NoError(t, err)
	assert.Len(t, list, 2)

	upd, _, err := c.MergeRequests.UpdateMergeRequest(7, mr.IID, &gitlab.UpdateMergeRequestOptions{
		AddLabels: &gitlab.LabelOptions{"reviewed"}, Title: gitlab.Ptr("Fix login flow"),
	})
	require.NoError(t, err)
	assert.Equal(t, gitlab.Labels{"backend", "reviewed"}, upd.Labels)
	assert.Equal(t, "Fix login flow", srv.MergeRequests(7)[0].Title)

	_, _, err = c.MergeRequests.GetMergeRequest(7, 99, nil)
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
}

func TestNotesFull(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "f"})
	human := srv.AddUser(gitlabtest.User{Username: "alice"}, "alice-token")
	alice, err := gitlab.NewClient("alice-token", gitlab.WithBaseURL(srv.URL()+"/api/v4"))
	require.NoError(t, err)

	// confidential is the legacy spelling of internal.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		srv.URL()+"/api/v4/projects/7/issues/1/notes", strings.NewReader(`{"body":"legacy","confidential":true}`))
	require.NoError(t, err)
	req.Header.Set("Private-Token", srv.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)

	a, _, err := alice.Notes.CreateMergeRequestNote(7, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("from alice")})
	require.NoError(t, err)
	assert.Equal(t, human.ID, a.Author.ID)
	b, _, err := c.Notes.CreateMergeRequestNote(7, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("from bot")})
	require.NoError(t, err)

	_, _, err = c.Notes.UpdateMergeRequestNote(7, mr.IID, a.ID, &gitlab.UpdateMergeRequestNoteOptions{Body: gitlab.Ptr("hijack")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er, "only the author may edit a note")
	assert.Equal(t, http.StatusForbidden, er.Response.StatusCode)

	list, _, err := c.Notes.ListMergeRequestNotes(7, mr.IID, &gitlab.ListMergeRequestNotesOptions{Sort: gitlab.Ptr("asc")})
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, []string{"from alice", "from bot"}, []string{list[0].Body, list[1].Body})
	list, _, err = c.Notes.ListMergeRequestNotes(7, mr.IID, nil)
	require.NoError(t, err)
	assert.Equal(t, "from bot", list[0].Body, "default sort is newest first")

	one, _, err := c.Notes.GetMergeRequestNote(7, mr.IID, b.ID)
	require.NoError(t, err)
	assert.Equal(t, "MergeRequest", one.NoteableType)
	assert.Equal(t, mr.IID, one.NoteableIID)

	issueNotes, _, err := c.Notes.ListIssueNotes(7, 1, nil)
	require.NoError(t, err)
	require.Len(t, issueNotes, 1)
	assert.True(t, issueNotes[0].Internal)
	//lint:ignore SA1019 GitLab still sends the legacy field; check it too.
	assert.True(t, issueNotes[0].Confidential)
	upd, _, err := c.Notes.UpdateIssueNote(7, 1, issueNotes[0].ID, &gitlab.UpdateIssueNoteOptions{Body: gitlab.Ptr("edited")})
	require.NoError(t, err)
	assert.Equal(t, "edited", upd.Body)
	_, err = c.Notes.DeleteMergeRequestNote(7, mr.IID, b.ID)
	require.NoError(t, err)
	assert.Len(t, srv.Notes(7, gitlabtest.MergeRequestNoteable, mr.IID), 1)
	assert.Equal(t, "edited", srv.Notes(7, gitlabtest.IssueNoteable, 1)[0].Body)
}

func TestRepositoryFilesAndBranches(t *testing.T) {
	srv, c := newProject(t)
	first := srv.SetFile(7, "main", "go.mod", []byte("module x\n"))
	srv.SetFile(7, "main", "dir/sub/file.txt", []byte("hello"))
	srv.SetFile(7, "feature/x", "go.mod", []byte("module y\n"))

	for _, tc := range []struct{ ref, path, want string }{
		{"main", "go.mod", "module x\n"},
		{"feature/x", "go.mod", "module y\n"},
		{first.SHA, "go.mod", "module x\n"},
		{first.SHA[:8], "go.mod", "module x\n"},
		{"main", "dir/sub/file.txt", "hello"},
		{"", "go.mod", "module x\n"},
	} {
		t.Run(tc.ref+":"+tc.path, func(t *testing.T) {
			opt := &gitlab.GetRawFileOptions{}
			if tc.ref != "" {
				opt.Ref = gitlab.Ptr(tc.ref)
			}
			b, _, err := c.RepositoryFiles.GetRawFile(7, tc.path, opt)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(b))
		})
	}
	_, _, err := c.RepositoryFiles.GetRawFile(7, "dir/sub/file.txt", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr(first.SHA)})
	assert.ErrorIs(t, err, gitlab.ErrNotFound, "the file did not exist at the first commit")

	f, _, err := c.RepositoryFiles.GetFile(7, "dir/sub/file.txt", &gitlab.GetFileOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, "base64", f.Encoding)
	assert.Equal(t, "aGVsbG8=", f.Content)
	assert.Equal(t, "file.txt", f.FileName)
	assert.Equal(t, int64(5), f.Size)

	srv.DeleteFile(7, "main", "go.mod")
	_, _, err = c.RepositoryFiles.GetRawFile(7, "go.mod", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("main")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound)

	branches, resp, err := c.Branches.ListBranches(7, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(2), resp.TotalItems)
	require.Len(t, branches, 2)
	assert.Equal(t, "feature/x", branches[0].Name)
	assert.True(t, branches[1].Default)
	b, _, err := c.Branches.GetBranch(7, "feature/x")
	require.NoError(t, err)
	assert.Equal(t, srv.Branches(7)[0].Commit, b.Commit.ID)

	srv.DeleteBranch(7, "feature/x")
	_, _, err = c.Branches.GetBranch(7, "feature/x")
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
	_, _, err = c.RepositoryFiles.GetRawFile(7, "go.mod", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("feature/x")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound, "a deleted branch is gone as a ref")
}

func TestCommits(t *testing.T) {
	srv, c := newProject(t)
	base := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "chore: init", Paths: []string{"README.md"}})
	srv.AddTag(7, gitlabtest.Tag{Name: "tools/v1.0.0", Commit: base.SHA})
	a := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "feat(tools): add x\n\nbody", Paths: []string{"tools/x.go"}})
	b := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "fix: other", Paths: []string{"other/y.go"}})
	d := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "fix(tools): y", Paths: []string{"tools/sub/y.go", "toolsx/z.go"}})
	feat := srv.AddCommit(7, "feature", gitlabtest.Commit{Message: "wip", Paths: []string{"tools/w.go"}})

	shas := func(cs []*gitlab.Commit) []string {
		out := []string{}
		for _, x := range cs {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opt  gitlab.ListCommitsOptions
		want []string
	}{
		{"default branch, newest first", gitlab.ListCommitsOptions{}, []string{d.SHA, b.SHA, a.SHA, base.SHA}},
		{"path is a directory", gitlab.ListCommitsOptions{Path: gitlab.Ptr("tools")}, []string{d.SHA, a.SHA}},
		{"path is a file", gitlab.ListCommitsOptions{Path: gitlab.Ptr("other/y.go")}, []string{b.SHA}},
		{"ref_name a branch", gitlab.ListCommitsOptions{RefName: gitlab.Ptr("feature")}, []string{feat.SHA, d.SHA, b.SHA, a.SHA, base.SHA}},
		{"ref_name a SHA", gitlab.ListCommitsOptions{RefName: gitlab.Ptr(b.SHA)}, []string{b.SHA, a.SHA, base.SHA}},
		{"ref_name a range", gitlab.ListCommitsOptions{RefName: gitlab.Ptr("tools/v1.0.0..main")}, []string{d.SHA, b.SHA, a.SHA}},
		{"range and path", gitlab.ListCommitsOptions{RefName: gitlab.Ptr(base.SHA + "..main"), Path: gitlab.Ptr("tools/")}, []string{d.SHA, a.SHA}},
		{"since", gitlab.ListCommitsOptions{Since: gitlab.Ptr(b.CreatedAt)}, []string{d.SHA, b.SHA}},
		{"until", gitlab.ListCommitsOptions{Until: gitlab.Ptr(a.CreatedAt)}, []string{a.SHA, base.SHA}},
		{"unknown ref is empty", gitlab.ListCommitsOptions{RefName: gitlab.Ptr("nope")}, []string{}},
		{"all", gitlab.ListCommitsOptions{All: gitlab.Ptr(true)}, []string{feat.SHA, d.SHA, b.SHA, a.SHA, base.SHA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := c.Commits.ListCommits(7, &tc.opt)
			require.NoError(t, err)
			assert.Equal(t, tc.want, shas(got))
		})
	}
	page2, resp, err := c.Commits.ListCommits(7, &gitlab.ListCommitsOptions{ListOptions: gitlab.ListOptions{PerPage: 3, Page: 2}})
	require.NoError(t, err)
	assert.Equal(t, []string{base.SHA}, shas(page2))
	assert.Zero(t, resp.TotalItems, "GitLab sends no X-Total for commits")
	assert.Zero(t, resp.NextPage)
	assert.Equal(t, int64(1), resp.PreviousPage)

	one, _, err := c.Commits.GetCommit(7, a.SHA, nil)
	require.NoError(t, err)
	assert.Equal(t, "feat(tools): add x", one.Title)
	assert.Equal(t, "feat(tools): add x\n\nbody", one.Message)
	assert.Equal(t, []string{base.SHA}, one.ParentIDs)
	one, _, err = c.Commits.GetCommit(7, "main", nil)
	require.NoError(t, err)
	assert.Equal(t, d.SHA, one.ID, "GetCommit accepts a branch name")

	cmp, _, err := c.Repositories.Compare(7, &gitlab.CompareOptions{From: gitlab.Ptr("tools/v1.0.0"), To: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, []string{a.SHA, b.SHA, d.SHA}, shas(cmp.Commits), "compare lists commits oldest first")
	assert.Equal(t, d.SHA, cmp.Commit.ID)
	assert.False(t, cmp.CompareSameRef)
}

func TestTags(t *testing.T) {
	srv, c := newProject(t)
	var last gitlabtest.Commit
	for _, n := range []string{"v1.2.0", "v1.10.0", "v1.9.1", "tools/v0.1.0", "v2.0.0-rc.1"} {
		last = srv.AddCommit(7, "main", gitlabtest.Commit{Message: "release " + n})
		srv.AddTag(7, gitlabtest.Tag{Name: n, Commit: last.SHA})
	}
	names := func(ts []*gitlab.Tag) []string {
		out := []string{}
		for _, x := range ts {
			out = append(out, x.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opt  gitlab.ListTagsOptions
		want []string
	}{
		{"default: updated desc", gitlab.ListTagsOptions{}, []string{"v2.0.0-rc.1", "tools/v0.1.0", "v1.9.1", "v1.10.0", "v1.2.0"}},
		{"name asc", gitlab.ListTagsOptions{OrderBy: gitlab.Ptr("name"), Sort: gitlab.Ptr("asc")}, []string{"tools/v0.1.0", "v1.10.0", "v1.2.0", "v1.9.1", "v2.0.0-rc.1"}},
		{"version desc", gitlab.ListTagsOptions{OrderBy: gitlab.Ptr("version")}, []string{"v2.0.0-rc.1", "v1.10.0", "v1.9.1", "v1.2.0", "tools/v0.1.0"}},
		{"search ^v1", gitlab.ListTagsOptions{Search: gitlab.Ptr("^v1"), OrderBy: gitlab.Ptr("name"), Sort: gitlab.Ptr("asc")}, []string{"v1.10.0", "v1.2.0", "v1.9.1"}},
		{"search ^tools/", gitlab.ListTagsOptions{Search: gitlab.Ptr("^tools/")}, []string{"tools/v0.1.0"}},
		{"search substring", gitlab.ListTagsOptions{Search: gitlab.Ptr("1.1"), OrderBy: gitlab.Ptr("name")}, []string{"v1.10.0"}},
		{"search suffix$", gitlab.ListTagsOptions{Search: gitlab.Ptr(".0$"), OrderBy: gitlab.Ptr("name")}, []string{"v1.2.0", "v1.10.0", "tools/v0.1.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := c.Tags.ListTags(7, &tc.opt)
			require.NoError(t, err)
			assert.Equal(t, tc.want, names(got))
		})
	}

	lw, _, err := c.Tags.GetTag(7, "tools/v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, lw.Commit.ID, lw.Target, "a lightweight tag's target is the commit")
	assert.Empty(t, lw.Message)

	an, resp, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v3.0.0"), Ref: gitlab.Ptr(last.SHA), Message: gitlab.Ptr("notes")})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, last.SHA, an.Commit.ID)
	assert.NotEqual(t, last.SHA, an.Target, "an annotated tag's target is the tag object")
	assert.Equal(t, "notes", an.Message)
	got := srv.Tags(7)
	require.Len(t, got, 6)

	_, err = c.Tags.DeleteTag(7, "v3.0.0")
	require.NoError(t, err)
	_, _, err = c.Tags.GetTag(7, "v3.0.0")
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
}

func TestLabels(t *testing.T) {
	srv, c := newProject(t)
	srv.AddLabel(7, "workflow::To Do")
	l, resp, err := c.Labels.CreateLabel(7, &gitlab.CreateLabelOptions{Name: gitlab.Ptr("workflow::In Review"), Color: gitlab.Ptr("#ff0000")})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "#ff0000", l.Color)
	_, _, err = c.Labels.CreateLabel(7, &gitlab.CreateLabelOptions{Name: gitlab.Ptr("workflow::In Review"), Color: gitlab.Ptr("#ff0000")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusConflict, er.Response.StatusCode)
	assert.Contains(t, er.Message, "Label already exists")

	srv.AddIssue(7, gitlabtest.Issue{Title: "t", Labels: []string{"workflow::To Do"}})
	_, _, err = c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{AddLabels: &gitlab.LabelOptions{"workflow::in review"}})
	require.NoError(t, err)
	list, _, err := c.Labels.ListLabels(7, nil)
	require.NoError(t, err)
	var names []string
	for _, x := range list {
		names = append(names, x.Name)
	}
	assert.Equal(t, []string{"workflow::In Review", "workflow::in review", "workflow::To Do"}, names,
		"add_labels silently creates a misspelt label, as GitLab does (names are case-sensitive)")
	one, _, err := c.Labels.GetLabel(7, "workflow::To Do")
	require.NoError(t, err)
	assert.Equal(t, int64(1), one.OpenIssuesCount)
	_, err = c.Labels.DeleteLabel(7, "workflow::in review", nil)
	require.NoError(t, err)
	is, _ := srv.Issue(7, 1)
	assert.Equal(t, []string{"workflow::To Do"}, is.Labels, "a deleted label leaves the issues that had it")
	_, _, err = c.Labels.GetLabel(7, "workflow::in review")
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
	assert.Len(t, srv.Labels(7), 2)
}

func TestUploads(t *testing.T) {
	srv := gitlabtest.NewServer(t, gitlabtest.WithMaxUploadSize(1024))
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	c := srv.Client()
	up, resp, err := c.ProjectMarkdownUploads.UploadProjectMarkdown(7, bytes.NewReader([]byte("\x89PNG fake")), "screen shot.png")
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "screen shot", up.Alt)
	assert.True(t, strings.HasPrefix(up.URL, "/uploads/"), up.URL)
	assert.True(t, strings.HasSuffix(up.URL, "/screen shot.png"), up.URL)
	assert.Equal(t, "![screen shot]("+up.URL+")", up.Markdown)
	assert.Equal(t, "/-/project/7"+up.URL, up.FullPath)

	log, _, err := c.ProjectMarkdownUploads.UploadProjectMarkdown(7, strings.NewReader("log line"), "race.log")
	require.NoError(t, err)
	assert.Equal(t, "[race.log]("+log.URL+")", log.Markdown, "non-images link without !")

	_, _, err = c.ProjectMarkdownUploads.UploadProjectMarkdown(7, bytes.NewReader(make([]byte, 2048)), "big.bin")
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusRequestEntityTooLarge, er.Response.StatusCode)

	ups := srv.Uploads(7)
	require.Len(t, ups, 2)
	assert.Equal(t, "log line", string(ups[1].Content))
	body, _, err := c.ProjectMarkdownUploads.DownloadProjectMarkdownUploadBySecretAndFilename(7, ups[1].Secret, ups[1].Filename)
	require.NoError(t, err)
	assert.Equal(t, "log line", string(body))
	_, _, err = c.ProjectMarkdownUploads.DownloadProjectMarkdownUploadBySecretAndFilename(7, "0000", "race.log")
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
}

func TestFailNext(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		n          int
		opts       []gitlab.ClientOptionFunc
		wantErr    bool
		wantCalls  int
		retryAfter string
	}{
		{"500 once, retried", http.StatusInternalServerError, 1, nil, false, 2, ""},
		{"429 twice, retried", http.StatusTooManyRequests, 2, nil, false, 3, "1"},
		{"503 without retries", http.StatusServiceUnavailable, 1, []gitlab.ClientOptionFunc{gitlab.WithoutRetries()}, true, 1, ""},
		{"500 more than client retries", http.StatusInternalServerError, 10, []gitlab.ClientOptionFunc{gitlab.WithCustomRetryMax(2)}, true, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t)
			srv.AddProject(gitlabtest.Project{ID: 7})
			c := srv.Client(tc.opts...)
			srv.FailNext(tc.n, tc.status)
			_, _, err := c.Projects.GetProject(7, nil)
			if tc.wantErr {
				var er *gitlab.ErrorResponse
				require.ErrorAs(t, err, &er)
				assert.Equal(t, tc.status, er.Response.StatusCode)
			} else {
				require.NoError(t, err)
			}
			reqs := srv.Requests()
			assert.Len(t, reqs, tc.wantCalls)
			assert.Equal(t, tc.status, reqs[0].Status)
			if tc.retryAfter != "" {
				resp, _ := rawGet(t, srv, "projects/7")
				_ = resp
			}
		})
	}
	srv, _ := newProject(t)
	srv.FailNext(1, http.StatusTooManyRequests)
	resp, body := rawGet(t, srv, "projects/7")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.JSONEq(t, `{"message":"Retry later"}`, string(body))
	resp, _ = rawGet(t, srv, "projects/7")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "FailNext(1) fails one call only")
}

func TestFailWhenLeavesStateUntouched(t *testing.T) {
	srv, _ := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv.FailWhen(func(r *http.Request) (int, bool) {
		b, _ := io.ReadAll(r.Body)
		return http.StatusBadGateway, r.Method == http.MethodPost && strings.Contains(string(b), "boom")
	})
	c := srv.Client(gitlab.WithoutRetries())
	_, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("boom")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusBadGateway, er.Response.StatusCode)
	assert.Empty(t, srv.Notes(7, gitlabtest.IssueNoteable, 1), "a failed call changes nothing")
	_, _, err = c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("fine")})
	require.NoError(t, err, "FailWhen targets only matching calls, and the handler still sees the body")
	srv.ClearFailures()
	_, _, err = c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("boom")})
	require.NoError(t, err)

	// A rule may change state itself: a tag created between list and create.
	srv.SetFile(7, "main", "a", []byte("a"))
	srv.FailWhen(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/repository/tags") && len(srv.Tags(7)) == 0 {
			srv.AddTag(7, gitlabtest.Tag{Name: "v1.0.0", Commit: "main"})
		}
		return 0, false
	})
	_, _, err = c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.0.0"), Ref: gitlab.Ptr("main")})
	require.ErrorAs(t, err, &er)
	assert.Contains(t, er.Message, "Tag v1.0.0 already exists")
}

func TestLatencyStopsOnCancel(t *testing.T) {
	srv, c := newProject(t)
	srv.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Projects.GetProject(7, nil, gitlab.WithContext(ctx))
		done <- err
	}()
	cancel()
	err := <-done
	assert.ErrorIs(t, err, context.Canceled)
	srv.SetLatency(0)
	_, _, err = c.Projects.GetProject(7, nil)
	require.NoError(t, err)
}

func TestRequestsRecorded(t *testing.T) {
	srv, c := newProject(t)
	_, _, err := c.Issues.ListProjectIssues("ops/app", &gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("x y")}, gitlab.WithHeader("X-Gitlab-Event-UUID", "uuid-1"))
	require.NoError(t, err)
	_, _, err = c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("t")})
	require.NoError(t, err)
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/api/v4/projects/ops/app/issues", reqs[0].Path)
	assert.Equal(t, "/api/v4/projects/ops%2Fapp/issues", reqs[0].RawPath)
	assert.Equal(t, "x y", reqs[0].Query.Get("search"))
	assert.Contains(t, reqs[0].RawQuery, "search=x+y")
	assert.Equal(t, "uuid-1", reqs[0].Header.Get("X-Gitlab-Event-UUID"))
	assert.Equal(t, http.StatusOK, reqs[0].Status)
	assert.Equal(t, http.MethodPost, reqs[1].Method)
	assert.JSONEq(t, `{"title":"t"}`, string(reqs[1].Body))
	assert.Equal(t, http.StatusCreated, reqs[1].Status)
	srv.ResetRequests()
	assert.Empty(t, srv.Requests())
}

func TestConcurrentWriters(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "shared"})
	url, _ := receiver(t) // buffers up to 100 deliveries
	srv.AddHook(7, gitlabtest.Hook{URL: url, Events: []string{gitlabtest.NoteHook}})
	var wg sync.WaitGroup
	const n = 20
	for i := range n {
		wg.Go(func() {
			_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr(fmt.Sprint("i", i))})
			assert.NoError(t, err)
			_, _, err = c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
			assert.NoError(t, err)
			_, _, err = c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{AddLabels: &gitlab.LabelOptions{fmt.Sprint("l", i%3)}})
			assert.NoError(t, err)
			_ = srv.Issues(7)
		})
	}
	wg.Wait()
	issues := srv.Issues(7)
	require.Len(t, issues, n+1)
	seen := map[int64]bool{}
	for _, is := range issues {
		assert.False(t, seen[is.IID], "IID %d handed out twice", is.IID)
		seen[is.IID] = true
	}
	assert.Len(t, srv.Notes(7, gitlabtest.IssueNoteable, 1), n)
	assert.Equal(t, []string{"l0", "l1", "l2"}, issues[0].Labels)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	assert.Len(t, srv.Deliveries(), n, "one Note Hook per note")
}

// TestShapesMatchDocumentedExamples checks that every field of GitLab's
// documented example responses (copied from client-go's testdata) is present
// in the fake's JSON.
func TestShapesMatchDocumentedExamples(t *testing.T) {
	srv, _ := newProject(t)
	c := srv.SetFile(7, "main", "a", []byte("a"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "main"})
	for _, tc := range []struct{ fixture, path string }{
		{"get_branch", "projects/7/repository/branches/main"},
		{"get_commit", "projects/7/repository/commits/" + c.SHA},
		{"get_merge_request", "projects/7/merge_requests/1"},
		{"issue_move", "projects/7/issues/1"},
		{"get_user_bot", "user"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			want := keys(t, must2(os.ReadFile(filepath.Join("testdata", "api", tc.fixture+".json"))))
			resp, body := rawGet(t, srv, tc.path)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			got := keys(t, body)
			for k := range want {
				assert.True(t, got[k], "%s: field %q of GitLab's documented shape is missing", tc.path, k)
			}
		})
	}
}

func keys(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func must2(b []byte, err error) []byte {
	if err != nil {
		panic(errors.Join(errors.New("testdata"), err))
	}
	return b
}

func TestFileMetaDataByHEAD(t *testing.T) {
	srv, c := newProject(t)
	commit := srv.SetFile(7, "main", "pkg/VERSION", []byte("1.0.0\n"))
	md, _, err := c.RepositoryFiles.GetFileMetaData(7, "pkg/VERSION", &gitlab.GetFileMetaDataOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, "VERSION", md.FileName)
	assert.Equal(t, "pkg/VERSION", md.FilePath)
	assert.Equal(t, int64(6), md.Size)
	assert.Equal(t, commit.SHA, md.CommitID)
	assert.Equal(t, commit.SHA, md.LastCommitID)
	_, _, err = c.RepositoryFiles.GetFileMetaData(7, "nope", &gitlab.GetFileMetaDataOptions{Ref: gitlab.Ptr("main")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
}

func TestLatencyDelaysEachCall(t *testing.T) {
	srv, _ := newProject(t)
	srv.SetLatency(2 * time.Second)
	synctest.Test(t, func(t *testing.T) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/v4/projects/7", nil)
		req.Header.Set("Private-Token", srv.Token())
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			srv.ServeHTTP(rec, req)
			close(done)
		}()
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("answered before the configured latency")
		default:
		}
		time.Sleep(time.Nanosecond)
		<-done
		assert.Equal(t, http.StatusOK, rec.Code)
	})
}

func TestCreateAndMergeMergeRequest(t *testing.T) {
	srv, c := newProject(t)
	srv.SetFile(7, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(7, "12-fix", "VERSION", []byte("1.0.1\n"))
	for i := range 6 {
		srv.AddIssue(7, gitlabtest.Issue{Title: fmt.Sprint("issue ", i+1)})
	}
	mr, resp, err := c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("Fix login"), SourceBranch: gitlab.Ptr("12-fix"), TargetBranch: gitlab.Ptr("main"),
		Description: gitlab.Ptr("Closes #1, #2 and #3.\nFixes issue #5. Related to #6. closes #1"),
		Labels:      &gitlab.LabelOptions{"backend"},
	})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, int64(1), mr.IID)
	assert.Equal(t, srv.BotUser().ID, mr.Author.ID)

	_, _, err = c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("again"), SourceBranch: gitlab.Ptr("12-fix"), TargetBranch: gitlab.Ptr("main"),
	})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusConflict, er.Response.StatusCode)
	_, _, err = c.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{Title: gitlab.Ptr("x")})
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusBadRequest, er.Response.StatusCode)
	assert.Contains(t, er.Message, "source_branch is missing")

	closes, _, err := c.MergeRequests.GetIssuesClosedOnMerge(7, mr.IID, nil)
	require.NoError(t, err)
	var iids []int64
	for _, is := range closes {
		iids = append(iids, is.IID)
	}
	assert.Equal(t, []int64{1, 2, 3, 5}, iids, "closes_issues follows GitLab's closing pattern")

	merged, _, err := c.MergeRequests.AcceptMergeRequest(7, mr.IID, nil)
	require.NoError(t, err)
	assert.Equal(t, "merged", merged.State)
	assert.NotEmpty(t, merged.MergeCommitSHA)
	b, _, err := c.RepositoryFiles.GetRawFile(7, "VERSION", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, "1.0.1\n", string(b), "the target branch has the source's tree after the merge")
	main, _, err := c.Commits.GetCommit(7, "main", nil)
	require.NoError(t, err)
	assert.Len(t, main.ParentIDs, 2)

	require.NoError(t, srv.WaitDeliveries(t.Context()), "GitLab closes the issues in a background job")
	for _, is := range srv.Issues(7) {
		want := "opened"
		if slices.Contains([]int64{1, 2, 3, 5}, is.IID) {
			want = "closed"
		}
		assert.Equal(t, want, is.State, "issue #%d after the merge", is.IID)
	}
	_, _, err = c.MergeRequests.AcceptMergeRequest(7, mr.IID, nil)
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusMethodNotAllowed, er.Response.StatusCode, "merging twice")

	other := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "o", SourceBranch: "12-fix", ClosesIssues: []int64{6}})
	got := srv.MergeMergeRequest(7, other.IID)
	assert.Equal(t, "merged", got.State)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	is, _ := srv.Issue(7, 6)
	assert.Equal(t, "closed", is.State)
}

func TestFailAfterApplyDuplicatesRetriedPOSTs(t *testing.T) {
	srv, c := newProject(t)
	srv.FailNextAfterApply(1, http.StatusBadGateway)
	_, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("once")})
	require.NoError(t, err, "client-go retried the 502 and the retry succeeded")
	assert.Len(t, srv.Issues(7), 2, "the first attempt was applied although it answered 502: a duplicate")

	nc := srv.Client(gitlab.WithoutRetries())
	srv.FailAfterApplyWhen(func(r *http.Request) (int, bool) {
		return http.StatusGatewayTimeout, r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/notes")
	})
	_, _, err = nc.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusGatewayTimeout, er.Response.StatusCode)
	assert.Len(t, srv.Notes(7, gitlabtest.IssueNoteable, 1), 1, "the note exists although the client saw 504")
	reqs := srv.Requests()
	assert.Equal(t, http.StatusGatewayTimeout, reqs[len(reqs)-1].Status)
	srv.ClearFailures()
	_, _, err = nc.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("n")})
	require.NoError(t, err)
}

// TestLatencyIsConcurrent checks that injected latency delays calls side by
// side instead of one after another, so hundreds of slow calls can be in
// flight at once (the gitlabx Hooks benchmark relies on it).
func TestLatencyIsConcurrent(t *testing.T) {
	srv, _ := newProject(t)
	srv.SetLatency(2 * time.Second)
	synctest.Test(t, func(t *testing.T) {
		const n = 200
		done := make(chan int, n)
		for range n {
			go func() {
				req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v4/projects/7/issues", strings.NewReader(`{"title":"t"}`))
				req.Header.Set("Private-Token", srv.Token())
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				done <- rec.Code
			}()
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.Len(t, done, n, "all %d calls finish after one latency period", n)
		for range n {
			assert.Equal(t, http.StatusCreated, <-done)
		}
	})
	assert.Len(t, srv.Issues(7), 200)
}

func TestCloseEndsLatencyWaits(t *testing.T) {
	srv := gitlabtest.New()
	srv.AddProject(gitlabtest.Project{ID: 7})
	srv.SetLatency(time.Hour)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/api/v4/projects/7", nil)
		req.Header.Set("Private-Token", srv.Token())
		srv.ServeHTTP(rec, req) // waits out the hour unless Close ends it
		close(done)
	}()
	srv.Close()
	srv.Close() // a second Close is harmless
	<-done
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

// TestTagListCacheFollowsChanges checks that the cached tag order (which
// keeps paging through many tags cheap) never serves a stale list.
func TestTagListCacheFollowsChanges(t *testing.T) {
	srv, c := newProject(t)
	first := srv.SetFile(7, "main", "a", []byte("1"))
	srv.AddTag(7, gitlabtest.Tag{Name: "v1.0.0", Commit: first.SHA})
	srv.AddTag(7, gitlabtest.Tag{Name: "v1.1.0", Commit: first.SHA})
	names := func(opt *gitlab.ListTagsOptions) []string {
		t.Helper()
		ts, _, err := c.Tags.ListTags(7, opt)
		require.NoError(t, err)
		out := []string{}
		for _, x := range ts {
			out = append(out, x.Name)
		}
		return out
	}
	byVersion := &gitlab.ListTagsOptions{OrderBy: gitlab.Ptr("version")}
	assert.Equal(t, []string{"v1.1.0", "v1.0.0"}, names(byVersion))

	srv.AddTag(7, gitlabtest.Tag{Name: "v1.2.0", Commit: first.SHA})
	assert.Equal(t, []string{"v1.2.0", "v1.1.0", "v1.0.0"}, names(byVersion), "a seeded tag shows up")

	_, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v2.0.0"), Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, []string{"v2.0.0", "v1.2.0", "v1.1.0", "v1.0.0"}, names(byVersion), "a created tag shows up")
	assert.Equal(t, []string{"v1.0.0", "v1.1.0", "v1.2.0"}, names(&gitlab.ListTagsOptions{
		OrderBy: gitlab.Ptr("version"), Sort: gitlab.Ptr("asc"), Search: gitlab.Ptr("^v1"),
	}), "each order/search has its own entry")

	_, err = c.Tags.DeleteTag(7, "v1.2.0")
	require.NoError(t, err)
	assert.Equal(t, []string{"v2.0.0", "v1.1.0", "v1.0.0"}, names(byVersion), "a deleted tag is gone")
	assert.Equal(t, []string{"v1.0.0", "v1.1.0"}, names(&gitlab.ListTagsOptions{
		OrderBy: gitlab.Ptr("version"), Sort: gitlab.Ptr("asc"), Search: gitlab.Ptr("^v1"),
	}))
}
