package semtag_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/testenv"
	"github.com/opskit/opskit/semtag"
)

// gitRepo is a real git repository in a temp dir, independent of the
// machine's git configuration.
type gitRepo struct {
	t   testing.TB
	git string
	dir string
	env []string
}

// gitEnv isolates git from the machine: no system or global config, fixed
// identities and dates.
func gitEnv(home string) []string {
	return []string{
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=" + home, "XDG_CONFIG_HOME=" + home,
		"GIT_AUTHOR_NAME=Tagger Test", "GIT_AUTHOR_EMAIL=tagger@example.com",
		"GIT_COMMITTER_NAME=Tagger Test", "GIT_COMMITTER_EMAIL=tagger@example.com",
		"GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
	}
}

func newGitRepo(t testing.TB, bare bool) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, git: testenv.Tool(t, "git"), dir: t.TempDir()}
	r.env = gitEnv(t.TempDir())
	args := []string{"init", "-q", "-b", "main"}
	if bare {
		args = append(args, "--bare")
	}
	r.run(append(args, ".")...)
	return r
}

// clone clones r into a new temp dir, with r as origin.
func (r *gitRepo) clone() *gitRepo {
	r.t.Helper()
	c := &gitRepo{t: r.t, git: r.git, dir: r.t.TempDir(), env: r.env}
	c.run("clone", "-q", r.dir, ".")
	return c
}

func (r *gitRepo) run(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.git, args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	require.NoError(r.t, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" content writes a default) and
// commits them with msg. It returns the new commit's SHA.
func (r *gitRepo) commit(msg string, files ...string) string {
	r.t.Helper()
	if len(files) == 0 {
		files = []string{"README"}
	}
	for _, f := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(f))
		require.NoError(r.t, os.MkdirAll(filepath.Dir(p), 0o755))
		fh, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		require.NoError(r.t, err)
		_, err = fh.WriteString(msg + "\n")
		require.NoError(r.t, err)
		require.NoError(r.t, fh.Close())
		r.run("add", "--", f)
	}
	r.run("commit", "-q", "-m", msg)
	return r.run("rev-parse", "HEAD")
}

func (r *gitRepo) writeFile(path, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(path))
	require.NoError(r.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(r.t, os.WriteFile(p, []byte(content), 0o644))
	r.run("add", "--", path)
}

func (r *gitRepo) tags() []string {
	r.t.Helper()
	out := r.run("tag", "--list")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func (r *gitRepo) backend(cfg semtag.GitConfig) *semtag.Git {
	r.t.Helper()
	cfg.Dir, cfg.Git, cfg.Env = r.dir, r.git, r.env
	g, err := semtag.NewGit(cfg)
	require.NoError(r.t, err)
	return g
}

func runTagger(t *testing.T, repo semtag.Repo, cfg semtag.Config) semtag.Result {
	t.Helper()
	tg, err := semtag.NewTagger(repo, cfg)
	require.NoError(t, err)
	res, err := tg.Run(t.Context())
	require.NoError(t, err, "Run(%+v)", cfg)
	return res
}

func TestIntegrationGitTaggerFlow(t *testing.T) {
	r := newGitRepo(t, false)
	first := r.commit("initial commit")
	// Messy tags: lightweight and annotated, other prefixes, shorthand, pre-release.
	r.run("tag", "v0.0.9", first)
	r.run("tag", "-a", "-m", "annotated", "v0.1.0", first)
	r.run("tag", "v0.2", first)
	r.run("tag", "tools/v5.0.0", first)
	r.run("tag", "v0.3.0-rc.1", first)
	head := r.commit("fix: something")

	res := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{})
	assert.Equal(t, "v0.1.1", res.Tag, "first run's tag")
	assert.True(t, res.Created)
	assert.Equal(t, "v0.1.0", res.Base)
	assert.Equal(t, head, res.Commit)
	assert.Equal(t, "tag", r.run("cat-file", "-t", "v0.1.1"), "the new tag is annotated")
	assert.Equal(t, head, r.run("rev-parse", "v0.1.1^{commit}"), "the new tag is on HEAD")
	assert.Contains(t, r.run("tag", "-l", "-n1", "v0.1.1"), "Release v0.1.1")

	again := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{})
	assert.Empty(t, again.Tag, "re-run on a released HEAD")
	assert.Equal(t, "v0.1.1", again.Released)
	assert.False(t, again.Created)
	assert.Len(t, r.tags(), 6, "re-run created no tag: %q", r.tags())

	// Dry run decides without creating.
	r.commit("another change")
	dry := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{DryRun: true, Bump: semtag.BumpMinor})
	assert.Equal(t, "v0.2.0", dry.Tag)
	assert.False(t, dry.Created)
	assert.NotContains(t, r.tags(), "v0.2.0", "dry run created a tag")

	// Rev selects an older commit; it is already released.
	old := runTagger(t, r.backend(semtag.GitConfig{Rev: head}), semtag.Config{})
	assert.Equal(t, "v0.1.1", old.Released, "Rev=%s", head)
}

func TestIntegrationGitConventionalPathFilter(t *testing.T) {
	r := newGitRepo(t, false)
	r.writeFile("tools/go.mod", "module example.com/m/tools\n")
	base := r.commit("feat: first", "tools/a.go", "main.go")
	r.run("tag", "-a", "-m", "x", "tools/v0.1.0", base)
	r.run("tag", "-a", "-m", "x", "v0.1.0", base)
	r.commit("feat(root): outside tools", "main.go")
	r.commit("fix(tools): inside tools", "tools/a.go")
	r.commit("docs: inside tools", "tools/README")

	tests := []struct {
		name   string
		prefix string
		want   string
		level  semtag.Level
	}{
		{"tools sees only its fix", "tools/", "tools/v0.1.1", semtag.LevelPatch},
		{"root sees every commit, feat wins", "", "v0.2.0", semtag.LevelMinor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{Prefix: tt.prefix, Bump: semtag.BumpConventional, DryRun: true})
			assert.Equal(t, tt.want, res.Tag)
			assert.Equal(t, tt.level, res.Level)
		})
	}

	// Only docs since the last tools tag: nothing to release.
	r.run("tag", "-a", "-m", "x", "tools/v0.1.1", "HEAD~1")
	res := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{Prefix: "tools/", Bump: semtag.BumpConventional})
	assert.Empty(t, res.Tag, "docs-only change")
	assert.Equal(t, semtag.LevelNone, res.Level)
	assert.NotContains(t, r.tags(), "tools/v0.1.2")

	g := r.backend(semtag.GitConfig{})
	commits, err := g.Commits(t.Context(), "", r.run("rev-parse", "HEAD"), "tools")
	require.NoError(t, err)
	var msgs []string
	for _, c := range commits {
		msgs = append(msgs, c.Message)
	}
	assert.Equal(t, []string{"docs: inside tools", "fix(tools): inside tools", "feat: first"}, msgs, "Commits(all, tools), newest first")
}

func TestIntegrationGitGoMajor(t *testing.T) {
	r := newGitRepo(t, false)
	r.writeFile("go.mod", "module example.com/m\n")
	r.run("tag", "v1.4.0", r.commit("first"))
	r.commit("feat!: new API")

	tg, err := semtag.NewTagger(r.backend(semtag.GitConfig{}), semtag.Config{Bump: semtag.BumpConventional})
	require.NoError(t, err)
	_, err = tg.Run(t.Context())
	require.ErrorIs(t, err, semtag.ErrModuleMajor)
	assert.Contains(t, err.Error(), `"example.com/m"`)
	assert.NotContains(t, r.tags(), "v2.0.0", "refused bump created a tag")

	override := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{Bump: semtag.BumpConventional, AllowMajorMismatch: true, DryRun: true})
	assert.Equal(t, "v2.0.0", override.Tag)

	r.writeFile("go.mod", "module example.com/m/v2\n")
	r.commit("chore: module path v2")
	ok := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{Bump: semtag.BumpConventional})
	assert.Equal(t, "v2.0.0", ok.Tag)
	assert.True(t, ok.Created)
}

// racing wraps a Repo and runs other once, right after the Tagger listed
// the tags: another pipeline acting between our read and our write.
type racing struct {
	semtag.Repo
	once  sync.Once
	other func()
}

func (r *racing) Tags(ctx context.Context, prefix string) ([]semtag.Tag, error) {
	tags, err := r.Repo.Tags(ctx, prefix)
	r.once.Do(r.other)
	return tags, err
}

func TestIntegrationGitPushToRemote(t *testing.T) {
	remote := newGitRepo(t, true)
	seed := remote.clone()
	seed.commit("initial")
	seed.run("tag", "-a", "-m", "x", "v1.0.0")
	seed.run("push", "-q", "origin", "main", "--tags")

	t.Run("push", func(t *testing.T) {
		ours := remote.clone()
		head := ours.commit("fix: ours")
		ours.run("push", "-q", "origin", "main")
		res := runTagger(t, ours.backend(semtag.GitConfig{Remote: "origin"}), semtag.Config{})
		assert.Equal(t, "v1.0.1", res.Tag)
		assert.Equal(t, head, remote.run("rev-parse", "v1.0.1^{commit}"), "the remote has the tag on our commit")
		assert.Equal(t, "tag", remote.run("cat-file", "-t", "v1.0.1"), "annotated on the remote")

		// A fresh clone without the tag still sees it through the remote.
		fresh := remote.clone()
		fresh.run("tag", "-d", "v1.0.1")
		again := runTagger(t, fresh.backend(semtag.GitConfig{Remote: "origin"}), semtag.Config{})
		assert.Equal(t, "v1.0.1", again.Released, "re-run reads tags from the remote")
	})

	t.Run("race: another pipeline tags another commit first", func(t *testing.T) {
		ours := remote.clone()
		other := remote.clone()
		otherHead := other.commit("fix: theirs")
		other.run("push", "-q", "origin", "main")
		ours.run("pull", "-q", "origin", "main")
		head := ours.commit("fix: ours")
		ours.run("push", "-q", "origin", "main")
		repo := &racing{Repo: ours.backend(semtag.GitConfig{Remote: "origin"}), other: func() {
			other.run("tag", "-a", "-m", "theirs", "v1.0.2", otherHead)
			other.run("push", "-q", "origin", "v1.0.2")
		}}
		res := runTagger(t, repo, semtag.Config{})
		assert.Equal(t, "v1.0.3", res.Tag, "recomputed after the conflict")
		assert.Equal(t, 2, res.Attempts)
		assert.Equal(t, head, remote.run("rev-parse", "v1.0.3^{commit}"))
		assert.Equal(t, otherHead, remote.run("rev-parse", "v1.0.2^{commit}"), "their tag is untouched")
		assert.NotContains(t, ours.tags(), "v1.0.2", "our clone holds no stale v1.0.2 on our commit")
	})

	t.Run("race: another pipeline tags our commit first", func(t *testing.T) {
		ours := remote.clone()
		head := ours.commit("fix: same commit, two pipelines")
		ours.run("push", "-q", "origin", "main")
		other := remote.clone()
		repo := &racing{Repo: ours.backend(semtag.GitConfig{Remote: "origin"}), other: func() {
			other.run("tag", "-a", "-m", "theirs", "v1.0.4", head)
			other.run("push", "-q", "origin", "v1.0.4")
		}}
		res := runTagger(t, repo, semtag.Config{})
		assert.Empty(t, res.Tag, "nothing more to create")
		assert.Equal(t, "v1.0.4", res.Released, "the other pipeline's tag counts as ours")
		assert.False(t, res.Created)
		assert.NotContains(t, remote.tags(), "v1.0.5")
	})
}

func TestIntegrationGitBounded(t *testing.T) {
	r := newGitRepo(t, false)
	r.commit("initial")
	other := r.clone()
	otherSHA := other.commit("elsewhere")
	r.run("fetch", "-q", other.dir, "main")
	// Every CreateTag loses: another pipeline always takes the version first.
	repo := &alwaysLose{Repo: r.backend(semtag.GitConfig{}), r: r, sha: otherSHA}
	tg, err := semtag.NewTagger(repo, semtag.Config{MaxAttempts: 3})
	require.NoError(t, err)
	res, err := tg.Run(t.Context())
	require.ErrorIs(t, err, semtag.ErrRace)
	assert.Equal(t, 3, res.Attempts)
	assert.Equal(t, []string{"v0.0.1", "v0.0.2", "v0.0.3"}, r.tags(), "only the other pipeline's tags")
}

type alwaysLose struct {
	semtag.Repo
	r   *gitRepo
	sha string
}

func (a *alwaysLose) CreateTag(ctx context.Context, name, commit, message string) error {
	a.r.run("tag", name, a.sha)
	return a.Repo.CreateTag(ctx, name, commit, message)
}

func TestIntegrationGitBadInput(t *testing.T) {
	r := newGitRepo(t, false)
	r.commit("initial")
	t.Run("missing dir", func(t *testing.T) {
		_, err := semtag.NewGit(semtag.GitConfig{Dir: filepath.Join(t.TempDir(), "nope")})
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("not a repository", func(t *testing.T) {
		g, err := semtag.NewGit(semtag.GitConfig{Dir: t.TempDir(), Git: r.git, Env: r.env})
		require.NoError(t, err)
		_, err = g.Head(t.Context())
		var ge *semtag.GitError
		require.ErrorAs(t, err, &ge)
		assert.Contains(t, ge.Stderr, "not a git repository")
	})
	t.Run("bad rev", func(t *testing.T) {
		tg, err := semtag.NewTagger(r.backend(semtag.GitConfig{Rev: "no-such-branch"}), semtag.Config{})
		require.NoError(t, err)
		_, err = tg.Run(t.Context())
		var ge *semtag.GitError
		require.ErrorAs(t, err, &ge)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		tg, err := semtag.NewTagger(r.backend(semtag.GitConfig{}), semtag.Config{})
		require.NoError(t, err)
		_, err = tg.Run(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, r.tags())
	})
	t.Run("missing tag", func(t *testing.T) {
		_, err := r.backend(semtag.GitConfig{}).Tag(t.Context(), "v9.9.9")
		require.ErrorIs(t, err, semtag.ErrTagNotFound)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := r.backend(semtag.GitConfig{}).ReadFile(t.Context(), "HEAD", "go.mod")
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("bad config", func(t *testing.T) {
		_, err := semtag.NewTagger(r.backend(semtag.GitConfig{}), semtag.Config{Prefix: "tools"})
		require.ErrorIs(t, err, semtag.ErrBadPrefix)
		_, err = semtag.NewTagger(r.backend(semtag.GitConfig{}), semtag.Config{Bump: "big"})
		require.ErrorIs(t, err, semtag.ErrBadBump)
	})
}

// A merge request's commits arrive through a merge commit whose own header
// counts for nothing; the commits on the merged branch decide.
func TestIntegrationGitConventionalMerge(t *testing.T) {
	r := newGitRepo(t, false)
	r.run("tag", "-a", "-m", "x", "v1.1.0", r.commit("initial"))
	r.run("checkout", "-q", "-b", "feature")
	r.commit("feat: a knob", "knob.go")
	r.run("checkout", "-q", "main")
	r.commit("docs: unrelated", "README")
	r.run("merge", "-q", "--no-ff", "-m", "Merge branch 'feature' into 'main'", "feature")
	res := runTagger(t, r.backend(semtag.GitConfig{}), semtag.Config{Bump: semtag.BumpConventional})
	assert.Equal(t, "v1.2.0", res.Tag, "the feat on the merged branch")
	assert.Equal(t, r.run("rev-parse", "HEAD"), r.run("rev-parse", "v1.2.0^{commit}"), "the merge commit is tagged")
}
