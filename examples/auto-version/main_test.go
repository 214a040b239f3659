package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/testenv"
)

// newClone makes a bare "origin" with one commit and a clone of it, and
// isolates git from the machine's configuration through t.Setenv.
func newClone(t *testing.T) (clone, origin string, git func(dir string, args ...string) string) {
	gitBin := testenv.Tool(t, "git")
	home := t.TempDir()
	for k, v := range map[string]string{
		"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": home, "XDG_CONFIG_HOME": home,
		"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com",
	} {
		t.Setenv(k, v)
	}
	git = func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
		return strings.TrimSpace(string(out))
	}
	origin, clone = t.TempDir(), t.TempDir()
	git(origin, "init", "-q", "--bare", "-b", "main")
	git(clone, "clone", "-q", origin, ".")
	require.NoError(t, os.WriteFile(filepath.Join(clone, "go.mod"), []byte("module example.com/lib\n"), 0o644))
	git(clone, "add", "go.mod")
	git(clone, "commit", "-q", "-m", "initial")
	git(clone, "push", "-q", "origin", "main")
	return clone, origin, git
}

func runMain(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(t.Context(), args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

func TestIntegrationRunLocal(t *testing.T) {
	clone, origin, git := newClone(t)

	out, _, err := runMain(t, nil, "-repo-dir", clone, "-dry-run")
	require.NoError(t, err)
	assert.Equal(t, "v0.0.1\n", out, "dry run prints the tag alone on one line")
	assert.Empty(t, git(clone, "tag"), "dry run created a tag")

	out, _, err = runMain(t, nil, "-repo-dir", clone, "-remote", "origin")
	require.NoError(t, err)
	assert.Equal(t, "v0.0.1\n", out)
	assert.Equal(t, "v0.0.1", git(origin, "tag"), "pushed to origin")

	out, stderr, err := runMain(t, nil, "-repo-dir", clone, "-remote", "origin")
	require.NoError(t, err, "re-run")
	assert.Empty(t, out, "re-run on a released commit prints nothing")
	assert.Empty(t, stderr)

	git(clone, "commit", "-q", "--allow-empty", "-m", "feat: a knob")
	out, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "conventional")
	require.NoError(t, err)
	assert.Equal(t, "v0.1.0\n", out)

	git(clone, "commit", "-q", "--allow-empty", "-m", "docs: typo")
	out, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "conventional")
	require.NoError(t, err)
	assert.Empty(t, out, "nothing releasable")

	_, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "major", "-dry-run")
	require.NoError(t, err, "v1 needs no /v1")
	_, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "major")
	require.NoError(t, err)
	out, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "major", "-rev", "HEAD")
	require.NoError(t, err)
	assert.Empty(t, out)
	git(clone, "commit", "-q", "--allow-empty", "-m", "fix: x")
	_, _, err = runMain(t, nil, "-repo-dir", clone, "-bump", "major")
	require.Error(t, err, "v2 without /v2 in go.mod")
	assert.Contains(t, err.Error(), "/v2")

	out, _, err = runMain(t, nil, "-repo-dir", clone, "-prefix", "tools/", "-dry-run")
	require.NoError(t, err)
	assert.Equal(t, "tools/v0.0.1\n", out)
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want error
	}{
		{"help", nil, []string{"-h"}, flag.ErrHelp},
		{"unknown flag", nil, []string{"-nope"}, errUsage},
		{"bad bump", nil, []string{"-repo-dir", ".", "-bump", "huge"}, errUsage},
		{"bad prefix", nil, []string{"-repo-dir", ".", "-prefix", "tools"}, errUsage},
		{"extra argument", nil, []string{"-repo-dir", ".", "x"}, errUsage},
		{"no backend", nil, nil, errUsage},
		{"gitlab without token", map[string]string{"CI_SERVER_URL": "http://127.0.0.1:1", "CI_PROJECT_ID": "7", "CI_COMMIT_SHA": "abc"}, nil, errUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runMain(t, tt.env, tt.args...)
			require.True(t, errors.Is(err, tt.want), "run(%q) = %v; want %v", tt.args, err, tt.want)
			assert.Empty(t, out)
		})
	}
	_, _, err := runMain(t, nil, "-repo-dir", filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	assert.False(t, errors.Is(err, errUsage), "a missing dir is a runtime error (exit 1)")
}

func TestRunGitLabCI(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 42, Path: "libs/lib"})
	first := srv.AddCommit(42, "main", gitlabtest.Commit{Message: "initial", Files: map[string][]byte{"go.mod": []byte("module example.com/lib\n")}})
	srv.AddTag(42, gitlabtest.Tag{Name: "v0.4.1", Commit: first.SHA})
	head := srv.AddCommit(42, "main", gitlabtest.Commit{Message: "feat: x", Paths: []string{"x.go"}})
	srv.AddCommit(42, "main", gitlabtest.Commit{Message: "later", Paths: []string{"y.go"}})
	ci := map[string]string{
		"CI_SERVER_URL": srv.URL(), "CI_PROJECT_ID": "42", "CI_COMMIT_SHA": head.SHA, "PRIVATE_TOKEN": srv.Token(),
	}

	out, _, err := runMain(t, ci, "-bump", "conventional", "-dry-run")
	require.NoError(t, err)
	assert.Equal(t, "v0.5.0\n", out)
	assert.Len(t, srv.Tags(42), 1, "dry run created a tag")

	out, stderr, err := runMain(t, ci, "-bump", "conventional")
	require.NoError(t, err, stderr)
	assert.Equal(t, "v0.5.0\n", out)
	var onHead bool
	for _, tg := range srv.Tags(42) {
		onHead = onHead || (tg.Name == "v0.5.0" && tg.Commit == head.SHA)
	}
	assert.True(t, onHead, "v0.5.0 is on CI_COMMIT_SHA, not on main: %+v", srv.Tags(42))

	out, _, err = runMain(t, ci, "-bump", "conventional")
	require.NoError(t, err)
	assert.Empty(t, out, "re-run prints nothing")
	assert.Len(t, srv.Tags(42), 2)

	// The token from a file, the project by path, flags over env.
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(srv.Token()+"\n"), 0o600))
	noToken := map[string]string{"CI_SERVER_URL": srv.URL()}
	out, _, err = runMain(t, noToken, "-token-file", tokenFile, "-project", "libs/lib", "-commit", "main", "-dry-run")
	require.NoError(t, err)
	assert.Equal(t, "v0.5.1\n", out)

	_, stderr, err = runMain(t, map[string]string{"CI_SERVER_URL": srv.URL(), "CI_PROJECT_ID": "42", "CI_COMMIT_SHA": head.SHA, "PRIVATE_TOKEN": "wrong-token"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.NotContains(t, err.Error()+stderr, srv.Token())
}

func TestRunGitLabReleaseAndChangelog(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 42, Path: "libs/lib"})
	first := srv.AddCommit(42, "main", gitlabtest.Commit{Message: "initial", Files: map[string][]byte{"go.mod": []byte("module example.com/lib\n")}})
	srv.AddTag(42, gitlabtest.Tag{Name: "v1.2.0", Commit: first.SHA})
	head := srv.AddCommit(42, "main", gitlabtest.Commit{Message: "feat: knob\n\nSee merge request libs/lib!9", Paths: []string{"x.go"}})
	ci := map[string]string{
		"CI_SERVER_URL": srv.URL(), "CI_PROJECT_ID": "42", "CI_COMMIT_SHA": head.SHA, "CI_COMMIT_BRANCH": "main", "PRIVATE_TOKEN": srv.Token(),
	}
	notes := filepath.Join(t.TempDir(), "notes.md")

	out, _, err := runMain(t, ci, "-bump", "conventional", "-pre", "rc", "-release", "-dry-run", "-notes-file", notes)
	require.NoError(t, err)
	assert.Equal(t, "v1.3.0-rc.1\n", out)
	b, err := os.ReadFile(notes)
	require.NoError(t, err)
	assert.Contains(t, string(b), "## v1.3.0-rc.1\n\nChanges since v1.2.0.\n\n### Features\n\n- knob (libs/lib!9, "+head.SHA[:8]+")\n")
	assert.Empty(t, srv.Releases(42), "dry run created a release")

	for i, want := range []string{"v1.3.0-rc.1\n", ""} {
		out, stderr, err := runMain(t, ci, "-bump", "conventional", "-pre", "rc", "-release")
		require.NoError(t, err, stderr)
		assert.Equal(t, want, out, "run %d", i)
	}
	rels := srv.Releases(42)
	require.Len(t, rels, 1, "one release across re-runs")
	assert.Equal(t, "v1.3.0-rc.1", rels[0].TagName)

	// Finalize, with the changelog commit.
	out, stderr, err := runMain(t, ci, "-bump", "conventional", "-release", "-changelog")
	require.NoError(t, err, stderr)
	assert.Equal(t, "v1.3.0\n", out)
	rels = srv.Releases(42)
	require.Len(t, rels, 2)
	assert.Contains(t, rels[1].Description, "Changes since v1.2.0.", "the final's notes cover the whole release")
	file, ok := srv.File(42, "main", "CHANGELOG.md")
	require.True(t, ok)
	assert.Contains(t, string(file), "<!-- semtag:v1.3.0 -->\n## v1.3.0\n")
	n := len(srv.Commits(42, "main"))

	out, stderr, err = runMain(t, ci, "-bump", "conventional", "-release", "-changelog")
	require.NoError(t, err, stderr)
	assert.Empty(t, out, "re-run prints nothing")
	assert.Len(t, srv.Releases(42), 2)
	assert.Len(t, srv.Commits(42, "main"), n, "re-run committed the changelog again")
}

func TestRunReleaseUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-repo-dir", ".", "-release"},
		{"-repo-dir", ".", "-changelog"},
		{"-repo-dir", ".", "-pre", "r.c"},
	} {
		_, _, err := runMain(t, nil, args...)
		assert.ErrorIs(t, err, errUsage, "run(%q)", args)
	}
	ci := map[string]string{"CI_SERVER_URL": "http://127.0.0.1:1", "CI_PROJECT_ID": "7", "CI_COMMIT_SHA": "abc", "PRIVATE_TOKEN": "t"}
	_, _, err := runMain(t, ci, "-changelog")
	assert.ErrorIs(t, err, errUsage, "-changelog without a branch")
}

func TestIntegrationRunLocalNotes(t *testing.T) {
	clone, _, git := newClone(t)
	git(clone, "tag", "v0.1.0")
	git(clone, "commit", "-q", "--allow-empty", "-m", "feat: a knob\n\nSee merge request libs/lib!4")
	git(clone, "commit", "-q", "--allow-empty", "-m", "fix!: no more -x\n\nBREAKING CHANGE: use -y")
	notes := filepath.Join(t.TempDir(), "notes.md")
	out, _, err := runMain(t, nil, "-repo-dir", clone, "-bump", "conventional", "-pre", "rc", "-dry-run", "-notes-file", notes)
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0-rc.1\n", out, "a breaking change on 0.x gives v1.0.0")
	b, err := os.ReadFile(notes)
	require.NoError(t, err)
	assert.Contains(t, string(b), "## v1.0.0-rc.1\n\nChanges since v0.1.0.\n\n### Breaking changes\n\n- no more -x (")
	assert.Contains(t, string(b), "\n\n  use -y\n\n### Features\n\n- a knob (libs/lib!4, ")
	assert.Empty(t, git(clone, "tag", "-l", "v1*"), "dry run")
}
