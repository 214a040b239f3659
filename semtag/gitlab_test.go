package semtag_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
)

const pid = 7

// newProject starts a fake GitLab with project 7 whose main branch has a
// go.mod; it returns the server and the first commit's SHA.
func newProject(t testing.TB, module string) (*gitlabtest.Server, string) {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: pid, Path: "libs/lib"})
	c := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "initial", Files: map[string][]byte{"go.mod": []byte("module " + module + "\n")}})
	return srv, c.SHA
}

func gitlabBackend(t testing.TB, srv *gitlabtest.Server, commit string, opts ...gitlab.ClientOptionFunc) *semtag.GitLab {
	t.Helper()
	g, err := semtag.NewGitLab(srv.Client(opts...), semtag.GitLabConfig{Project: pid, Commit: commit})
	require.NoError(t, err)
	return g
}

func tagsOf(srv *gitlabtest.Server) map[string]string {
	m := map[string]string{}
	for _, t := range srv.Tags(pid) {
		m[t.Name] = t.Commit
	}
	return m
}

func TestGitLabTaggerFlow(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	for _, name := range []string{"v0.9.0", "v0.10.0-rc.1", "v0.2", "1.0.0", "tools/v3.0.0", "v0.9.1+build.5"} {
		srv.AddTag(pid, gitlabtest.Tag{Name: name, Commit: first})
	}
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix: x", Paths: []string{"a.go"}}).SHA
	// The branch moves on after the pipeline started: the tag must land on
	// CI_COMMIT_SHA, not on main.
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "later", Paths: []string{"b.go"}})

	repo := gitlabBackend(t, srv, head)
	res := runTagger(t, repo, semtag.Config{})
	assert.Equal(t, "v0.9.2", res.Tag)
	assert.Equal(t, "v0.9.1+build.5", res.Base)
	assert.True(t, res.Created)
	assert.Equal(t, head, tagsOf(srv)["v0.9.2"], "tag is on the exact commit")
	for _, tg := range srv.Tags(pid) {
		if tg.Name == "v0.9.2" {
			assert.Equal(t, "Release v0.9.2", tg.Message, "annotated")
		}
	}
	var posts, lists int
	for _, r := range srv.Requests() {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/repository/tags"):
			lists++
			assert.Equal(t, "^v", r.Query.Get("search"), "tags are filtered on the server")
		case r.Method == http.MethodPost:
			posts++
		}
	}
	assert.Equal(t, 1, lists)
	assert.Equal(t, 1, posts)
	assert.EqualValues(t, 2, repo.APICalls(), "one list page and one create")

	before := len(srv.Tags(pid))
	again := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{})
	assert.Equal(t, "v0.9.2", again.Released, "re-run")
	assert.Empty(t, again.Tag)
	assert.Len(t, srv.Tags(pid), before, "re-run created a tag")

	// A ref instead of a SHA is resolved once.
	dry := runTagger(t, gitlabBackend(t, srv, "main"), semtag.Config{DryRun: true, Bump: semtag.BumpMinor})
	assert.Equal(t, "v0.10.0", dry.Tag)
	assert.Len(t, srv.Tags(pid), before, "dry run created a tag")
}

func TestGitLabPrefix(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v5.0.0", Commit: first})
	srv.AddTag(pid, gitlabtest.Tag{Name: "tools/v0.3.0", Commit: first})
	srv.AddTag(pid, gitlabtest.Tag{Name: "tools/sub/v9.0.0", Commit: first})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "x", Paths: []string{"tools/a.go"}}).SHA
	srv.ResetRequests()
	res := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{Prefix: "tools/"})
	assert.Equal(t, "tools/v0.3.1", res.Tag)
	assert.Equal(t, head, tagsOf(srv)["tools/v0.3.1"])
	assert.Equal(t, "^tools/v", srv.Requests()[0].Query.Get("search"))
}

func TestGitLabPagination(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	for i := range 250 {
		srv.AddTag(pid, gitlabtest.Tag{Name: fmt.Sprintf("v1.%d.0", i), Commit: first})
	}
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "x", Paths: []string{"a"}}).SHA
	srv.ResetRequests()
	repo := gitlabBackend(t, srv, head)
	res := runTagger(t, repo, semtag.Config{DryRun: true})
	assert.Equal(t, "v1.249.1", res.Tag, "the highest tag is on the last page")
	pages := map[string]int{}
	for _, r := range srv.Requests() {
		pages[r.Query.Get("page")]++
		assert.Equal(t, "100", r.Query.Get("per_page"))
	}
	assert.Equal(t, map[string]int{"1": 1, "2": 1, "3": 1}, pages, "each page fetched exactly once")
	assert.EqualValues(t, 3, repo.APICalls())
}

func TestGitLabRace(t *testing.T) {
	tests := []struct {
		name      string
		status    int  // the create's answer when the other pipeline won; 0 = the server's own (400)
		sameSHA   bool // the other pipeline tagged our commit
		wantTag   string
		wantRel   string
		wantTries int
	}{
		{name: "other commit, GitLab's 400", wantTag: "v1.0.2", wantTries: 2},
		{name: "other commit, documented 405", status: http.StatusMethodNotAllowed, wantTag: "v1.0.2", wantTries: 2},
		{name: "same commit: done", sameSHA: true, wantRel: "v1.0.1", wantTries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, first := newProject(t, "example.com/lib")
			srv.AddTag(pid, gitlabtest.Tag{Name: "v1.0.0", Commit: first})
			theirs := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "theirs", Paths: []string{"a"}}).SHA
			ours := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "ours", Paths: []string{"b"}}).SHA
			if tt.sameSHA {
				theirs = ours
			}
			raced := false
			// Another pipeline creates v1.0.1 just before our POST arrives.
			srv.FailWhen(func(r *http.Request) (int, bool) {
				if r.Method != http.MethodPost || raced {
					return 0, false
				}
				raced = true
				srv.AddTag(pid, gitlabtest.Tag{Name: "v1.0.1", Commit: theirs, Message: "theirs"})
				return tt.status, tt.status != 0
			})
			res := runTagger(t, gitlabBackend(t, srv, ours), semtag.Config{})
			assert.Equal(t, tt.wantTag, res.Tag)
			assert.Equal(t, tt.wantRel, res.Released)
			assert.Equal(t, tt.wantTries, res.Attempts)
			tags := tagsOf(srv)
			assert.Equal(t, theirs, tags["v1.0.1"], "their tag is untouched")
			if tt.wantTag != "" {
				assert.Equal(t, ours, tags[tt.wantTag], "our tag is on our commit")
			}
			assert.Len(t, tags, map[bool]int{true: 2, false: 3}[tt.sameSHA], "tags: %v", tags)
		})
	}
}

func TestGitLabRetriedCreateIsIdempotent(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v0.1.0", Commit: first})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "x", Paths: []string{"a"}}).SHA
	// The create succeeds on the server but the answer is lost (a 502 from
	// a proxy), so client-go retries the POST and GitLab answers "exists".
	lost := false
	srv.FailWhen(func(r *http.Request) (int, bool) {
		if r.Method != http.MethodPost || lost {
			return 0, false
		}
		lost = true
		srv.AddTag(pid, gitlabtest.Tag{Name: "v0.1.1", Commit: head, Message: "Release v0.1.1"})
		return http.StatusBadGateway, true
	})
	res := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{})
	assert.Equal(t, "v0.1.1", res.Released, "our own tag, created by the lost request")
	assert.Len(t, srv.Tags(pid), 2, "no second tag")
}

func TestGitLabGoMajor(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v1.3.0", Commit: first})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "x", Paths: []string{"a"}}).SHA
	// main moves on and fixes go.mod, but our commit still has the old path.
	srv.SetFile(pid, "main", "go.mod", []byte("module example.com/lib/v2\n"))

	tg, err := semtag.NewTagger(gitlabBackend(t, srv, head), semtag.Config{Bump: semtag.BumpMajor})
	require.NoError(t, err)
	_, err = tg.Run(t.Context())
	require.ErrorIs(t, err, semtag.ErrModuleMajor, "go.mod is read at the commit being tagged")
	assert.Len(t, srv.Tags(pid), 1)

	fixed := srv.SetFile(pid, "main", "README", []byte("x")).SHA
	res := runTagger(t, gitlabBackend(t, srv, fixed), semtag.Config{Bump: semtag.BumpMajor})
	assert.Equal(t, "v2.0.0", res.Tag)
}

func TestGitLabErrors(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	t.Run("bad token", func(t *testing.T) {
		c, err := gitlab.NewClient("wrong", gitlab.WithBaseURL(srv.URL()+"/api/v4"))
		require.NoError(t, err)
		g, err := semtag.NewGitLab(c, semtag.GitLabConfig{Project: pid, Commit: first})
		require.NoError(t, err)
		tg, err := semtag.NewTagger(g, semtag.Config{})
		require.NoError(t, err)
		_, err = tg.Run(t.Context())
		var er *gitlab.ErrorResponse
		require.ErrorAs(t, err, &er)
		assert.Equal(t, http.StatusUnauthorized, er.Response.StatusCode)
		assert.NotContains(t, err.Error(), srv.Token())
	})
	t.Run("unknown ref", func(t *testing.T) {
		_, err := gitlabBackend(t, srv, "no-such-branch").Head(t.Context())
		require.ErrorIs(t, err, gitlab.ErrNotFound)
	})
	t.Run("missing tag", func(t *testing.T) {
		_, err := gitlabBackend(t, srv, first).Tag(t.Context(), "v9.9.9")
		require.ErrorIs(t, err, semtag.ErrTagNotFound)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := gitlabBackend(t, srv, first).ReadFile(t.Context(), first, "tools/go.mod")
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("bad tag name", func(t *testing.T) {
		err := gitlabBackend(t, srv, first).CreateTag(t.Context(), "bad name", first, "m")
		require.Error(t, err)
		require.NotErrorIs(t, err, semtag.ErrTagExists, "a 400 that is not about an existing tag")
	})
	t.Run("server keeps failing", func(t *testing.T) {
		srv.FailNext(100, http.StatusInternalServerError)
		defer srv.FailNext(0, 0)
		_, err := gitlabBackend(t, srv, first, gitlab.WithoutRetries()).Tags(t.Context(), "")
		require.Error(t, err)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		tg, err := semtag.NewTagger(gitlabBackend(t, srv, first), semtag.Config{})
		require.NoError(t, err)
		_, err = tg.Run(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, srv.Tags(pid))
	})
	t.Run("bad config", func(t *testing.T) {
		_, err := semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Commit: first})
		require.Error(t, err)
		_, err = semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: pid})
		require.Error(t, err)
		_, err = semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: 1.5, Commit: first})
		require.Error(t, err)
	})
}

func TestGitLabConventional(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.SetFile(pid, "main", "tools/go.mod", []byte("module example.com/lib/tools\n"))
	srv.AddTag(pid, gitlabtest.Tag{Name: "v0.3.0", Commit: first, Message: "Release v0.3.0"})
	toolsBase := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "feat(tools): first", Paths: []string{"tools/a.go"}}).SHA
	srv.AddTag(pid, gitlabtest.Tag{Name: "tools/v0.1.0", Commit: toolsBase})
	// Before the bases: would be major if the range were wrong.
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "docs: x", Paths: []string{"README"}})
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "feat: root feature", Paths: []string{"root.go"}})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix(tools): y\n\nRefs #4", Paths: []string{"tools/b.go"}}).SHA

	tests := []struct {
		prefix string
		want   string
		query  map[string]string
	}{
		{"tools/", "tools/v0.1.1", map[string]string{"ref_name": toolsBase + ".." + head, "path": "tools"}},
		{"", "v0.4.0", map[string]string{"ref_name": first + ".." + head, "path": ""}},
	}
	for _, tt := range tests {
		t.Run("prefix "+tt.prefix, func(t *testing.T) {
			srv.ResetRequests()
			res := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{Prefix: tt.prefix, Bump: semtag.BumpConventional, DryRun: true})
			assert.Equal(t, tt.want, res.Tag)
			var saw bool
			for _, r := range srv.Requests() {
				if strings.HasSuffix(r.Path, "/repository/commits") {
					saw = true
					for k, v := range tt.query {
						assert.Equal(t, v, r.Query.Get(k), "commits query %s", k)
					}
				}
			}
			assert.True(t, saw, "commits were listed")
		})
	}

	// A fix followed by 150 chores: the fix is on the second page of commits.
	srv.AddTag(pid, gitlabtest.Tag{Name: "tools/v0.1.1", Commit: head})
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix(tools): early", Paths: []string{"tools/f.go"}})
	for i := range 150 {
		srv.AddCommit(pid, "main", gitlabtest.Commit{Message: fmt.Sprintf("chore: %d", i), Paths: []string{"tools/c.go"}})
	}
	srv.ResetRequests()
	res := runTagger(t, gitlabBackend(t, srv, "main"), semtag.Config{Prefix: "tools/", Bump: semtag.BumpConventional})
	assert.Equal(t, "tools/v0.1.2", res.Tag, "the fix on page 2 counts")
	pages := map[string]int{}
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/repository/commits") {
			pages[r.Query.Get("page")]++
		}
	}
	assert.Equal(t, map[string]int{"1": 1, "2": 1}, pages, "commit pages, each once")

	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "update tools", Paths: []string{"tools/d.go"}})
	res = runTagger(t, gitlabBackend(t, srv, "main"), semtag.Config{Prefix: "tools/", Bump: semtag.BumpConventional, DryRun: true})
	assert.Empty(t, res.Tag, "a non-conventional commit releases nothing")
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "perf(tools)!: drop the cache", Paths: []string{"tools/e.go"}})
	res = runTagger(t, gitlabBackend(t, srv, "main"), semtag.Config{Prefix: "tools/", Bump: semtag.BumpConventional})
	assert.Equal(t, "tools/v1.0.0", res.Tag, "breaking change on 0.x")
}

// A server whose headers announce the same page again (a proxy caching
// headers, a broken GitLab) must not make the backend loop or refetch.
func TestGitLabPageAnnouncedTwice(t *testing.T) {
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Next-Page", "2")
		w.Header().Set("X-Page", r.URL.Query().Get("page"))
		fmt.Fprint(w, `[{"name":"v1.0.0","target":"abc","commit":{"id":"abc"}}]`)
	}))
	t.Cleanup(hs.Close)
	c, err := gitlab.NewClient("t", gitlab.WithBaseURL(hs.URL+"/api/v4"))
	require.NoError(t, err)
	g, err := semtag.NewGitLab(c, semtag.GitLabConfig{Project: pid, Commit: "main"})
	require.NoError(t, err)
	_, err = g.Tags(t.Context(), "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "page 2 again")
	assert.EqualValues(t, 2, calls.Load(), "pages 1 and 2, each once")
}

func TestGitLabConcurrentPages(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	for i := range 950 {
		srv.AddTag(pid, gitlabtest.Tag{Name: fmt.Sprintf("v0.%d.%d", i/10, i%10), Commit: first})
	}
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			srv.ResetRequests()
			g, err := semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: pid, Commit: first, Concurrency: conc})
			require.NoError(t, err)
			tags, err := g.Tags(t.Context(), "")
			require.NoError(t, err)
			assert.Len(t, tags, 950)
			pages := map[string]int{}
			for _, r := range srv.Requests() {
				pages[r.Query.Get("page")]++
			}
			assert.Len(t, pages, 10, "pages 1..10: %v", pages)
			for p, n := range pages {
				assert.Equal(t, 1, n, "page %s fetched %d times", p, n)
			}
		})
	}
	t.Run("a failing page fails the listing", func(t *testing.T) {
		srv.FailWhen(func(r *http.Request) (int, bool) {
			return http.StatusInternalServerError, r.URL.Query().Get("page") == "7"
		})
		defer srv.ClearFailures()
		g, err := semtag.NewGitLab(srv.Client(gitlab.WithoutRetries()), semtag.GitLabConfig{Project: pid, Commit: first})
		require.NoError(t, err)
		_, err = g.Tags(t.Context(), "")
		var er *gitlab.ErrorResponse
		require.ErrorAs(t, err, &er)
		assert.Equal(t, http.StatusInternalServerError, er.Response.StatusCode)
	})
}

// TestGitLabProtectedTag: when the next tag matches a protected tag
// pattern the token's user may not create, GitLab refuses it; the Tagger
// reports a permission error (ErrTagProtected) that names the tag and says
// what to do, and does not retry.
func TestGitLabProtectedTag(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v1.0.0", Commit: first})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix: x", Paths: []string{"a.go"}}).SHA
	srv.ProtectTag(pid, gitlabtest.ProtectedTag{Name: "v*"})
	tg, err := semtag.NewTagger(gitlabBackend(t, srv, head), semtag.Config{})
	require.NoError(t, err)
	res, err := tg.Run(t.Context())
	require.ErrorIs(t, err, semtag.ErrTagProtected)
	assert.NotErrorIs(t, err, semtag.ErrTagExists)
	assert.Contains(t, err.Error(), "v1.0.1")
	assert.Contains(t, err.Error(), "protected")
	assert.Equal(t, 1, res.Attempts, "a refusal is not retried")
	assert.Equal(t, map[string]string{"v1.0.0": first}, tagsOf(srv))
}
