package fleettest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// dial connects with a password, verifying the server's host key.
func dial(t *testing.T, srv *fleettest.Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "ops",
		Auth:            []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestShellWithPTY(t *testing.T) {
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw", Handler: func(ctx context.Context, s *fleettest.Session) int {
		if s.Command != "" || !s.PTY || s.Term != "vt100" || s.Env["LANG"] != "C" {
			fmt.Fprintf(s.Stdout, "unexpected session %+v\n", s)
			return 2
		}
		in := bufio.NewScanner(s.Stdin)
		fmt.Fprint(s.Stdout, "$ ")
		for in.Scan() {
			if in.Text() == "exit" {
				return 0
			}
			fmt.Fprintf(s.Stdout, "you said %s\n$ ", in.Text())
		}
		return 1
	}})
	sess, err := dial(t, srv).NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.Setenv("LANG", "C"))
	require.NoError(t, sess.RequestPty("vt100", 24, 80, ssh.TerminalModes{}))
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	require.NoError(t, sess.Shell())
	io.WriteString(in, "hello\nexit\n")
	b, _ := io.ReadAll(out)
	require.NoError(t, sess.Wait())
	assert.Equal(t, "$ you said hello\n$ ", string(b))
	assert.Equal(t, []fleettest.Record{{User: "ops", PTY: true, ExitStatus: 0}}, srv.Commands())
}

func TestRunRealAndExitStatus(t *testing.T) {
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
	c := dial(t, srv)
	tests := []struct {
		cmd    string
		out    string
		status int
		signal string
	}{
		{"echo real", "real\n", 0, ""},
		{"exit 5", "", 5, ""},
		{"kill -TERM $$", "", 128 + 15, ""},
	}
	for _, tc := range tests {
		t.Run(tc.cmd, func(t *testing.T) {
			sess, err := c.NewSession()
			require.NoError(t, err)
			out, err := sess.Output(tc.cmd)
			assert.Equal(t, tc.out, string(out))
			if tc.status == 0 {
				require.NoError(t, err)
				return
			}
			var ee *ssh.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tc.status, ee.ExitStatus())
		})
	}
	assert.Len(t, srv.Commands(), 3)
}

func TestAuthFailures(t *testing.T) {
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
	cfg := &ssh.ClientConfig{User: "ops", HostKeyCallback: ssh.FixedHostKey(srv.HostKey())}
	cfg.Auth = []ssh.AuthMethod{ssh.Password("wrong")}
	_, err := ssh.Dial("tcp", srv.Addr(), cfg)
	require.ErrorContains(t, err, "unable to authenticate")
	srv.SetFailures(fleettest.Failures{RefuseAuth: true})
	cfg.Auth = []ssh.AuthMethod{ssh.Password("pw")}
	_, err = ssh.Dial("tcp", srv.Addr(), cfg)
	require.ErrorContains(t, err, "unable to authenticate")
}

func TestRecorder(t *testing.T) {
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		if cmd.Host == "b" {
			return fleet.Result{ExitCode: 9}, nil
		}
		return fleet.Result{Stdout: []byte("ok")}, nil
	})
	res, err := rec.Run(t.Context(), fleet.Command{Host: "a", Args: []string{"cat"}, Stdin: strings.NewReader("in")})
	require.NoError(t, err)
	assert.Equal(t, "a", res.Host)
	_, err = rec.Run(t.Context(), fleet.Command{Host: "b", Shell: "false"})
	var ee *fleet.ExitError
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, 9, ee.Code)
	assert.Equal(t, [][]byte{[]byte("in"), nil}, rec.Stdin())
	assert.Equal(t, "cat", rec.Commands()[0].String())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = rec.Run(ctx, fleet.Command{Host: "c", Shell: "x"})
	require.ErrorIs(t, err, context.Canceled)
}

func TestRunRealOnPTY(t *testing.T) {
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
	sess, err := dial(t, srv).NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}))
	out, err := sess.Output("tty; echo to-stderr >&2; exit 3")
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitStatus())
	assert.Regexp(t, `^/dev/pts/\d+\nto-stderr\n$`, string(out), "a pty session has a tty and merges stderr")
}
