package gitlabtest_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

func newProject(t *testing.T) (*gitlabtest.Server, *gitlab.Client) {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	return srv, srv.Client()
}

func TestProjectByIDAndPath(t *testing.T) {
	_, c := newProject(t)
	for _, pid := range []any{7, int64(7), "7", "ops/app"} {
		p, _, err := c.Projects.GetProject(pid, nil, gitlab.WithContext(t.Context()))
		require.NoError(t, err, "GetProject(%v)", pid)
		assert.Equal(t, int64(7), p.ID)
		assert.Equal(t, "ops/app", p.PathWithNamespace)
		assert.Equal(t, "main", p.DefaultBranch)
	}
	_, resp, err := c.Projects.GetProject("ops/missing", nil)
	require.Error(t, err)
	assert.True(t, errors.Is(err, gitlab.ErrNotFound), "GetProject(missing) error = %v; want ErrNotFound", err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) {
		assert.Equal(t, "{message: 404 Project Not Found}", er.Message)
	}
}

func TestCurrentUser(t *testing.T) {
	srv, c := newProject(t)
	u, _, err := c.Users.CurrentUser()
	require.NoError(t, err)
	assert.Equal(t, srv.BotUser().ID, u.ID)
	assert.Equal(t, srv.BotUser().Username, u.Username)
	assert.True(t, u.Bot)
}

func TestIssueLifecycle(t *testing.T) {
	srv, c := newProject(t)
	srv.AddLabel(7, "bug")
	is, resp, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr("data race in cache"),
		Description: gitlab.Ptr("fingerprint abc"),
		Labels:      &gitlab.LabelOptions{"bug", "race"},
	})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.NotZero(t, is.ID)
	assert.Equal(t, int64(1), is.IID)
	assert.Equal(t, gitlab.Labels{"bug", "race"}, is.Labels)
	assert.Equal(t, "opened", is.State)

	labels := srv.Labels(7)
	require.Len(t, labels, 2, "creating an issue with a new label creates it")

	got, _, err := c.Issues.GetIssue("ops/app", 1)
	require.NoError(t, err)
	assert.Equal(t, is.ID, got.ID)

	upd, _, err := c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{
		AddLabels:    &gitlab.LabelOptions{"workflow::In Review"},
		RemoveLabels: &gitlab.LabelOptions{"race"},
		StateEvent:   gitlab.Ptr("close"),
	})
	require.NoError(t, err)
	assert.Equal(t, gitlab.Labels{"bug", "workflow::In Review"}, upd.Labels)
	assert.Equal(t, "closed", upd.State)
	assert.NotNil(t, upd.ClosedAt)
	require.NotNil(t, upd.ClosedBy)
	assert.Equal(t, srv.BotUser().ID, upd.ClosedBy.ID, "closed_by is the user who closed it")

	snap := srv.Issues(7)
	require.Len(t, snap, 1)
	assert.Equal(t, "closed", snap[0].State)
	assert.Equal(t, []string{"bug", "workflow::In Review"}, snap[0].Labels)

	upd, _, err = c.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("reopen"), Labels: &gitlab.LabelOptions{"x"}})
	require.NoError(t, err)
	assert.Equal(t, "opened", upd.State)
	assert.Equal(t, gitlab.Labels{"x"}, upd.Labels)

	_, _, err = c.Issues.GetIssue(7, 99)
	assert.ErrorIs(t, err, gitlab.ErrNotFound)
}

func TestNotes(t *testing.T) {
	srv, c := newProject(t)
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "m", SourceBranch: "feature"})

	n, _, err := c.Notes.CreateIssueNote(7, 1, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("hello"), Internal: gitlab.Ptr(true)})
	require.NoError(t, err)
	assert.True(t, n.Internal)
	n2, _, err := c.Notes.CreateMergeRequestNote(7, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("<!-- marker --> warn")})
	require.NoError(t, err)
	_, _, err = c.Notes.UpdateMergeRequestNote(7, mr.IID, n2.ID, &gitlab.UpdateMergeRequestNoteOptions{Body: gitlab.Ptr("<!-- marker --> ok")})
	require.NoError(t, err)

	list, _, err := c.Notes.ListMergeRequestNotes(7, mr.IID, nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "<!-- marker --> ok", list[0].Body)

	notes := srv.Notes(7, gitlabtest.IssueNoteable, 1)
	require.Len(t, notes, 1)
	assert.True(t, notes[0].Internal)
	assert.Equal(t, "hello", notes[0].Body)
}

func TestAuth(t *testing.T) {
	srv, _ := newProject(t)
	for _, tc := range []struct {
		name   string
		header string
		value  string
		want   int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"wrong token", "Private-Token", "nope", http.StatusUnauthorized},
		{"private token", "Private-Token", srv.Token(), http.StatusOK},
		{"bearer", "Authorization", "Bearer " + srv.Token(), http.StatusOK},
		{"job token", "JOB-TOKEN", srv.Token(), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL()+"/api/v4/projects/7", nil)
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
	c, err := gitlab.NewClient("bad", gitlab.WithBaseURL(srv.URL()+"/api/v4"))
	require.NoError(t, err)
	_, _, err = c.Projects.GetProject(7, nil)
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusUnauthorized, er.Response.StatusCode)
	assert.Equal(t, "{message: 401 Unauthorized}", er.Message, "client-go formats the body {\"message\":\"401 Unauthorized\"} this way")
}

func TestFilesTagsCommits(t *testing.T) {
	srv, c := newProject(t)
	c1 := srv.SetFile(7, "main", "VERSION", []byte("1.2.3\n"))
	srv.SetFile(7, "feature", "VERSION", []byte("1.3.0\n"))

	b, _, err := c.RepositoryFiles.GetRawFile(7, "VERSION", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("feature")})
	require.NoError(t, err)
	assert.Equal(t, "1.3.0\n", string(b))
	b, _, err = c.RepositoryFiles.GetRawFile(7, "VERSION", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, "1.2.3\n", string(b))
	_, _, err = c.RepositoryFiles.GetRawFile(7, "missing.txt", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("main")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound)

	tag, _, err := c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.2.3"), Ref: gitlab.Ptr("main"), Message: gitlab.Ptr("release")})
	require.NoError(t, err)
	assert.Equal(t, c1.SHA, tag.Commit.ID)
	_, _, err = c.Tags.CreateTag(7, &gitlab.CreateTagOptions{TagName: gitlab.Ptr("v1.2.3"), Ref: gitlab.Ptr("main")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er)
	assert.Equal(t, http.StatusBadRequest, er.Response.StatusCode)
	assert.Equal(t, "{message: Tag v1.2.3 already exists}", er.Message)

	tags := srv.Tags(7)
	require.Len(t, tags, 1)
	assert.Equal(t, "release", tags[0].Message)

	commits, _, err := c.Commits.ListCommits(7, &gitlab.ListCommitsOptions{RefName: gitlab.Ptr("feature")})
	require.NoError(t, err)
	require.Len(t, commits, 2)
	assert.Equal(t, c1.SHA, commits[1].ID)
}
