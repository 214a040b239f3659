package fleet_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// TestHardening12EmptyHostRefused (issue 14, item 12): hosts "", "@" and
// "deploy@" used to run on 127.0.0.1 (an empty host dials this machine).
// Every executor, Group and ParseHosts refuse them with ErrInvalidHost,
// before anything connects or runs.
func TestHardening12EmptyHostRefused(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	_, port, err := splitHostPort(r.srv.Addr())
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	// The server listens on this machine at the executor's default port,
	// so an empty host would reach it.
	ex := r.executor(t, func(c *fleet.SSHConfig) { c.Port = p; c.InsecureIgnoreHostKey = true })
	invalid := []string{"", "@", "deploy@", ":" + port, "deploy@:" + port, "[]"}

	for _, h := range invalid {
		t.Run("ssh "+strconv.Quote(h), func(t *testing.T) {
			res, err := ex.Run(t.Context(), fleet.Command{Host: h, Args: []string{"echo", "ran"}})
			require.ErrorIs(t, err, fleet.ErrInvalidHost)
			var he *fleet.HostError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, h, he.Host)
			assert.False(t, res.OK())
			_, err = ex.Spawn(t.Context(), fleet.Command{Host: h, Shell: "echo ran"})
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Spawn")
			_, err = ex.Client(t.Context(), h)
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Client")
		})
	}
	assert.Zero(t, r.srv.Accepted(), "no connection was made")
	assert.Empty(t, r.srv.Commands(), "nothing ran")
	// A valid host still works through the same executor.
	res, err := ex.Run(t.Context(), fleet.Command{Host: "127.0.0.1", Args: []string{"echo", "ran"}})
	require.NoError(t, err)
	assert.Equal(t, "ran\n", string(res.Stdout))

	_, err = fleet.NewSSH(fleet.SSHConfig{User: "ops", KeyFiles: []string{r.keyFile}, InsecureIgnoreHostKey: true, Jump: []string{"ops@"}})
	assert.ErrorIs(t, err, fleet.ErrInvalidHost, "a jump host that names no machine")

	t.Run("local", func(t *testing.T) {
		var l fleet.Local
		marker := filepath.Join(t.TempDir(), "ran")
		for _, h := range []string{"@", "deploy@", ":22"} {
			_, err := l.Run(t.Context(), fleet.Command{Host: h, Args: []string{"touch", marker}})
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Local.Run host %q", h)
			_, err = l.Spawn(t.Context(), fleet.Command{Host: h, Args: []string{"touch", marker}})
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Local.Spawn host %q", h)
		}
		assert.NoFileExists(t, marker)
		res, err := l.Run(t.Context(), fleet.Command{Args: []string{"true"}})
		require.NoError(t, err, `Host "" is this machine for Local`)
		assert.Equal(t, "localhost", res.Host)
	})

	t.Run("group", func(t *testing.T) {
		rec := fleettest.NewRecorder(nil)
		g := fleet.Group{Executor: rec}
		for _, h := range invalid {
			sum, err := g.Run(t.Context(), []string{"web1", h, "web2"}, fleet.Command{Args: []string{"uptime"}})
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Group.Run with host %q", h)
			assert.Nil(t, sum)
		}
		assert.Empty(t, rec.Commands(), "no host started")
		for _, h := range invalid {
			_, err := rec.Run(t.Context(), fleet.Command{Host: h, Args: []string{"uptime"}})
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "Recorder.Run host %q, as a real executor", h)
		}
		assert.Empty(t, rec.Commands())
		var got []error
		for _, err := range g.Stream(t.Context(), []string{"web1", ""}, fleet.Command{Args: []string{"uptime"}}) {
			got = append(got, err)
		}
		require.Len(t, got, 1)
		assert.ErrorIs(t, got[0], fleet.ErrInvalidHost, "Stream yields the refusal")
	})

	t.Run("host files", func(t *testing.T) {
		for _, line := range []string{"@", "deploy@", ":22", "deploy@:22", "[]:22"} {
			_, err := fleet.ParseHosts(strings.NewReader("web1\n" + line + "\n"))
			assert.ErrorIs(t, err, fleet.ErrInvalidHost, "hosts line %q", line)
			assert.ErrorContains(t, err, "line 2")
		}
	})
}

// TestHardening13ShellQuoteFirstWord (issue 14, item 13): Args always
// means "run this program". ["X=1"] used to be an assignment (exit 0) and
// ["exec", ...] ran the shell's builtin; both must look for a program of
// that name, as they do without a shell.
func TestHardening13ShellQuoteFirstWord(t *testing.T) {
	tests := []struct {
		args []string
	}{
		{[]string{"X=1"}},
		{[]string{"X=1", "true"}},
		{[]string{"if", "true"}},
		{[]string{"while", "true"}},
		{[]string{"exec", "echo", "ran"}},
		{[]string{"export", "A=1"}},
		{[]string{"set", "-e"}},
		{[]string{"eval", "echo ran"}},
		{[]string{":"}},
		{[]string{".", "/dev/null"}},
	}
	r := newRig(t, fleettest.Config{})
	ex := r.executor(t, nil)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			line := fleet.Command{Args: tt.args}.String()
			out, err := exec.Command("/bin/sh", "-c", line).CombinedOutput()
			var ee *exec.ExitError
			// 127: no such program; 126 for ".": found, but not executable.
			require.True(t, errors.As(err, &ee), "sh -c %q: err %v, output %q; want exit status 127", line, err, out)
			assert.Contains(t, []int{126, 127}, ee.ExitCode(), "sh -c %q: output %q", line, out)
			assert.NotContains(t, string(out), "ran")

			// Through the SSH executor, whose server runs the line with /bin/sh -c.
			res, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: tt.args})
			var fe *fleet.ExitError
			require.ErrorAs(t, err, &fe, "ssh Run %q", tt.args)
			assert.Contains(t, []int{126, 127}, res.ExitCode)
			assert.NotContains(t, string(res.Stdout), "ran")
		})
	}
	// Later words and ordinary first words are unchanged.
	assert.Equal(t, "env X=1 printenv X", fleet.ShellQuote("env", "X=1", "printenv", "X"))
	assert.Equal(t, "'X=1' true", fleet.ShellQuote("X=1", "true"))
	assert.Equal(t, "'if' then", fleet.ShellQuote("if", "then"))
	assert.Equal(t, "exec 'exec' echo", fleet.Command{Args: []string{"exec", "echo"}}.String())
	out, err := exec.Command("/bin/sh", "-c", fleet.Command{Args: []string{"env", "X=1", "printenv", "X"}}.String()).Output()
	require.NoError(t, err)
	assert.Equal(t, "1\n", string(out))
}
