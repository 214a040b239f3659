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

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

func TestRunFlags(t *testing.T) {
	var out, errb bytes.Buffer
	assert.ErrorIs(t, run(t.Context(), []string{"-h"}, &out, &errb), flag.ErrHelp)
	assert.Contains(t, errb.String(), "Usage: release-fetch")
	for _, args := range [][]string{{"-bogus"}, {"-url", "http://x"}, {"-url", "u", "-sha256", "s", "-o", "f", "extra"}} {
		assert.ErrorIs(t, run(t.Context(), args, &out, &errb), errUsage, "run(%q)", args)
	}
}

func TestRunFetchesThenSkips(t *testing.T) {
	srv := releasetest.NewServer(t)
	rcpt, err := srv.Uploader().Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("payload"), 7)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "app.tgz")
	args := []string{"-url", srv.FileURL("app", "1.0.0"), "-sha256", rcpt.SHA256, "-o", dst}

	var out, errb bytes.Buffer
	require.NoError(t, run(t.Context(), args, &out, &errb))
	assert.Equal(t, "downloaded "+dst+" size=7\n", out.String())
	out.Reset()
	require.NoError(t, run(t.Context(), args, &out, &errb))
	assert.Equal(t, "up to date "+dst+"\n", out.String())

	// A wrong checksum fails and leaves dst as it was.
	require.NoError(t, os.WriteFile(dst, []byte("local"), 0o644))
	bad := []string{"-url", srv.FileURL("app", "1.0.0"), "-sha256", strings.Repeat("0", 64), "-o", dst}
	assert.ErrorIs(t, run(t.Context(), bad, &out, &errb), release.ErrChecksumMismatch)
	b, _ := os.ReadFile(dst)
	assert.Equal(t, "local", string(b))
	entries, _ := os.ReadDir(filepath.Dir(dst))
	assert.Len(t, entries, 1, "temp file left beside dst")
}

// TestRunModes: without -sha256 the download is verified against the
// server's Repr-Digest; -resume continues from FILE.partial; -exists keeps
// any existing FILE (existence decides, for files that change often).
func TestRunModes(t *testing.T) {
	srv := releasetest.NewServer(t)
	_, err := srv.Uploader().Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("payload"), 7)
	require.NoError(t, err)
	url := srv.FileURL("app", "1.0.0")
	dir := t.TempDir()
	var out, errb bytes.Buffer

	dst := filepath.Join(dir, "digest.tgz")
	require.NoError(t, run(t.Context(), []string{"-url", url, "-o", dst}, &out, &errb), "no -sha256: Repr-Digest")
	assert.Equal(t, "downloaded "+dst+" size=7\n", out.String())

	out.Reset()
	resumed := filepath.Join(dir, "resumed.tgz")
	require.NoError(t, os.WriteFile(resumed+".partial", []byte("pay"), 0o644)) // an interrupted download
	require.NoError(t, run(t.Context(), []string{"-url", url, "-o", resumed, "-resume"}, &out, &errb))
	b, err := os.ReadFile(resumed)
	require.NoError(t, err)
	assert.Equal(t, "payload", string(b))
	assert.NoFileExists(t, resumed+".partial")

	out.Reset()
	kept := filepath.Join(dir, "kept.tgz")
	require.NoError(t, os.WriteFile(kept, []byte("local"), 0o644))
	require.NoError(t, run(t.Context(), []string{"-url", url, "-o", kept, "-exists"}, &out, &errb))
	assert.Equal(t, "up to date "+kept+"\n", out.String())
	b, _ = os.ReadFile(kept)
	assert.Equal(t, "local", string(b), "-exists kept the file")

	assert.ErrorIs(t, run(t.Context(), []string{"-url", url, "-o", kept, "-exists", "-sha256", strings.Repeat("0", 64)}, &out, &errb), errUsage)
}
