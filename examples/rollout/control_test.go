package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

// TestControlSubcommands steers a running -demo rollout (an hour's soak
// after its canary) through the control socket beside its journal, as a
// second terminal would.
func TestControlSubcommands(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "rollout.journal")
	control := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(t.Context(), append(args, "-journal", journal), &out, &errb)
		return out.String(), err
	}
	type result struct {
		out string
		err error
	}
	start := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			var out, errb bytes.Buffer
			err := run(t.Context(), []string{"-demo", "-soak", "1h", "-journal", journal}, &out, &errb)
			ch <- result{out.String(), err}
		}()
		return ch
	}
	// waitStatus polls `rollout status` until its output contains want.
	waitStatus := func(done <-chan result, want string) string {
		t.Helper()
		for {
			out, err := control("status")
			if err == nil && strings.Contains(out, want) {
				return out
			}
			select {
			case r := <-done:
				t.Fatalf("the rollout ended (%v) before status showed %q:\n%s", r.err, want, r.out)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	// A socket file left by a crashed rollout: no rollout answers there,
	// and the next rollout replaces it.
	require.NoError(t, os.WriteFile(socketPath(journal), nil, 0o600))
	_, err := control("status")
	require.ErrorContains(t, err, "no rollout running", "status without a rollout")

	t.Run("pause, promote, resume", func(t *testing.T) {
		done := start()
		waitStatus(done, "phase soak")
		out, err := control("pause")
		require.NoError(t, err)
		assert.Equal(t, "paused\n", out)
		_, err = control("promote")
		require.NoError(t, err)
		// Promoted, the soak is over, but the pause holds the rollout.
		out = waitStatus(done, "phase soak paused promoted")
		assert.Equal(t, 1, strings.Count(out, " succeeded "), "the canary only:\n%s", out)
		assert.Equal(t, 7, strings.Count(out, " not_started "), "no backend starts while paused:\n%s", out)
		assert.Contains(t, out, "add-to-pool      attempts=1", "the canary's last state")
		_, err = control("resume")
		require.NoError(t, err)
		r := <-done
		require.NoError(t, r.err, r.out)
		assert.Contains(t, r.out, "pool: 8 of 8 backends in rotation")
		assert.Contains(t, r.out, "end state: ESSuccess")
		_, err = control("status")
		assert.ErrorContains(t, err, "no rollout running", "the socket goes with the rollout")
	})

	t.Run("abort during the soak", func(t *testing.T) {
		done := start()
		waitStatus(done, "phase soak")
		out, err := control("abort")
		require.NoError(t, err)
		assert.Equal(t, "abort sent\n", out)
		r := <-done
		require.ErrorIs(t, r.err, workflow.ErrAborted)
		assert.Contains(t, r.out, "end state: ESCanceled")
		assert.Equal(t, 7, strings.Count(r.out, "in pool      app v1"), "only the canary was upgraded:\n%s", r.out)
	})

	var out, errb bytes.Buffer
	err = run(t.Context(), []string{"pause", "-cancel-in-flight"}, &out, &errb)
	assert.ErrorIs(t, err, errUsage, "-cancel-in-flight without abort")
}

// TestControlSocketUnavailable: a journal path too long for a unix socket
// costs the control, not the rollout.
func TestControlSocketUnavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	require.NoError(t, os.Mkdir(dir, 0o755))
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-demo", "-journal", filepath.Join(dir, "rollout.journal")}, &out, &errb)
	require.NoError(t, err, errb.String())
	assert.Contains(t, out.String(), "end state: ESSuccess")
	assert.Contains(t, errb.String(), "control: unavailable, the rollout runs without it")
}
