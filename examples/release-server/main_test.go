package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/testenv"
	"github.com/opskit/opskit/release"
)

func TestRunFlags(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-h"}, &out, &errb)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, errb.String(), "Usage: release-server")
	for _, args := range [][]string{{"-bogus"}, {}, {"-dir", t.TempDir(), "extra"}, {"-max-size", "lots"}} {
		assert.ErrorIs(t, run(t.Context(), args, &out, &errb), errUsage, "run(%q)", args)
	}
	t.Setenv("RELEASE_SECRET", "")
	err = run(t.Context(), []string{"-dir", t.TempDir()}, &out, &errb)
	assert.ErrorContains(t, err, "no secret")
	t.Setenv("RELEASE_SECRET", "s")
	notExec := writeFile(t, "hook.sh", "#!/bin/sh\n", 0o644)
	err = run(t.Context(), []string{"-dir", t.TempDir(), "-hook", notExec}, &out, &errb)
	assert.ErrorContains(t, err, "not an executable file")
	err = run(t.Context(), []string{"-dir", t.TempDir(), "-hook", notExec + ".missing"}, &out, &errb)
	assert.ErrorContains(t, err, "no such file")
	empty := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(empty, []byte("# only a comment\n\n"), 0o600))
	err = run(t.Context(), []string{"-dir", t.TempDir(), "-secret-file", empty}, &out, &errb)
	assert.ErrorContains(t, err, "holds no secret")
	err = run(t.Context(), []string{"-dir", t.TempDir(), "-log-format", "xml"}, &out, &errb)
	assert.ErrorIs(t, err, errUsage, "an unknown -log-format")
}

// startServer runs the server with args on a free port and returns its
// base URL; the server stops at the end of the test.
func startServer(t *testing.T, args ...string) (baseURL string, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "server stderr: %s", stderr)
	baseURL, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	require.True(t, ok, "first stdout line %q", line)
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "server exit")
	})
	return baseURL, stderr
}

func writeFile(t *testing.T, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), perm))
	return p
}

func TestServerStoresRunsHookAndServes(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "hook-ran")
	hook := writeFile(t, "hook.sh", "#!/bin/sh\n. \"$1\"\necho \"$PRODUCT $VERSION $(cat \"$2\")\" > "+marker+"\necho hook says hi\n", 0o755)
	secrets := writeFile(t, "secrets", "# rotation\nold-secret\nnew-secret\n", 0o600)
	base, logs := startServer(t, "-dir", dir, "-secret-file", secrets, "-hook", hook)

	for i, s := range []release.Secret{"old-secret", "new-secret"} {
		up := &release.Uploader{URL: base + "/release", Secret: s}
		rcpt, err := up.Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball"), 7)
		require.NoError(t, err, "secret %d", i)
		assert.Equal(t, i == 0, rcpt.Created)
	}
	assert.Equal(t, "app 1.0.0 tarball\n", readFile(t, marker))
	assert.Contains(t, logs.String(), "hook says hi", "hook output is logged")
	assert.NotContains(t, logs.String(), "old-secret")

	resp, err := http.Get(base + "/releases/app/1.0.0/release.tgz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "tarball", string(body))

	_, err = (&release.Uploader{URL: base + "/release", Secret: "wrong"}).Upload(t.Context(), release.Metadata{Product: "app", Version: "2"}, strings.NewReader("x"), 1)
	assert.ErrorIs(t, err, release.ErrUnauthorized)
}

// TestIntegrationLegacyCurl runs the build servers' curl command from the
// issue, unchanged, against the real server.
func TestIntegrationLegacyCurl(t *testing.T) {
	testenv.Tool(t, "curl")
	testenv.Tool(t, "md5sum")
	dir := t.TempDir()
	t.Setenv("RELEASE_SECRET", "legacy-secret")
	base, _ := startServer(t, "-dir", dir)

	work := t.TempDir()
	content := "legacy tarball\n"
	require.NoError(t, os.WriteFile(filepath.Join(work, "release.tgz"), []byte(content), 0o644))
	changelog := "fix: it's \"quoted\" $(touch pwned) `touch pwned2`\nsecond line"
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", `curl -sS -F secret=$DEPLOY_SECRET -F product=$CI_PROJECT_NAME -F version=$VERSION -F tag=$TAG \
     -F build=$BUILD -F revision=$REVISION -F commit=$COMMIT -F file=@release.tgz \
     -F log="$CHANGELOG" -F rpms=1 -F md5=$(md5sum release.tgz | cut -d' ' -f1) $RELEASE_SERVER`)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "DEPLOY_SECRET=legacy-secret", "CI_PROJECT_NAME=legacy-app", "VERSION=2.3.4",
		"TAG=v2.3.4", "BUILD=99", "REVISION=5", "COMMIT=deadbeef", "CHANGELOG="+changelog, "RELEASE_SERVER="+base+"/release")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
	assert.Contains(t, string(out), `"product":"legacy-app","version":"2.3.4"`)

	assert.Equal(t, content, readFile(t, filepath.Join(dir, "legacy-app/2.3.4/release.tgz")))
	env := readFile(t, filepath.Join(dir, "legacy-app/2.3.4/release.env"))
	sum := md5.Sum([]byte(content))
	for _, line := range []string{"TAG='v2.3.4'", "BUILD='99'", "REVISION='5'", "COMMIT='deadbeef'", "RPMS='1'", "MD5='" + hex.EncodeToString(sum[:]) + "'"} {
		assert.Contains(t, env, line+"\n")
	}
	// Source it: the changelog comes back intact and nothing ran.
	src := exec.CommandContext(t.Context(), "/bin/sh", "-c", `. ./release.env && printf %s "$LOG"`)
	src.Dir = filepath.Join(dir, "legacy-app/2.3.4")
	got, err := src.Output()
	require.NoError(t, err)
	assert.Equal(t, changelog, string(got))
	assert.NoFileExists(t, filepath.Join(src.Dir, "pwned"))
	assert.NoFileExists(t, filepath.Join(src.Dir, "pwned2"))

	// The same command with a wrong md5 is refused with 422 and stores nothing.
	bad := exec.CommandContext(t.Context(), "/bin/sh", "-c", `curl -sS -o /dev/null -w '%{http_code}' -F secret=$DEPLOY_SECRET -F product=legacy-app -F version=9 -F file=@release.tgz -F md5=00000000000000000000000000000000 $RELEASE_SERVER`)
	bad.Dir = work
	bad.Env = cmd.Env
	code, err := bad.Output()
	require.NoError(t, err)
	assert.Equal(t, "422", string(code))
	assert.NoDirExists(t, filepath.Join(dir, "legacy-app/9"))
}

func TestServerWithoutFiles(t *testing.T) {
	t.Setenv("RELEASE_SECRET", "s")
	base, _ := startServer(t, "-dir", t.TempDir(), "-files=false")
	resp, err := http.Get(base + "/releases/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for the server's logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
