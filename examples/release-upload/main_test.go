package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release/releasetest"
)

func TestRunFlags(t *testing.T) {
	var out, errb bytes.Buffer
	assert.ErrorIs(t, run(t.Context(), []string{"-h"}, &out, &errb), flag.ErrHelp)
	assert.Contains(t, errb.String(), "Usage: release-upload")
	for _, args := range [][]string{
		{"-bogus"},
		{"-url", "http://x", "-product", "p", "-version", "1"},                        // no FILE
		{"-url", "http://x", "-product", "p", "FILE"},                                 // no version
		{"-url", "http://x", "-product", "p", "-version", "1", "A", "B"},              // two files
		{"-url", "http://x", "-product", "p", "-version", "1", "-progress", "x", "F"}, // bad -progress
	} {
		assert.ErrorIs(t, run(t.Context(), args, &out, &errb), errUsage, "run(%q)", args)
	}
}

func TestRunUploads(t *testing.T) {
	srv := releasetest.NewServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "release.tgz")
	require.NoError(t, os.WriteFile(file, []byte(strings.Repeat("r", 3<<20)), 0o644))
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte(string(releasetest.DefaultSecret)+"\n"), 0o600))
	changelog := filepath.Join(dir, "CHANGELOG")
	require.NoError(t, os.WriteFile(changelog, []byte("it's $(new)\n"), 0o644))

	args := []string{"-url", srv.UploadURL(), "-secret-file", secret, "-product", "app", "-version", "1.2.3",
		"-tag", "v1.2.3", "-build", "7", "-revision", "3", "-commit", "abc", "-log-file", changelog, "-rpms",
		"-progress", "always", file}
	var out, errb bytes.Buffer
	require.NoError(t, run(t.Context(), args, &out, &errb), "stderr: %s", errb.String())
	assert.Regexp(t, `^stored app 1\.2\.3 sha256=[0-9a-f]{64} size=3145728\n$`, out.String())
	assert.Contains(t, errb.String(), "100% 3.0 MiB / 3.0 MiB", "progress line")

	rels := srv.Releases()
	require.Len(t, rels, 1)
	assert.Equal(t, "it's $(new)\n", rels[0].Log)
	assert.True(t, rels[0].RPMs)
	assert.Equal(t, "v1.2.3", rels[0].Tag)

	out.Reset()
	require.NoError(t, run(t.Context(), args, &out, &errb))
	assert.True(t, strings.HasPrefix(out.String(), "already stored app 1.2.3 "), out.String())

	// The secret may also come from the environment; a wrong one fails.
	t.Setenv("RELEASE_SECRET", "wrong")
	out.Reset()
	err := run(t.Context(), []string{"-url", srv.UploadURL(), "-product", "app", "-version", "2", file}, &out, &errb)
	assert.ErrorContains(t, err, "unauthorized")
	assert.Empty(t, out.String())

	// A tampered transfer is not confirmed: non-nil error, exit 1.
	t.Setenv("RELEASE_SECRET", string(releasetest.DefaultSecret))
	srv.SetTamper(true)
	err = run(t.Context(), []string{"-url", srv.UploadURL(), "-product", "app", "-version", "3", file}, &out, &errb)
	assert.ErrorContains(t, err, "checksum mismatch")
}

// TestRunResume: -resume sends the file over the resumable (tus) endpoint,
// keeping its state in FILE.upload between attempts; a finished upload
// removes the state file and answers like the form upload.
func TestRunResume(t *testing.T) {
	srv := releasetest.NewServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "release.tgz")
	require.NoError(t, os.WriteFile(file, []byte(strings.Repeat("r", 1<<20)), 0o644))
	t.Setenv("RELEASE_SECRET", string(releasetest.DefaultSecret))
	args := []string{"-url", srv.UploadURL(), "-product", "app", "-version", "2.0.0", "-progress", "never", "-resume", file}
	var out, errb bytes.Buffer
	require.NoError(t, run(t.Context(), args, &out, &errb), "stderr: %s", errb.String())
	assert.Regexp(t, `^stored app 2\.0\.0 sha256=[0-9a-f]{64} size=1048576\n$`, out.String())
	assert.NoFileExists(t, file+".upload", "state file of a finished upload")
	require.Len(t, srv.Releases(), 1)
}
