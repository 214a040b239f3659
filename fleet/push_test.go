package fleet_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

func TestPush(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	executors := map[string]fleet.Executor{"ssh": r.executor(t, nil), "local": &fleet.Local{}}
	for name, ex := range executors {
		t.Run(name, func(t *testing.T) {
			host := r.srv.Addr()
			src := filepath.Join(t.TempDir(), "app")
			content := bytes.Repeat([]byte("opskit binary\n"), 100000)
			require.NoError(t, os.WriteFile(src, content, 0o600))
			dst := filepath.Join(t.TempDir(), "app")
			want := sha256.Sum256(content)

			res, err := fleet.Push(t.Context(), ex, host, src, dst, 0o755)
			require.NoError(t, err)
			assert.False(t, res.Skipped)
			assert.Equal(t, int64(len(content)), res.Bytes)
			assert.Equal(t, hex.EncodeToString(want[:]), res.SHA256)
			got, err := os.ReadFile(dst)
			require.NoError(t, err)
			assert.Equal(t, content, got)
			fi, err := os.Stat(dst)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

			// Same content again: nothing sent, mode still set.
			require.NoError(t, os.Chmod(dst, 0o700))
			res, err = fleet.Push(t.Context(), ex, host, src, dst, 0o755)
			require.NoError(t, err)
			assert.True(t, res.Skipped)
			assert.Zero(t, res.Bytes)
			fi, _ = os.Stat(dst)
			assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

			// No temporary files are left beside dst.
			entries, _ := os.ReadDir(filepath.Dir(dst))
			assert.Len(t, entries, 1)
		})
	}
}

// corruptingExecutor flips a byte of stdin on its way, as a broken link
// or disk would.
type corruptingExecutor struct{ fleet.Local }

func (c *corruptingExecutor) Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
	if cmd.Stdin != nil {
		b := new(bytes.Buffer)
		b.ReadFrom(cmd.Stdin)
		data := b.Bytes()
		data[len(data)/2] ^= 1
		cmd.Stdin = bytes.NewReader(data)
	}
	return c.Local.Run(ctx, cmd)
}

func TestPushBadInput(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	require.NoError(t, os.WriteFile(src, []byte("new content"), 0o600))
	dst := filepath.Join(dir, "dst")
	require.NoError(t, os.WriteFile(dst, []byte("old content"), 0o644))

	_, err := fleet.Push(t.Context(), &corruptingExecutor{}, "localhost", src, dst, 0o644)
	require.ErrorIs(t, err, fleet.ErrChecksumMismatch)
	got, _ := os.ReadFile(dst)
	assert.Equal(t, "old content", string(got), "dst after a corrupted push")
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 2, "no temporary file left")

	_, err = fleet.Push(t.Context(), &fleet.Local{}, "localhost", filepath.Join(dir, "missing"), dst, 0o644)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = fleet.Push(t.Context(), &fleet.Local{}, "localhost", dir, dst, 0o644)
	require.ErrorContains(t, err, "not a regular file")
	_, err = fleet.Push(t.Context(), &fleet.Local{}, "localhost", src, "/tmp/", 0o644)
	require.ErrorContains(t, err, "not a file path")
	_, err = fleet.Push(t.Context(), &fleet.Local{}, "localhost", src, filepath.Join(dir, "no", "such", "dir", "f"), 0o644)
	var ee *fleet.ExitError
	require.ErrorAs(t, err, &ee)
	assert.True(t, strings.Contains(string(ee.Stderr), "mktemp"), "stderr %q", ee.Stderr)
}
