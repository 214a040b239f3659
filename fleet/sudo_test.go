package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

const sudoPassword = "s3cret"

// TestSudo: Command.Sudo answers sudo's password prompt, passes Stdin to
// the command (not to sudo), keeps the prompt and the password out of the
// Result, and fails with ErrSudo, running nothing, on a wrong or missing
// password; locally and over SSH (the in-process server runs /bin/sh).
func TestSudo(t *testing.T) {
	prog, err := filepath.Abs("testdata/fake-sudo")
	require.NoError(t, err)
	r := newRig(t, fleettest.Config{})
	executors := map[string]struct {
		ex   fleet.Executor
		host string
	}{
		"local": {&fleet.Local{}, ""},
		"ssh":   {r.executor(t, nil), r.srv.Addr()},
	}
	pw := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			ran := filepath.Join(t.TempDir(), "ran")
			cmd := fleet.Command{Host: e.host, Args: []string{"sh", "-c", `echo "as $FAKE_SUDO_USER"; cat; echo err >&2; touch "$0"`, ran},
				Stdin: strings.NewReader("line 1\nline 2\n")}

			cmd.Sudo = &fleet.Sudo{Program: prog, Password: pw(sudoPassword), User: "www"}
			res, err := e.ex.Run(t.Context(), cmd)
			require.NoError(t, err, "stderr %q", res.Stderr)
			assert.Equal(t, "as www\nline 1\nline 2\n", string(res.Stdout), "stdin reached the command after the password")
			assert.Equal(t, "err\n", string(res.Stderr), "no prompt in stderr")
			assert.NotContains(t, string(res.Stdout)+string(res.Stderr), sudoPassword)
			assert.FileExists(t, ran)
			require.NoError(t, os.Remove(ran))

			cmd.Stdin = strings.NewReader("x\n")
			cmd.Sudo = &fleet.Sudo{Program: prog, Password: pw("wrong")}
			res, err = e.ex.Run(t.Context(), cmd)
			require.ErrorIs(t, err, fleet.ErrSudo, "a wrong password")
			assert.NotContains(t, err.Error(), "wrong")
			assert.False(t, res.OK())
			assert.NoFileExists(t, ran, "the command did not run")

			cmd.Stdin = strings.NewReader("x\n")
			cmd.Sudo = &fleet.Sudo{Program: prog}
			_, err = e.ex.Run(t.Context(), cmd)
			require.ErrorIs(t, err, fleet.ErrSudo, "sudo asked and no Password was given")
			assert.NoFileExists(t, ran)

			// Without a prompt (NOPASSWD), stdin still reaches the command.
			cmd.Args[2] = `FAKE_SUDO_NOPASS=1; export FAKE_SUDO_NOPASS; exec ` + prog + ` -- sh -c 'echo "as $FAKE_SUDO_USER"; cat'`
			cmd.Args = cmd.Args[:3]
			cmd.Stdin = strings.NewReader("in\n")
			cmd.Sudo = &fleet.Sudo{Program: prog, Password: pw(sudoPassword)}
			res, err = e.ex.Run(t.Context(), cmd)
			require.NoError(t, err)
			assert.Equal(t, "as root\nin\n", string(res.Stdout))
		})
	}

	t.Run("spawn", func(t *testing.T) {
		for name, s := range spawners(t) {
			t.Run(name, func(t *testing.T) {
				script, dir := fakeApt(t)
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				line := "FAKE_APT_DIR=" + fleet.ShellQuote(dir) + " " + fleet.ShellQuote(script, "install", "nginx")
				out, err := fleet.AptGetInstall(ctx, s.sp, fleet.Command{Host: s.host, Shell: line, Sudo: &fleet.Sudo{Program: prog, Password: pw(sudoPassword)}})
				require.NoError(t, err, "transcript: %s", out.Result.Stdout)
				assert.Equal(t, []string{"nginx"}, out.Installed)
				assert.NotContains(t, string(out.Result.Stdout), sudoPassword, "the terminal does not echo the password")

				_, err = fleet.AptGetInstall(ctx, s.sp, fleet.Command{Host: s.host, Shell: line, Sudo: &fleet.Sudo{Program: prog, Password: pw("wrong")}})
				assert.ErrorIs(t, err, fleet.ErrSudo)
			})
		}
	})
}
