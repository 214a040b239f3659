package fleet_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/internal/testenv"
)

// sshd is a real OpenSSH server started for one test.
type sshd struct {
	addr       string
	user       string
	keyFile    string
	knownHosts string // trusts the ed25519 host key only
	dir        string
}

// startSSHD runs sshd -D -e -f cfg on 127.0.0.1 with a free port,
// generated ed25519 and ECDSA host keys and an ed25519 user key, as the
// test process's user.
func startSSHD(t *testing.T) *sshd {
	t.Helper()
	bin := testenv.Tool(t, "sshd")
	u, err := user.Current()
	require.NoError(t, err)
	if os.Geteuid() == 0 {
		// sshd run as root insists on its privilege-separation directory,
		// which the Debian service creates at start.
		require.NoError(t, os.MkdirAll("/run/sshd", 0o755))
	}
	dir := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey := writeKey(t, filepath.Join(dir, "host_ed25519"), hostPriv, "")
	ecdsaKeyOf(t, dir, "host_ecdsa")
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userKey := writeKey(t, filepath.Join(dir, "id_ed25519"), userPriv, "")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(userKey.PublicKey()), 0o600))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host_ed25519
HostKey %[2]s/host_ecdsa
PidFile none
AuthorizedKeysFile %[2]s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers %[3]s
AllowTcpForwarding yes
MaxStartups 100
MaxSessions 20
LogLevel INFO
`, port, dir, u.Username)
	cfgPath := filepath.Join(dir, "sshd_config")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	cmd := exec.Command(bin, "-D", "-e", "-f", cfgPath)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	logged := make(chan struct{})
	var logMu sync.Mutex
	var log strings.Builder // sshd's log, shown if the test fails
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-logged:
		case <-time.After(5 * time.Second):
		}
		cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("sshd log:\n%s", log.String())
			logMu.Unlock()
		}
	})
	// sshd -e logs "Server listening on 127.0.0.1 port N." when ready.
	ready := make(chan error, 1)
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server listening on") {
				ready <- nil
				for sc.Scan() {
					logMu.Lock()
					log.WriteString(sc.Text() + "\n")
					logMu.Unlock()
				}
				return
			}
			lines = append(lines, sc.Text())
		}
		ready <- fmt.Errorf("sshd exited: %s", strings.Join(lines, "\n"))
	}()
	select {
	case err := <-ready:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("sshd did not report listening within 15s")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(knownLine(addr, hostKey.PublicKey())), 0o600))
	return &sshd{addr: addr, user: u.Username, keyFile: filepath.Join(dir, "id_ed25519"), knownHosts: kh, dir: dir}
}

func (s *sshd) executor(t testing.TB, mod func(*fleet.SSHConfig)) *fleet.SSH {
	t.Helper()
	return newSSH(t, s.user, s.keyFile, s.knownHosts, mod)
}

func TestSSHDIntegration(t *testing.T) {
	s := startSSHD(t)

	t.Run("conformance", func(t *testing.T) {
		fleettest.TestExecutor(t, func(t *testing.T) (fleet.Executor, string) { return s.executor(t, nil), s.addr })
	})
	t.Run("exec, exit code and stderr", func(t *testing.T) {
		ex := s.executor(t, nil)
		res, err := ex.Run(t.Context(), fleet.Command{Host: s.addr, Shell: "echo out; echo err >&2; exit 7"})
		var ee *fleet.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 7, ee.Code)
		assert.Equal(t, "out\n", string(res.Stdout))
		assert.Equal(t, "err\n", string(res.Stderr))
	})
	t.Run("host key algorithms from known_hosts", func(t *testing.T) {
		// sshd offers ECDSA and Ed25519 keys; known_hosts has only the
		// Ed25519 one. Without derivation Go asks for ECDSA first and
		// would report a changed key.
		ex := s.executor(t, nil)
		_, err := ex.Run(t.Context(), fleet.Command{Host: s.addr, Args: []string{"true"}})
		require.NoError(t, err)
	})
	t.Run("changed host key detected", func(t *testing.T) {
		other, _ := fleettest.NewSigner()
		kh := filepath.Join(t.TempDir(), "known_hosts")
		require.NoError(t, os.WriteFile(kh, []byte(knownLine(s.addr, other.PublicKey())), 0o600))
		ex := s.executor(t, func(c *fleet.SSHConfig) { c.KnownHostsFiles = []string{kh}; c.AcceptNewHostKeys = true })
		_, err := ex.Run(t.Context(), fleet.Command{Host: s.addr, Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrHostKeyChanged)
	})
	t.Run("expect dialogue", func(t *testing.T) {
		script, dir := fakeApt(t)
		ex := s.executor(t, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		line := "FAKE_APT_DIR=" + fleet.ShellQuote(dir) + " " + fleet.ShellQuote(script, "install", "nginx")
		out, err := fleet.AptGetInstall(ctx, ex, fleet.Command{Host: s.addr, Shell: line})
		require.NoError(t, err, "transcript %q", out.Result.Stdout)
		assert.True(t, out.Answered)
		assert.Equal(t, []string{"nginx"}, out.Installed)
		e, err := ex.Spawn(ctx, fleet.Command{Host: s.addr, Shell: "tty; printf 'name? '; read n; echo hello $n"})
		require.NoError(t, err)
		defer e.Close()
		_, _, err = e.Expect(ctx, regexp.MustCompile(`/dev/pts/\d+`))
		require.NoError(t, err, "the session has a pty")
		require.NoError(t, e.Batch(ctx, fleet.Step{Expect: regexp.MustCompile(`name\? `)}, fleet.Step{Send: "ann\n"}, fleet.Step{Expect: regexp.MustCompile(`hello ann`)}))
	})
	t.Run("file push", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "blob")
		require.NoError(t, os.WriteFile(src, []byte(strings.Repeat("x", 1<<20)), 0o600))
		dst := filepath.Join(t.TempDir(), "blob")
		ex := s.executor(t, nil)
		res, err := fleet.Push(t.Context(), ex, s.addr, src, dst, 0o640)
		require.NoError(t, err)
		assert.False(t, res.Skipped)
		fi, err := os.Stat(dst)
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), fi.Size())
		assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
		res, err = fleet.Push(t.Context(), ex, s.addr, src, dst, 0o640)
		require.NoError(t, err)
		assert.True(t, res.Skipped)
	})
	t.Run("jump through the same sshd", func(t *testing.T) {
		ex := s.executor(t, func(c *fleet.SSHConfig) { c.Jump = []string{s.addr, s.user + "@" + s.addr} })
		res, err := ex.Run(t.Context(), fleet.Command{Host: s.addr, Args: []string{"echo", "via two hops"}})
		require.NoError(t, err)
		assert.Equal(t, "via two hops\n", string(res.Stdout))
	})
	t.Run("fan-out and pooled second command", func(t *testing.T) {
		ex := s.executor(t, nil)
		g := fleet.Group{Executor: ex, Concurrency: 10}
		hosts := []string{s.addr, s.addr, s.addr}
		sum, err := g.Run(t.Context(), hosts, fleet.Command{Args: []string{"uname", "-s"}})
		require.NoError(t, err)
		for _, r := range sum.Results {
			assert.Equal(t, "Linux\n", string(r.Stdout))
		}
	})
}

// TestSSHDIntegrationSSHConfig: hosts named by ssh_config aliases reach a
// real OpenSSH sshd with the file's HostName, Port, User, IdentityFile and
// UserKnownHostsFile, and a second sshd through ProxyJump over the first.
func TestSSHDIntegrationSSHConfig(t *testing.T) {
	s1 := startSSHD(t)
	s2 := startSSHD(t)
	_, p1, _ := net.SplitHostPort(s1.addr)
	_, p2, _ := net.SplitHostPort(s2.addr)
	conf := filepath.Join(t.TempDir(), "ssh_config")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`Host app
    HostName 127.0.0.1
    Port %s
    User %s
    IdentityFile %s
    UserKnownHostsFile %s

Host inner inner-bad
    HostName 127.0.0.1
    Port %s
    User %s
    IdentityFile %s
    UserKnownHostsFile %s

Host inner
    ProxyJump app

Host inner-bad
    ProxyJump %s@127.0.0.1:1
`, p1, s1.user, s1.keyFile, s1.knownHosts, p2, s2.user, s2.keyFile, s2.knownHosts, s1.user)), 0o600))

	ex, err := fleet.NewSSH(fleet.SSHConfig{ConfigFiles: []string{conf}})
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })

	t.Run("alias", func(t *testing.T) {
		res, err := ex.Run(t.Context(), fleet.Command{Host: "app", Shell: `echo "$USER:$SSH_CONNECTION"`})
		require.NoError(t, err)
		assert.Equal(t, s1.user, strings.Split(string(res.Stdout), ":")[0])
		assert.True(t, strings.HasSuffix(strings.TrimSpace(string(res.Stdout)), " 127.0.0.1 "+p1), "served by the first sshd: %q", res.Stdout)
	})
	t.Run("ProxyJump through a second sshd", func(t *testing.T) {
		res, err := ex.Run(t.Context(), fleet.Command{Host: "inner", Shell: `echo "$SSH_CONNECTION"`})
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(strings.TrimSpace(string(res.Stdout)), " 127.0.0.1 "+p2), "served by the second sshd: %q", res.Stdout)
		// A fresh executor, so that no pooled connection to the second
		// sshd is reused.
		ex2, err := fleet.NewSSH(fleet.SSHConfig{ConfigFiles: []string{conf}})
		require.NoError(t, err)
		t.Cleanup(func() { ex2.Close() })
		_, err = ex2.Run(t.Context(), fleet.Command{Host: "inner-bad", Args: []string{"true"}})
		assert.ErrorIs(t, err, fleet.ErrUnreachable, "the jump host is really used")
	})
}

// TestSSHDIntegrationSudo runs Command.Sudo with the real sudo(8) through a
// real sshd. Logged in as root, sudo asks no password, so this checks the
// command line, the user switch, stdin and the pty path of Spawn; the
// password dialogue is checked with a stand-in sudo in TestSudo.
func TestSSHDIntegrationSudo(t *testing.T) {
	sudoBin := testenv.Tool(t, "sudo")
	if os.Geteuid() != 0 {
		t.Skip("the real sudo asks no password only for root")
	}
	s := startSSHD(t)
	ex := s.executor(t, nil)
	sudo := &fleet.Sudo{User: "nobody", Program: sudoBin, Password: func(string) (string, error) { return "", fmt.Errorf("sudo asked root for a password") }}
	res, err := ex.Run(t.Context(), fleet.Command{Host: s.addr, Args: []string{"sh", "-c", "id -un; cat"}, Stdin: strings.NewReader("via stdin\n"), Sudo: sudo})
	require.NoError(t, err, "stderr %q", res.Stderr)
	assert.Equal(t, "nobody\nvia stdin\n", string(res.Stdout))
	assert.NotContains(t, string(res.Stderr), "opskit-", "no prompt or marker token left in stderr")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	e, err := ex.Spawn(ctx, fleet.Command{Host: s.addr, Shell: "printf 'name? '; read n; echo \"$(id -un) greets $n\"", Sudo: sudo})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Batch(ctx, fleet.Step{Expect: regexp.MustCompile(`name\? `)}, fleet.Step{Send: "ann\n"}, fleet.Step{Expect: regexp.MustCompile(`nobody greets ann`)}))
}
