package gitlabtest_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// releaseProject is project 7 ("ops/app") with one commit tagged v1.0.0.
func releaseProject(t *testing.T) (*gitlabtest.Server, *gitlab.Client, string) {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	c := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "initial", Files: map[string][]byte{"README.md": []byte("hi\n")}})
	srv.AddTag(7, gitlabtest.Tag{Name: "v1.0.0", Commit: c.SHA, Message: "Release v1.0.0"})
	return srv, srv.Client(gitlab.WithoutRetries()), c.SHA
}

func statusOf(err error) int {
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// TestReleasesLikeGitLab follows lib/api/releases.rb and
// Releases::CreateService/UpdateService: 409 for a second release of a
// tag, 422 for a missing tag without ref, 404s on update.
func TestReleasesLikeGitLab(t *testing.T) {
	srv, cl, sha := releaseProject(t)

	r, _, err := cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("v1.0.0"), Description: gitlab.Ptr("## v1.0.0\n")})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", r.Name, "the name defaults to the tag")
	assert.Equal(t, sha, r.Commit.ID)
	assert.Equal(t, "## v1.0.0\n", r.Description)

	_, _, err = cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("v1.0.0"), Description: gitlab.Ptr("again")})
	assert.Equal(t, http.StatusConflict, statusOf(err), "second create of the same tag: %v", err)
	assert.ErrorContains(t, err, "Release already exists")
	require.Len(t, srv.Releases(7), 1)
	assert.Equal(t, "## v1.0.0\n", srv.Releases(7)[0].Description, "a refused create changed the release")

	_, _, err = cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("v2.0.0")})
	assert.Equal(t, http.StatusUnprocessableEntity, statusOf(err), "missing tag without ref: %v", err)
	assert.ErrorContains(t, err, "Ref is not specified")

	r, _, err = cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("v2.0.0"), Ref: gitlab.Ptr("main"), Name: gitlab.Ptr("Two")})
	require.NoError(t, err, "missing tag with ref creates the tag")
	assert.Equal(t, "Two", r.Name)
	if tg, _, err := cl.Tags.GetTag(7, "v2.0.0"); assert.NoError(t, err) {
		assert.Equal(t, sha, tg.Commit.ID)
	}

	got, _, err := cl.Releases.GetRelease(7, "v1.0.0")
	require.NoError(t, err)
	assert.Equal(t, "## v1.0.0\n", got.Description)
	_, _, err = cl.Releases.GetRelease(7, "v9.9.9")
	assert.ErrorIs(t, err, gitlab.ErrNotFound)

	list, _, err := cl.Releases.ListReleases(7, nil)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "v2.0.0", list[0].TagName, "newest released_at first")

	_, _, err = cl.Releases.UpdateRelease(7, "v1.0.0", &gitlab.UpdateReleaseOptions{Name: gitlab.Ptr("One"), Description: gitlab.Ptr("new notes")})
	require.NoError(t, err)
	assert.Equal(t, "new notes", srv.Releases(7)[0].Description)
	assert.Equal(t, "One", srv.Releases(7)[0].Name)

	srv.AddTag(7, gitlabtest.Tag{Name: "v3.0.0", Commit: sha})
	_, _, err = cl.Releases.UpdateRelease(7, "v3.0.0", &gitlab.UpdateReleaseOptions{Description: gitlab.Ptr("x")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound, "update of a tag without release")
	_, _, err = cl.Releases.UpdateRelease(7, "v8.0.0", &gitlab.UpdateReleaseOptions{Description: gitlab.Ptr("x")})
	assert.ErrorIs(t, err, gitlab.ErrNotFound, "update of a missing tag")

	// Prefixed tags travel URL-encoded as one path segment.
	srv.AddTag(7, gitlabtest.Tag{Name: "tools/v0.1.0", Commit: sha})
	_, _, err = cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("tools/v0.1.0")})
	require.NoError(t, err)
	got, _, err = cl.Releases.GetRelease(7, "tools/v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, "tools/v0.1.0", got.TagName)

	_, _, err = cl.Releases.CreateRelease(7, &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr("v3.0.0"), Description: gitlab.Ptr(strings.Repeat("x", 1_000_001))})
	assert.Equal(t, http.StatusBadRequest, statusOf(err), "over-long description: %v", err)
	assert.ErrorContains(t, err, "Description is too long")
}

// TestFilesCommitLikeGitLab follows lib/api/files.rb: create refuses an
// existing file, update a missing one or one changed since last_commit_id,
// all with 400; each success is one commit on the branch.
func TestFilesCommitLikeGitLab(t *testing.T) {
	srv, cl, _ := releaseProject(t)
	before := len(srv.Commits(7, "main"))

	_, _, err := cl.RepositoryFiles.CreateFile(7, "CHANGELOG.md", &gitlab.CreateFileOptions{
		Branch: gitlab.Ptr("main"), Content: gitlab.Ptr("# Changelog\n"), CommitMessage: gitlab.Ptr("add changelog"),
	})
	require.NoError(t, err)
	content, ok := srv.File(7, "main", "CHANGELOG.md")
	require.True(t, ok)
	assert.Equal(t, "# Changelog\n", string(content))
	commits := srv.Commits(7, "main")
	require.Len(t, commits, before+1)
	assert.Equal(t, "add changelog", commits[0].Message)

	_, _, err = cl.RepositoryFiles.CreateFile(7, "CHANGELOG.md", &gitlab.CreateFileOptions{
		Branch: gitlab.Ptr("main"), Content: gitlab.Ptr("other"), CommitMessage: gitlab.Ptr("again"),
	})
	assert.Equal(t, http.StatusBadRequest, statusOf(err))
	assert.ErrorContains(t, err, "A file with this name already exists")

	f, _, err := cl.RepositoryFiles.GetFile(7, "CHANGELOG.md", &gitlab.GetFileOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	assert.Equal(t, commits[0].SHA, f.LastCommitID)

	// Someone else changes the file: the stale last_commit_id is refused.
	srv.SetFile(7, "main", "CHANGELOG.md", []byte("# Changelog\n\nby hand\n"))
	_, _, err = cl.RepositoryFiles.UpdateFile(7, "CHANGELOG.md", &gitlab.UpdateFileOptions{
		Branch: gitlab.Ptr("main"), Content: gitlab.Ptr("mine"), CommitMessage: gitlab.Ptr("update"), LastCommitID: gitlab.Ptr(f.LastCommitID),
	})
	assert.Equal(t, http.StatusBadRequest, statusOf(err))
	assert.ErrorContains(t, err, "has changed since you started editing it")
	content, _ = srv.File(7, "main", "CHANGELOG.md")
	assert.Equal(t, "# Changelog\n\nby hand\n", string(content), "a refused update changed the file")

	f, _, err = cl.RepositoryFiles.GetFile(7, "CHANGELOG.md", &gitlab.GetFileOptions{Ref: gitlab.Ptr("main")})
	require.NoError(t, err)
	_, _, err = cl.RepositoryFiles.UpdateFile(7, "CHANGELOG.md", &gitlab.UpdateFileOptions{
		Branch: gitlab.Ptr("main"), Content: gitlab.Ptr("mine"), CommitMessage: gitlab.Ptr("update"), LastCommitID: gitlab.Ptr(f.LastCommitID),
	})
	require.NoError(t, err)
	content, _ = srv.File(7, "main", "CHANGELOG.md")
	assert.Equal(t, "mine", string(content))

	_, _, err = cl.RepositoryFiles.UpdateFile(7, "NOPE.md", &gitlab.UpdateFileOptions{
		Branch: gitlab.Ptr("main"), Content: gitlab.Ptr("x"), CommitMessage: gitlab.Ptr("update"),
	})
	assert.Equal(t, http.StatusBadRequest, statusOf(err))
	assert.ErrorContains(t, err, "A file with this name doesn't exist")

	_, _, err = cl.RepositoryFiles.CreateFile(7, "docs/x.md", &gitlab.CreateFileOptions{
		Branch: gitlab.Ptr("nobranch"), Content: gitlab.Ptr("x"), CommitMessage: gitlab.Ptr("m"),
	})
	assert.Equal(t, http.StatusBadRequest, statusOf(err), "unknown branch without start_branch")
}
