package semtag_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
	"github.com/opskit/opskit/semtag/semtagtest"
)

func TestNextPreRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   semtag.Input
		tag  string
		rel  string
	}{
		{name: "first rc", in: semtag.Input{Tags: []string{"v1.2.0"}, Bump: semtag.BumpMinor, Pre: "rc"}, tag: "v1.3.0-rc.1"},
		{name: "next rc counts numerically", in: semtag.Input{Tags: []string{"v1.2.0", "v1.3.0-rc.1", "v1.3.0-rc.9", "v1.3.0-rc.10", "v1.3.0-beta.40", "v1.3.0-rc.x"}, Bump: semtag.BumpMinor, Pre: "rc"}, tag: "v1.3.0-rc.11"},
		{name: "other channel starts at 1", in: semtag.Input{Tags: []string{"v1.2.0", "v1.3.0-rc.2"}, Bump: semtag.BumpMinor, Pre: "beta"}, tag: "v1.3.0-beta.1"},
		{name: "build metadata ignored", in: semtag.Input{Tags: []string{"v1.2.0", "v1.2.1-rc.3+b7"}, Pre: "rc"}, tag: "v1.2.1-rc.4"},
		{name: "bigger bump, new core", in: semtag.Input{Tags: []string{"v1.2.0", "v1.2.1-rc.3"}, Bump: semtag.BumpMajor, Pre: "rc"}, tag: "v2.0.0-rc.1"},
		{name: "only pre-releases: same core", in: semtag.Input{Tags: []string{"v1.0.0-rc.1"}, Pre: "rc"}, tag: "v1.0.0-rc.2"},
		{name: "prefix", in: semtag.Input{Prefix: "tools/", Tags: []string{"tools/v0.1.0", "tools/v0.1.1-rc.1", "v0.1.1-rc.5"}, Pre: "rc"}, tag: "tools/v0.1.1-rc.2"},
		{name: "HEAD has an rc: re-run is a no-op", in: semtag.Input{Tags: []string{"v1.2.0", "v1.3.0-rc.1"}, HeadTags: []string{"v1.3.0-rc.1"}, Bump: semtag.BumpMinor, Pre: "rc"}, rel: "v1.3.0-rc.1"},
		{name: "finalize: no Pre tags the rc's commit", in: semtag.Input{Tags: []string{"v1.2.0", "v1.3.0-rc.2"}, HeadTags: []string{"v1.3.0-rc.2"}, Bump: semtag.BumpMinor}, tag: "v1.3.0"},
		{name: "HEAD has another channel's pre-release: tag it", in: semtag.Input{Tags: []string{"v1.2.0", "v1.2.1-beta.1"}, HeadTags: []string{"v1.2.1-beta.1"}, Pre: "rc"}, tag: "v1.2.1-rc.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := semtag.Next(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.tag, d.Tag)
			assert.Equal(t, tc.rel, d.Released)
		})
	}
	for _, bad := range []string{"r.c", "1", "rc+1", "ünï", " rc"} {
		_, err := semtag.Next(semtag.Input{Pre: bad})
		assert.ErrorIs(t, err, semtag.ErrBadPre, "Pre %q", bad)
	}
	// Rule 7 holds for pre-releases too.
	_, err := semtag.Next(semtag.Input{Tags: []string{"v1.4.0"}, Bump: semtag.BumpMajor, Pre: "rc", GoMod: []byte("module example.com/lib\n")})
	var me *semtag.ModuleMajorError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "v2.0.0-rc.1", me.Version)
}

func TestTaggerPreReleaseThenFinal(t *testing.T) {
	repo := semtagtest.NewRepo(semtagtest.History{
		Commits: []semtagtest.Commit{{Message: "initial"}, {Message: "feat: a"}},
		Tags:    []semtagtest.TagSpec{{Name: "v1.2.0", Commit: 0}},
	})
	cfg := semtag.Config{Bump: semtag.BumpConventional, Pre: "rc"}
	assert.Equal(t, "v1.3.0-rc.1", runTagger(t, repo, cfg).Tag)
	assert.Equal(t, "v1.3.0-rc.1", runTagger(t, repo, cfg).Released, "re-run on the same commit")
	repo.AddCommit(semtagtest.Commit{Message: "fix: b"})
	assert.Equal(t, "v1.3.0-rc.2", runTagger(t, repo, cfg).Tag, "the minor level still counts from v1.2.0")
	final := runTagger(t, repo, semtag.Config{Bump: semtag.BumpConventional})
	assert.Equal(t, "v1.3.0", final.Tag, "finalizing")
	assert.Equal(t, []string{"v1.3.0-rc.1", "v1.3.0-rc.2", "v1.3.0"}, repo.Created)

	// Two pipelines racing for the same rc: the loser takes the next number.
	theirs := repo.AddCommit(semtagtest.Commit{Message: "fix: c"})
	repo.AddCommit(semtagtest.Commit{Message: "fix: d"})
	repo.CreateHook = func(name, _ string) error {
		repo.CreateHook = nil
		repo.AddTag(name, theirs) // the pipeline of the previous commit wins rc.1
		return nil
	}
	res := runTagger(t, repo, cfg)
	assert.Equal(t, "v1.3.1-rc.2", res.Tag)
	assert.Equal(t, 2, res.Attempts)
}

func TestTaggerPreReleaseKeepsModuleMajorCheck(t *testing.T) {
	repo := semtagtest.NewRepo(semtagtest.History{
		Commits: []semtagtest.Commit{{Message: "initial", Files: map[string]string{"go.mod": "module example.com/lib\n"}}, {Message: "feat!: break"}},
		Tags:    []semtagtest.TagSpec{{Name: "v1.4.0", Commit: 0}},
	})
	tg, err := semtag.NewTagger(repo, semtag.Config{Bump: semtag.BumpConventional, Pre: "rc"})
	require.NoError(t, err)
	_, err = tg.Run(t.Context())
	var me *semtag.ModuleMajorError
	require.ErrorAs(t, err, &me, "v2.0.0-rc.1 of a module without /v2")
	assert.Equal(t, "v2.0.0-rc.1", me.Version)
	assert.Empty(t, repo.Created)
}

func TestTaggerReleaseNeedsReleaser(t *testing.T) {
	repo := semtagtest.NewRepo(semtagtest.History{Commits: []semtagtest.Commit{{Message: "initial"}}})
	_, err := semtag.NewTagger(repo, semtag.Config{Release: true})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = semtag.NewTagger(repo, semtag.Config{ChangelogFile: "CHANGELOG.md", ChangelogBranch: "main"})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	srv, first := newProject(t, "example.com/lib")
	_, err = semtag.NewTagger(gitlabBackend(t, srv, first), semtag.Config{ChangelogFile: "CHANGELOG.md"})
	assert.ErrorContains(t, err, "ChangelogBranch")
	_, err = semtag.NewTagger(repo, semtag.Config{Pre: "a.b"})
	assert.ErrorIs(t, err, semtag.ErrBadPre)
}

// releaseSetup is a GitLab project with v1.0.0 and a feature merged
// since, ready for v1.1.0.
func releaseSetup(t *testing.T) (*gitlabtest.Server, string) {
	t.Helper()
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v1.0.0", Commit: first, Message: "r"})
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "feat: knob\n\nSee merge request libs/lib!3", Paths: []string{"a.go"}}).SHA
	return srv, head
}

func TestGitLabReleaseOnceAcrossReruns(t *testing.T) {
	srv, head := releaseSetup(t)
	cfg := semtag.Config{Bump: semtag.BumpConventional, Release: true}

	res := runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.Equal(t, "v1.1.0", res.Tag)
	assert.True(t, res.ReleaseCreated)
	require.NotNil(t, res.Notes)
	rels := srv.Releases(pid)
	require.Len(t, rels, 1)
	assert.Equal(t, "v1.1.0", rels[0].TagName)
	assert.Equal(t, "v1.1.0", rels[0].Name)
	assert.Equal(t, res.Notes.Markdown(), rels[0].Description)
	assert.Contains(t, rels[0].Description, "### Features\n\n- knob (libs/lib!3, "+head[:8]+")")

	for range 2 {
		again := runTagger(t, gitlabBackend(t, srv, head), cfg)
		assert.Equal(t, "v1.1.0", again.Released)
		assert.False(t, again.ReleaseCreated)
		assert.False(t, again.ReleaseUpdated)
	}
	assert.Len(t, srv.Releases(pid), 1, "re-runs made another release")

	// A hand-edited release is left as is, unless UpdateRelease.
	updateReleaseDescription(t, srv, "v1.1.0", "edited by hand")
	runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.Equal(t, "edited by hand", srv.Releases(pid)[0].Description, "an existing release is left as is")
	cfg.UpdateRelease = true
	upd := runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.True(t, upd.ReleaseUpdated)
	assert.Equal(t, res.Notes.Markdown(), srv.Releases(pid)[0].Description)
	upd = runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.False(t, upd.ReleaseUpdated, "same notes: no update")
	assert.Len(t, srv.Releases(pid), 1)
}

func updateReleaseDescription(t *testing.T, srv *gitlabtest.Server, tag, desc string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL()+"/api/v4/projects/7/releases/"+tag, strings.NewReader(fmt.Sprintf(`{"description":%q}`, desc)))
	require.NoError(t, err)
	req.Header.Set("Private-Token", srv.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestGitLabReleaseRerunCompletes: the first run tagged but could not
// create the release; the re-run finds the tag on HEAD and creates it.
func TestGitLabReleaseRerunCompletes(t *testing.T) {
	srv, head := releaseSetup(t)
	cfg := semtag.Config{Bump: semtag.BumpConventional, Release: true}
	srv.FailWhen(func(r *http.Request) (int, bool) {
		return http.StatusForbidden, r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/releases")
	})
	tg, err := semtag.NewTagger(gitlabBackend(t, srv, head), cfg)
	require.NoError(t, err)
	res, err := tg.Run(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "create release v1.1.0")
	assert.True(t, res.Created, "the tag stays")
	assert.Empty(t, srv.Releases(pid))

	srv.ClearFailures()
	again := runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.Equal(t, "v1.1.0", again.Released)
	assert.True(t, again.ReleaseCreated)
	assert.Len(t, srv.Releases(pid), 1)
}

// TestGitLabReleaseRacingTaggers runs two pipelines for the same commit
// at once: one tag, one release, one changelog section, no error.
func TestGitLabReleaseRacingTaggers(t *testing.T) {
	srv, head := releaseSetup(t)
	cfg := semtag.Config{Bump: semtag.BumpConventional, Release: true, ChangelogFile: "CHANGELOG.md", ChangelogBranch: "main"}
	before := len(srv.Commits(pid, "main"))
	var wg sync.WaitGroup
	results := make([]semtag.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		tg, err := semtag.NewTagger(gitlabBackend(t, srv, head), cfg)
		require.NoError(t, err)
		wg.Go(func() { results[i], errs[i] = tg.Run(t.Context()) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	assert.Len(t, srv.Releases(pid), 1)
	assert.Equal(t, 1, btoi(results[0].ReleaseCreated)+btoi(results[1].ReleaseCreated), "exactly one pipeline created the release")
	assert.Equal(t, 1, btoi(results[0].Created)+btoi(results[1].Created), "exactly one pipeline created the tag")
	assert.Equal(t, 1, btoi(results[0].ChangelogUpdated)+btoi(results[1].ChangelogUpdated), "exactly one pipeline committed the changelog")
	assert.Len(t, srv.Commits(pid, "main"), before+1)
	file, _ := srv.File(pid, "main", "CHANGELOG.md")
	assert.Equal(t, 1, strings.Count(string(file), "<!-- semtag:v1.1.0 -->"))
}

// TestGitLabReleaseRaceAnswers: the other pipeline creates the release
// just before our POST. GitLab answers 409 when its check sees it, and
// 400 "Tag has already been taken" when both passed the check.
func TestGitLabReleaseRaceAnswers(t *testing.T) {
	for _, status := range []int{0, http.StatusBadRequest} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv, head := releaseSetup(t)
			srv.FailWhen(func(r *http.Request) (int, bool) {
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/releases") || len(srv.Releases(pid)) > 0 {
					return 0, false
				}
				srv.AddRelease(pid, gitlabtest.Release{TagName: "v1.1.0", Description: "theirs"})
				return status, status != 0
			})
			res := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{Bump: semtag.BumpConventional, Release: true})
			assert.False(t, res.ReleaseCreated)
			rels := srv.Releases(pid)
			require.Len(t, rels, 1)
			assert.Equal(t, "theirs", rels[0].Description, "left as is")
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestGitLabChangelogFile(t *testing.T) {
	srv, head := releaseSetup(t)
	cfg := semtag.Config{Bump: semtag.BumpConventional, ChangelogFile: "CHANGELOG.md", ChangelogBranch: "main"}
	res := runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.True(t, res.ChangelogUpdated)
	file, ok := srv.File(pid, "main", "CHANGELOG.md")
	require.True(t, ok)
	assert.Equal(t, "# Changelog\n\n<!-- semtag:v1.1.0 -->\n"+res.Notes.Markdown(), string(file))
	commits := srv.Commits(pid, "main")
	assert.Equal(t, "chore(release): v1.1.0 [skip ci]\n\nSemtag-Changelog: v1.1.0\n", commits[0].Message)
	assert.Equal(t, "v1.1.0", tagsOfName(srv, "v1.1.0"), "the tag stays on the released commit")

	n := len(commits)
	again := runTagger(t, gitlabBackend(t, srv, head), cfg)
	assert.False(t, again.ChangelogUpdated)
	assert.Len(t, srv.Commits(pid, "main"), n, "a re-run committed again")

	// The next release, while someone edits the file between our read
	// and our commit: we read again and keep their edit.
	next := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix: bolt", Paths: []string{"b.go"}}).SHA
	edited := false
	srv.FailWhen(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "CHANGELOG.md") && !edited {
			edited = true
			cur, _ := srv.File(pid, "main", "CHANGELOG.md")
			srv.SetFile(pid, "main", "CHANGELOG.md", append(cur, "\nEdited meanwhile.\n"...))
		}
		return 0, false
	})
	res = runTagger(t, gitlabBackend(t, srv, next), cfg)
	assert.Equal(t, "v1.1.1", res.Tag)
	assert.True(t, res.ChangelogUpdated)
	file, _ = srv.File(pid, "main", "CHANGELOG.md")
	s := string(file)
	assert.Less(t, strings.Index(s, "## v1.1.1"), strings.Index(s, "## v1.1.0"), "newest first")
	assert.Contains(t, s, "Edited meanwhile.")
	assert.Contains(t, s, "- bolt (")
	assert.NotContains(t, s, "chore(release)", "the changelog commit is not in the next notes")
	assert.Equal(t, 1, strings.Count(s, "<!-- semtag:v1.1.1 -->"))
}

func tagsOfName(srv *gitlabtest.Server, name string) string {
	for _, tg := range srv.Tags(pid) {
		if tg.Name == name {
			return tg.Name
		}
	}
	return ""
}

func TestGitLabDryRunNotes(t *testing.T) {
	srv, head := releaseSetup(t)
	res := runTagger(t, gitlabBackend(t, srv, head), semtag.Config{Bump: semtag.BumpConventional, Release: true, ChangelogFile: "CHANGELOG.md", ChangelogBranch: "main", DryRun: true})
	require.NotNil(t, res.Notes)
	assert.Equal(t, "v1.1.0", res.Notes.Tag)
	assert.Equal(t, []string{"knob"}, subjects(res.Notes.Features))
	assert.Empty(t, srv.Releases(pid))
	_, ok := srv.File(pid, "main", "CHANGELOG.md")
	assert.False(t, ok)
}
