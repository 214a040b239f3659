package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/testenv"
)

// fixture is an upstream repository and, under src/, clones of it in the
// states pull-all must tell apart, by name order:
//
//	a-clean     behind upstream; its post-merge hook sleeps, so it
//	            finishes after the others but must be printed first
//	b-dirty     behind, with a tracked change that would not block a pull
//	c-diverged  a local commit and an upstream one
//	d-noremote  git init, a commit, no remote
//	e-clean     behind upstream
//
// plus a plain directory and a file, which are not repositories.
type fixture struct {
	t        *testing.T
	git      string
	src      string
	upstream string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, git: testenv.Tool(t, "git")}
	// Nothing from the machine's or user's git config.
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	dir := t.TempDir()
	f.upstream = filepath.Join(dir, "upstream.git")
	seed := filepath.Join(dir, "seed")
	f.src = filepath.Join(dir, "src")
	require.NoError(t, os.Mkdir(f.src, 0o755))

	f.run(dir, "init", "-q", "--bare", "-b", "main", f.upstream)
	f.run(dir, "clone", "-q", f.upstream, seed)
	f.commit(seed, "README", "v1\n")
	f.run(seed, "push", "-q", "origin", "main")

	for _, n := range []string{"a-clean", "b-dirty", "c-diverged", "e-clean"} {
		f.run(dir, "clone", "-q", f.upstream, filepath.Join(f.src, n))
	}
	noRemote := filepath.Join(f.src, "d-noremote")
	f.run(dir, "init", "-q", "-b", "main", noRemote)
	f.commit(noRemote, "README", "local\n")
	require.NoError(t, os.WriteFile(filepath.Join(f.src, "b-dirty", "README"), []byte("edited\n"), 0o644))
	f.commit(filepath.Join(f.src, "c-diverged"), "local.txt", "mine\n")
	hook := filepath.Join(f.src, "a-clean", ".git", "hooks", "post-merge")
	require.NoError(t, os.WriteFile(hook, []byte("#!/bin/sh\nsleep 1\n"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(f.src, "notes"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.src, "todo.txt"), nil, 0o644))

	// Upstream moves on: every clone is now behind.
	f.commit(seed, "new.txt", "v2\n")
	f.run(seed, "push", "-q", "origin", "main")
	return f
}

func (f *fixture) run(dir string, args ...string) string {
	f.t.Helper()
	cmd := exec.Command(f.git, append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(f.t, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

func (f *fixture) commit(repo, file, content string) {
	f.t.Helper()
	require.NoError(f.t, os.WriteFile(filepath.Join(repo, file), []byte(content), 0o644))
	f.run(repo, "add", file)
	f.run(repo, "commit", "-q", "-m", "change "+file)
}

func (f *fixture) head(repo string) string {
	return f.run(filepath.Join(f.src, repo), "rev-parse", "HEAD")
}

func (f *fixture) upstreamHead() string { return f.run(f.upstream, "rev-parse", "main") }

// lines returns the output's lines that start with ok or FAIL: one per
// repository pulled.
func lines(out string) []string {
	var s []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "FAIL ") {
			s = append(s, strings.Join(strings.Fields(l)[:2], " "))
		}
	}
	return s
}

func TestPullAllContinue(t *testing.T) {
	f := newFixture(t)
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-j", "8", "-continue", f.src}, &out, &errb)
	require.ErrorIs(t, err, errFailed, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	p := func(n string) string { return filepath.Join(f.src, n) }
	assert.Equal(t, []string{
		"ok " + p("a-clean"),
		"FAIL " + p("b-dirty"),
		"FAIL " + p("c-diverged"),
		"FAIL " + p("d-noremote"),
		"ok " + p("e-clean"),
	}, lines(out.String()), "one line per repository, in input order although a-clean finished last:\n%s", out.String())
	assert.Contains(t, out.String(), "b-dirty  working tree has uncommitted changes")
	assert.Contains(t, out.String(), "M README", "the dirty file is listed")
	assert.Contains(t, out.String(), "c-diverged  fatal: Not possible to fast-forward")
	assert.Contains(t, out.String(), "d-noremote  There is no tracking information")
	assert.Regexp(t, `ok +\S+/a-clean  updated [0-9a-f]+\.\.[0-9a-f]+ \(1 file changed, 1 insertion\(\+\)\)\n`, out.String())
	assert.Contains(t, out.String(), "3 of 5 repositories failed:\n  "+p("b-dirty")+"\n  "+p("c-diverged")+"\n  "+p("d-noremote")+"\n")
	assert.NotContains(t, out.String(), "\x1b[", "no color when stdout is not a terminal")

	up := f.upstreamHead()
	assert.Equal(t, up, f.head("a-clean"), "a-clean fast-forwarded")
	assert.Equal(t, up, f.head("e-clean"), "e-clean fast-forwarded")
	assert.NotEqual(t, up, f.head("b-dirty"), "a dirty tree is not pulled")
	b, err := os.ReadFile(p("b-dirty/README"))
	require.NoError(t, err)
	assert.Equal(t, "edited\n", string(b), "the uncommitted change is kept")
	assert.NotEqual(t, up, f.head("c-diverged"))
}

func TestPullAllStopsAtFirstFailure(t *testing.T) {
	f := newFixture(t)
	eBefore := f.head("e-clean")
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-j", "1", "-color", "always", f.src}, &out, &errb)
	require.ErrorIs(t, err, errFailed)
	p := func(n string) string { return filepath.Join(f.src, n) }
	assert.Equal(t, []string{"ok " + p("a-clean")}, lines(out.String()))
	assert.Contains(t, out.String(), "\x1b[31mFAIL\x1b[0m  \x1b[31m"+p("b-dirty")+"\x1b[0m  working tree has uncommitted changes", "the failure is printed in red")
	assert.NotContains(t, out.String(), "c-diverged", "nothing after the failure started")
	assert.Contains(t, out.String(), "stopped at the first failure: 3 of 5 repositories not pulled")
	assert.Equal(t, f.upstreamHead(), f.head("a-clean"))
	assert.Equal(t, eBefore, f.head("e-clean"), "e-clean was not pulled")
}

func TestPullAllAllClean(t *testing.T) {
	f := newFixture(t)
	other := t.TempDir()
	f.run(other, "clone", "-q", f.upstream, filepath.Join(other, "z"))
	var out, errb bytes.Buffer
	// Only the clean ones: a second parent, and a first run to update them.
	err := run(t.Context(), []string{other}, &out, &errb)
	require.NoError(t, err, out.String())
	assert.Equal(t, "ok    "+filepath.Join(other, "z")+"  Already up to date.\n", out.String())
}

func TestPullAllUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{nil, {"-j", "0", dir}, {"-color", "blue", dir}} {
		var out, errb bytes.Buffer
		err := run(t.Context(), args, &out, &errb)
		assert.ErrorIs(t, err, errUsage, "args %q", args)
		assert.Contains(t, errb.String(), "Usage: pull-all")
	}
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{filepath.Join(dir, "missing")}, &out, &errb)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
