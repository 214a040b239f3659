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
	for _, args := range [][]string{{"-bogus"}, {"-url", "http://x", "-o", "f"}, {"-url", "u", "-sha256", "s", "-o", "f", "extra"}} {
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
