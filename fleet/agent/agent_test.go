package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/internal/secret"
)

// serve starts a's API on a unix socket and returns a client of it.
func serve(t testing.TB, a *agent.Agent) (*agent.Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Address: sock})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; ln.Close() })
	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	t.Cleanup(func() { c.Close() })
	return c, sock
}

func install(t testing.TB, c *agent.Client, name string, zip []byte, m agent.Manifest) (agent.Status, error) {
	t.Helper()
	return c.Install(t.Context(), name, bytes.NewReader(zip), int64(len(zip)), m, agent.InstallOptions{})
}

func TestInstallStartsAndReports(t *testing.T) {
	a, _, dir := newAgent(t, nil)
	c, _ := serve(t, a)
	var sent int64
	z := helperZip(t, entry{name: "etc/app.conf", body: []byte("x=1")})
	st, err := c.Install(t.Context(), "app", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/helper", Args: []string{"run", "with spaces; $(no shell)"}},
		agent.InstallOptions{Progress: func(n int64) { sent = n }})
	require.NoError(t, err)
	assert.Equal(t, int64(len(z)), sent, "progress reached the zip's size")
	assert.True(t, st.Running, "running after install")
	assert.NotZero(t, st.Pid)
	assert.Equal(t, 0, st.Restarts)
	assert.Equal(t, []string{"run", "with spaces; $(no shell)"}, st.Args)

	got, err := c.Status(t.Context(), "app")
	require.NoError(t, err)
	assert.Equal(t, st.Pid, got.Pid)
	list, err := c.Packages(t.Context())
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "app", list[0].Name)

	conf, err := os.ReadFile(filepath.Join(dir, "app", "current", "etc", "app.conf"))
	require.NoError(t, err)
	assert.Equal(t, "x=1", string(conf))

	// The argument reached the program as one argv element: no shell.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid))
	require.NoError(t, err)
	argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	assert.Equal(t, []string{filepath.Join(dir, "app", "releases", st.Release, "bin", "helper"), "run", "with spaces; $(no shell)"}, argv)
}

// leftovers lists what is in dir apart from the expected names.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir && p != filepath.Join(dir, ".lock") { // the agent's own lock stays while it runs
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	return out
}

func TestInstallBadInput(t *testing.T) {
	tests := []struct {
		name     string
		pkg      string
		zip      func(t testing.TB) []byte
		manifest agent.Manifest
		want     error
		status   int
	}{
		{"zip-slip", "app", func(t testing.TB) []byte {
			return tinyZip(t, entry{name: "../../../evil", body: []byte("x")})
		}, agent.Manifest{Binary: "bin/helper", Args: []string{"run"}}, agent.ErrUnsafeArchive, 400},
		{"symlink escape", "app", func(t testing.TB) []byte {
			return tinyZip(t, entry{name: "etc", body: []byte("../../../.."), mode: os.ModeSymlink | 0o777})
		}, agent.Manifest{Binary: "bin/helper", Args: []string{"run"}}, agent.ErrUnsafeArchive, 400},
		{"zip bomb", "app", func(t testing.TB) []byte {
			return makeZip(t, entry{name: "bomb", body: make([]byte, 2<<20)})
		}, agent.Manifest{Binary: "bomb"}, agent.ErrZipBomb, 413},
		{"not a zip", "app", func(t testing.TB) []byte { return []byte("hello, not a zip") },
			agent.Manifest{Binary: "bin/helper"}, agent.ErrBadArchive, 400},
		{"truncated zip", "app", func(t testing.TB) []byte {
			z := tinyZip(t, entry{name: "data", body: bytes.Repeat([]byte("abc"), 10000)})
			return z[:len(z)/2]
		},
			agent.Manifest{Binary: "bin/helper"}, agent.ErrBadArchive, 400},
		{"binary not in the package", "app", func(t testing.TB) []byte { return tinyZip(t) },
			agent.Manifest{Binary: "bin/nope"}, agent.ErrBinaryNotFound, 422},
		{"absolute binary that does not exist", "app", func(t testing.TB) []byte { return tinyZip(t) },
			agent.Manifest{Binary: "/nonexistent/bin/app"}, agent.ErrBinaryNotFound, 422},
		{"binary not executable", "app", func(t testing.TB) []byte {
			return makeZip(t, entry{name: "bin/app", body: []byte("data"), mode: 0o644})
		}, agent.Manifest{Binary: "bin/app"}, agent.ErrBinaryNotFound, 422},
		{"binary outside the package", "app", func(t testing.TB) []byte { return tinyZip(t) },
			agent.Manifest{Binary: "../bin/helper"}, agent.ErrBadRequest, 400},
		{"no binary", "app", func(t testing.TB) []byte { return tinyZip(t) },
			agent.Manifest{}, agent.ErrBadRequest, 400},
		{"bad package name", "-rf", func(t testing.TB) []byte { return tinyZip(t) },
			agent.Manifest{Binary: "bin/helper"}, agent.ErrBadRequest, 400},
		{"too large", "app", func(t testing.TB) []byte { return make([]byte, 2<<20) },
			agent.Manifest{Binary: "bin/helper"}, agent.ErrTooLarge, 413},
		{"program exits at once", "app", func(t testing.TB) []byte { return helperZip(t) },
			agent.Manifest{Binary: "bin/helper", Args: []string{"exit", "3"}}, agent.ErrStartFailed, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, dir := newAgent(t, func(c *agent.Config) {
				c.MaxUpload = 1 << 20 * 100
				if tt.want == agent.ErrTooLarge {
					c.MaxUpload = 1 << 20
				}
				c.StartGrace = 10 * time.Second // a program that exits at once is seen to exit
			})
			c, _ := serve(t, a)
			_, err := install(t, c, tt.pkg, tt.zip(t), tt.manifest)
			require.ErrorIs(t, err, tt.want)
			var ae *agent.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.status, ae.Status)
			_, err = c.Status(t.Context(), "app")
			assert.ErrorIs(t, err, agent.ErrNotFound, "a failed first install leaves no package")
			assert.Empty(t, leftovers(t, dir), "a failed install leaves nothing in the agent's directory")
			assert.NoFileExists(t, filepath.Join(filepath.Dir(dir), "evil"))
			assert.NoFileExists(t, filepath.Join(filepath.Dir(filepath.Dir(dir)), "evil"))
		})
	}
}

// TestInstallTruncatedUpload: the connection ends before Content-Length
// bytes arrived.
func TestInstallTruncatedUpload(t *testing.T) {
	a, _, dir := newAgent(t, nil)
	_, sock := serve(t, a)
	z := tinyZip(t, entry{name: "data", body: bytes.Repeat([]byte("abc"), 100000)})
	conn, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/packages/app?binary=bin/helper&arg=run HTTP/1.1\r\nHost: agent\r\nContent-Length: %d\r\n\r\n", len(z))
	conn.Write(z[:len(z)/2])
	conn.(*net.UnixConn).CloseWrite()
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err == nil {
		// The server may answer before it notices the close.
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, readAll(t, resp.Body))
	}
	// Whatever the server answered, nothing is installed and nothing is left.
	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	_, err = c.Status(t.Context(), "app")
	assert.ErrorIs(t, err, agent.ErrNotFound)
	assert.Empty(t, leftovers(t, dir))
}

func TestInstallTruncatedUploadDirect(t *testing.T) {
	a, _, dir := newAgent(t, nil)
	z := tinyZip(t, entry{name: "data", body: bytes.Repeat([]byte("abc"), 100000)})
	_, err := a.Install(t.Context(), "app", io.MultiReader(bytes.NewReader(z[:len(z)/2]), errReader{io.ErrUnexpectedEOF}), agent.Manifest{Binary: "bin/helper"})
	require.ErrorIs(t, err, agent.ErrBadArchive)
	assert.Empty(t, leftovers(t, dir))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestWrongToken(t *testing.T) {
	tok := secret.String("s3cret-token")
	a, _, _ := newAgent(t, func(c *agent.Config) { c.Token = tok })
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Network: "tcp", Address: "127.0.0.1:0", Token: tok})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	require.NoError(t, a.Sampler().Collect(t.Context()))

	for _, tt := range []struct {
		name  string
		token secret.String
		want  error
	}{
		{"no token", "", agent.ErrUnauthorized},
		{"wrong token", "s3cret-tokem", agent.ErrUnauthorized},
		{"prefix of the token", "s3cret", agent.ErrUnauthorized},
		{"right token", tok, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := agent.NewClient("http://"+ln.Addr().String(), agent.ClientConfig{Token: tt.token})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Stats(t.Context())
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			_, err = install(t, c, "app", tinyZip(t), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
			require.ErrorIs(t, err, tt.want, "install refused too")
			assert.Empty(t, a.Packages())
		})
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		name string
		cfg  agent.ListenConfig
		want error
	}{
		{"tcp on all addresses without token", agent.ListenConfig{Network: "tcp", Address: "0.0.0.0:0"}, agent.ErrInsecureListen},
		{"tcp on loopback without token", agent.ListenConfig{Network: "tcp", Address: "127.0.0.1:0"}, agent.ErrInsecureListen},
		{"tcp with a token", agent.ListenConfig{Network: "tcp", Address: "127.0.0.1:0", Token: "t"}, nil},
		{"unknown network", agent.ListenConfig{Network: "udp", Address: "127.0.0.1:0"}, agent.ErrBadRequest},
		{"unix without a path", agent.ListenConfig{}, agent.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := agent.Listen(t.Context(), tt.cfg)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			ln.Close()
		})
	}
}

// TestServeRefusesOpenTCP: a TCP listener opened elsewhere (or by Listen
// with a token the Agent does not have) is refused when the Agent has no
// Token.
func TestServeRefusesOpenTCP(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Network: "tcp", Address: "127.0.0.1:0", Token: "only-here"})
	require.NoError(t, err)
	defer ln.Close()
	err = a.Serve(t.Context(), ln)
	require.ErrorIs(t, err, agent.ErrInsecureListen)
}

func TestListenUnixMode(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	// A stale socket from an earlier run is replaced.
	old, err := net.Listen("unix", sock)
	require.NoError(t, err)
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Address: sock})
	require.NoError(t, err)
	st, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	assert.Len(t, leftovers(t, filepath.Dir(sock)), 1, "no temporary socket left")
	require.NoError(t, ln.Close())
	assert.NoFileExists(t, sock, "Close removes the socket")

	// A regular file is not replaced.
	require.NoError(t, os.WriteFile(sock, []byte("x"), 0o600))
	_, err = agent.Listen(t.Context(), agent.ListenConfig{Address: sock})
	require.Error(t, err)
}

// TestConcurrentInstalls: a second install of a package while the first is
// still uploading is refused with ErrBusy; the first completes.
func TestConcurrentInstalls(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	c, _ := serve(t, a)
	z := helperZip(t)
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := a.Install(t.Context(), "app", pr, agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
		first <- err
	}()
	// Once the first install has read a byte, it holds the package.
	_, err := pw.Write(z[:1])
	require.NoError(t, err)
	_, err = install(t, c, "app", z, agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.ErrorIs(t, err, agent.ErrBusy)
	// Another package is not blocked.
	_, err = install(t, c, "other", z, agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)

	_, err = pw.Write(z[1:])
	require.NoError(t, err)
	pw.Close()
	require.NoError(t, <-first)
	st, err := c.Status(t.Context(), "app")
	require.NoError(t, err)
	assert.True(t, st.Running)
}

func TestUpgradeSwapAndRollback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pkgs")
	a, _, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir })
	c, _ := serve(t, a)
	z := helperZip(t)
	v1, err := install(t, c, "app", z, agent.Manifest{Binary: "bin/helper", Args: []string{"version", "1"}})
	require.NoError(t, err)

	// Upgrade while v1 runs: v1 is stopped, v2 swapped in and started.
	v2, err := install(t, c, "app", z, agent.Manifest{Binary: "bin/helper", Args: []string{"version", "2"}})
	require.NoError(t, err)
	assert.NotEqual(t, v1.Release, v2.Release)
	assert.NotEqual(t, v1.Pid, v2.Pid)
	assert.True(t, v2.Running)
	assert.Error(t, syscall.Kill(v1.Pid, 0), "the old version's process is gone")
	cur, err := os.Readlink(filepath.Join(dir, "app", "current"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join("releases", v2.Release), cur)
	require.NoError(t, a.Close(t.Context()))

	// A second agent on the same directory with a long start grace, so a
	// program that exits at once is certainly seen to exit: v3 fails and
	// v2 comes back.
	b, ev, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir; c.StartGrace = time.Minute })
	require.NoError(t, b.Resume(t.Context()))
	_, err = b.Install(t.Context(), "app", bytes.NewReader(z), agent.Manifest{Binary: "bin/helper", Args: []string{"exit", "7"}})
	require.ErrorIs(t, err, agent.ErrStartFailed)
	var se *agent.StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "exit status 7", se.Exit)
	assert.True(t, se.RolledBack)
	assert.Contains(t, se.Output, "exiting 7")
	ev.wait(t, "app", agent.EventRolledBack)

	st, err := b.Status("app")
	require.NoError(t, err)
	assert.Equal(t, v2.Release, st.Release, "v2 is current again")
	assert.True(t, st.Running, "v2 runs again")
	assert.Equal(t, []string{"version", "2"}, st.Args)
	cur, err = os.Readlink(filepath.Join(dir, "app", "current"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join("releases", v2.Release), cur)
	rels, _ := os.ReadDir(filepath.Join(dir, "app", "releases"))
	var names []string
	for _, r := range rels {
		names = append(names, r.Name())
	}
	assert.ElementsMatch(t, []string{v1.Release, v1.Release + ".json", v2.Release, v2.Release + ".json"}, names,
		"the failed release is removed; the previous one is kept")

	_, err = b.Stop(t.Context(), "app") // waits until the output is written
	require.NoError(t, err)
	log, err := os.ReadFile(filepath.Join(dir, "app", "output.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "exiting 7\n", "the failed version's output is kept")
}

func TestSupervisorRestartsCrashedProgram(t *testing.T) {
	a, ev, _ := newAgent(t, nil)
	c, _ := serve(t, a)
	st, err := install(t, c, "app", helperZip(t), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(st.Pid, syscall.SIGKILL))
	exited := ev.wait(t, "app", agent.EventExited)
	assert.Equal(t, "signal: killed", exited.Exit)
	started := ev.wait(t, "app", agent.EventStarted)
	assert.Equal(t, 1, started.Restarts)

	got, err := c.Status(t.Context(), "app")
	require.NoError(t, err)
	assert.True(t, got.Running)
	assert.Equal(t, started.Pid, got.Pid)
	assert.Equal(t, 1, got.Restarts)
	assert.Equal(t, "signal: killed", got.LastExit)
}

func TestStartStop(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	c, _ := serve(t, a)
	st, err := install(t, c, "app", helperZip(t), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)
	stopped, err := c.Stop(t.Context(), "app")
	require.NoError(t, err)
	assert.False(t, stopped.Running)
	assert.Zero(t, stopped.Pid)
	// The helper exits 0 on SIGTERM once its handler is installed; before
	// that, the signal ends it.
	assert.Contains(t, []string{"exit status 0", "signal: terminated"}, stopped.LastExit)
	assert.Error(t, syscall.Kill(st.Pid, 0), "the process is gone")
	started, err := c.Start(t.Context(), "app")
	require.NoError(t, err)
	assert.True(t, started.Running)
	assert.NotEqual(t, st.Pid, started.Pid)
	again, err := c.Start(t.Context(), "app")
	require.NoError(t, err)
	assert.Equal(t, started.Pid, again.Pid, "starting a running package is a no-op")

	for _, call := range []func(context.Context, string) (agent.Status, error){c.Start, c.Stop, c.Status} {
		_, err := call(t.Context(), "missing")
		assert.ErrorIs(t, err, agent.ErrNotFound)
	}
}

// TestStopKillsStubbornProgram: a program that ignores SIGTERM is killed
// after StopTimeout.
func TestStopKillsStubbornProgram(t *testing.T) {
	a, ev, _ := newAgent(t, func(c *agent.Config) { c.StopTimeout = 100 * time.Millisecond })
	c, _ := serve(t, a)
	_, err := install(t, c, "app", helperZip(t), agent.Manifest{Binary: "bin/helper", Args: []string{"stubborn"}})
	require.NoError(t, err)
	// The helper prints once it ignores SIGTERM; a child process offers
	// no channel to wait on, so poll its log (bounded).
	for i := 0; ; i++ {
		var log bytes.Buffer
		require.NoError(t, c.Log(t.Context(), "app", &log))
		if strings.Contains(log.String(), "stubborn") {
			break
		}
		require.Less(t, i, 3000, "the helper never printed")
		time.Sleep(10 * time.Millisecond)
	}
	st, err := c.Stop(t.Context(), "app")
	require.NoError(t, err)
	assert.False(t, st.Running)
	assert.Equal(t, "signal: killed", st.LastExit)
	assert.Equal(t, "signal: killed", ev.wait(t, "app", agent.EventStopped).Exit)
}

func TestOutputLogIsCapped(t *testing.T) {
	a, _, dir := newAgent(t, func(c *agent.Config) { c.MaxLog = 64 << 10 })
	c, _ := serve(t, a)
	_, err := install(t, c, "app", helperZip(t), agent.Manifest{Binary: "bin/helper", Args: []string{"spam", "300000"}})
	require.NoError(t, err)
	_, err = c.Stop(t.Context(), "app") // waits until the output is written
	require.NoError(t, err)
	for _, f := range []string{"output.log", "output.log.1"} {
		st, err := os.Stat(filepath.Join(dir, "app", f))
		require.NoError(t, err)
		assert.LessOrEqual(t, st.Size(), int64(64<<10), f)
		assert.NotZero(t, st.Size(), f)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pkgs")
	a, _, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir })
	_, err := a.Install(t.Context(), "on", bytes.NewReader(helperZip(t)), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)
	_, err = a.Install(t.Context(), "off", bytes.NewReader(helperZip(t)), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)
	_, err = a.Stop(t.Context(), "off")
	require.NoError(t, err)
	require.NoError(t, a.Close(t.Context()))

	b, _, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir })
	list := b.Packages()
	require.Len(t, list, 2)
	require.NoError(t, b.Resume(t.Context()))
	on, err := b.Status("on")
	require.NoError(t, err)
	assert.True(t, on.Running)
	off, err := b.Status("off")
	require.NoError(t, err)
	assert.False(t, off.Running)
}

func TestInstallCancelled(t *testing.T) {
	a, _, dir := newAgent(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := a.Install(ctx, "app", bytes.NewReader(tinyZip(t)), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, leftovers(t, dir))
	assert.True(t, errors.Is(err, context.Canceled))
}

// TestClientOverTLS: the client over HTTPS with a token, and a client that
// does not trust the agent's certificate.
func TestClientOverTLS(t *testing.T) {
	tok := secret.String("tls-token")
	a, _, _ := newAgent(t, func(c *agent.Config) { c.Token = tok })
	require.NoError(t, a.Sampler().Collect(t.Context()))
	srv := httptest.NewTLSServer(a.Handler())
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	c, err := agent.NewClient(srv.URL, agent.ClientConfig{Token: tok, TLS: &tls.Config{RootCAs: pool}})
	require.NoError(t, err)
	defer c.Close()
	st, err := c.Stats(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(42), st.Uptime)

	untrusting, err := agent.NewClient(srv.URL, agent.ClientConfig{Token: tok})
	require.NoError(t, err)
	defer untrusting.Close()
	_, err = untrusting.Stats(t.Context())
	var uae x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &uae)

	_, err = agent.NewClient("ftp://x", agent.ClientConfig{})
	assert.ErrorIs(t, err, agent.ErrBadRequest)
}

// TestInstallTooLargeStreamed: an upload without a Content-Length is cut
// off at MaxUpload while streaming.
func TestInstallTooLargeStreamed(t *testing.T) {
	a, _, dir := newAgent(t, func(c *agent.Config) { c.MaxUpload = 1 << 20 })
	c, _ := serve(t, a)
	body := io.LimitReader(zeroReader{}, 4<<20)
	_, err := c.Install(t.Context(), "app", body, -1, agent.Manifest{Binary: "bin/helper"}, agent.InstallOptions{})
	require.ErrorIs(t, err, agent.ErrTooLarge)
	assert.Empty(t, leftovers(t, dir))
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) { clear(b); return len(b), nil }
