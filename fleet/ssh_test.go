package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// userKey writes a new Ed25519 key to dir/id_ed25519 and returns its
// path and signer.
func userKey(t testing.TB, dir string, passphrase string) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	path := filepath.Join(dir, "id_ed25519")
	return path, writeKey(t, path, priv, passphrase)
}

type rig struct {
	srv        *fleettest.Server
	keyFile    string
	knownHosts string
	signer     ssh.Signer
}

// newRig starts an in-process server that accepts a fresh user key and
// writes a known_hosts file that trusts it.
func newRig(t testing.TB, cfg fleettest.Config) *rig {
	t.Helper()
	dir := t.TempDir()
	key, sg := userKey(t, dir, "")
	cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, sg.PublicKey())
	srv := fleettest.NewServer(t, cfg)
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))
	return &rig{srv: srv, keyFile: key, knownHosts: kh, signer: sg}
}

func (r *rig) executor(t testing.TB, mod func(*fleet.SSHConfig)) *fleet.SSH {
	t.Helper()
	return newSSH(t, "tester", r.keyFile, r.knownHosts, mod)
}

// newSSH makes an SSH executor with a key file and a known_hosts file,
// changed by mod, closed by t.Cleanup.
func newSSH(t testing.TB, user, keyFile, knownHosts string, mod func(*fleet.SSHConfig)) *fleet.SSH {
	t.Helper()
	cfg := fleet.SSHConfig{User: user, KeyFiles: []string{keyFile}, KnownHostsFiles: []string{knownHosts}}
	if mod != nil {
		mod(&cfg)
	}
	ex, err := fleet.NewSSH(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })
	return ex
}

func TestSSHConformance(t *testing.T) {
	fleettest.TestExecutor(t, func(t *testing.T) (fleet.Executor, string) {
		r := newRig(t, fleettest.Config{})
		return r.executor(t, nil), r.srv.Addr()
	})
}

func TestSSHPoolsOneConnectionPerHost(t *testing.T) {
	var inFlight, peak atomic.Int32
	r := newRig(t, fleettest.Config{Handler: func(ctx context.Context, s *fleettest.Session) int {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select { // hold the session a moment so that sessions overlap
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
		return 0
	}})
	ex := r.executor(t, func(c *fleet.SSHConfig) { c.MaxSessions = 3 })
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, r.srv.Accepted(), "TCP connections for 20 commands on one host")
	assert.Len(t, r.srv.Commands(), 20)
	assert.LessOrEqual(t, peak.Load(), int32(3), "sessions open at once with MaxSessions 3")
}

func TestSSHRecordsCommandLine(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	ex := r.executor(t, nil)
	_, err := ex.Run(t.Context(), fleet.Command{Host: "tester@" + r.srv.Addr(), Args: []string{"echo", "a b", "c'd"}})
	require.NoError(t, err)
	got := r.srv.Commands()
	require.Len(t, got, 1)
	assert.Equal(t, `echo 'a b' 'c'\''d'`, got[0].Command)
	assert.Equal(t, "tester", got[0].User)
}

func TestSSHErrors(t *testing.T) {
	other, err := fleettest.NewSigner()
	require.NoError(t, err)
	tests := []struct {
		name string
		prep func(t *testing.T, r *rig) (host string, mod func(*fleet.SSHConfig))
		want error
	}{
		{"host key changed", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			kh := filepath.Join(t.TempDir(), "kh")
			require.NoError(t, os.WriteFile(kh, []byte(knownLine(r.srv.Addr(), other.PublicKey())), 0o600))
			return r.srv.Addr(), func(c *fleet.SSHConfig) { c.KnownHostsFiles = []string{kh} }
		}, fleet.ErrHostKeyChanged},
		{"host key unknown", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			return r.srv.Addr(), func(c *fleet.SSHConfig) { c.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "none")} }
		}, fleet.ErrHostKeyUnknown},
		{"auth refused", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			r.srv.SetFailures(fleettest.Failures{RefuseAuth: true})
			return r.srv.Addr(), nil
		}, fleet.ErrAuth},
		{"wrong key", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			k, _ := userKey(t, t.TempDir(), "")
			return r.srv.Addr(), func(c *fleet.SSHConfig) { c.KeyFiles = []string{k} }
		}, fleet.ErrAuth},
		{"connection refused", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := ln.Addr().String()
			ln.Close()
			return addr, nil
		}, fleet.ErrUnreachable},
		{"dropped mid-command", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			r.srv.SetFailures(fleettest.Failures{DropMidCommand: true})
			return r.srv.Addr(), nil
		}, fleet.ErrUnreachable},
		{"stalled handshake", func(t *testing.T, r *rig) (string, func(*fleet.SSHConfig)) {
			r.srv.SetFailures(fleettest.Failures{StallHandshake: true})
			return r.srv.Addr(), func(c *fleet.SSHConfig) { c.DialTimeout = 200 * time.Millisecond }
		}, fleet.ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, fleettest.Config{})
			host, mod := tc.prep(t, r)
			ex := r.executor(t, mod)
			res, err := ex.Run(t.Context(), fleet.Command{Host: host, Args: []string{"echo", "hi"}})
			require.ErrorIs(t, err, tc.want)
			assert.False(t, res.OK())
			var he *fleet.HostError
			require.ErrorAs(t, err, &he)
			assert.True(t, strings.HasPrefix(err.Error(), "fleet: "), "message %q", err)
		})
	}
}

func knownLine(addr string, key ssh.PublicKey) string {
	host, port, _ := net.SplitHostPort(addr)
	return "[" + host + "]:" + port + " " + string(ssh.MarshalAuthorizedKey(key))
}

func TestSSHStalledHandshakeHonoursContext(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	r.srv.SetFailures(fleettest.Failures{StallHandshake: true})
	ex := r.executor(t, nil) // DialTimeout 10s: the context must end it first
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := ex.Run(ctx, fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.ErrorIs(t, err, context.Canceled)
}

func TestSSHAcceptNew(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	ex := r.executor(t, func(c *fleet.SSHConfig) {
		c.KnownHostsFiles = []string{kh}
		c.AcceptNewHostKeys = true
	})
	_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.NoError(t, err)
	b, err := os.ReadFile(kh)
	require.NoError(t, err)
	assert.Equal(t, r.srv.KnownHostsLine(), string(b))

	// A second server on the same address with another key is refused.
	other, _ := fleettest.NewSigner()
	require.NoError(t, os.WriteFile(kh, []byte(knownLine(r.srv.Addr(), other.PublicKey())), 0o600))
	ex2 := r.executor(t, func(c *fleet.SSHConfig) {
		c.KnownHostsFiles = []string{kh}
		c.AcceptNewHostKeys = true
	})
	_, err = ex2.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.ErrorIs(t, err, fleet.ErrHostKeyChanged)
}

func TestSSHHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	// The server offers an ECDSA and an Ed25519 host key; known_hosts has
	// only the Ed25519 one. Go's default preference (ECDSA first) would
	// report a changed key.
	ecdsaKey := ecdsaSigner(t)
	edKey, _ := fleettest.NewSigner()
	dir := t.TempDir()
	key, sg := userKey(t, dir, "")
	srv := fleettest.NewServer(t, fleettest.Config{HostKey: edKey, ExtraHostKeys: []ssh.Signer{ecdsaKey}, AuthorizedKeys: []ssh.PublicKey{sg.PublicKey()}})
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))
	ex, err := fleet.NewSSH(fleet.SSHConfig{User: "u", KeyFiles: []string{key}, KnownHostsFiles: []string{kh}})
	require.NoError(t, err)
	defer ex.Close()
	_, err = ex.Run(t.Context(), fleet.Command{Host: srv.Addr(), Args: []string{"true"}})
	require.NoError(t, err)
}

func TestSSHAuthMethods(t *testing.T) {
	tests := []struct {
		name string
		mod  func(t *testing.T, r *rig, c *fleet.SSHConfig)
	}{
		{"password", func(t *testing.T, r *rig, c *fleet.SSHConfig) {
			c.KeyFiles = nil
			c.Password = func(user, host string) (string, error) { return "s3cret", nil }
		}},
		{"keyboard-interactive", func(t *testing.T, r *rig, c *fleet.SSHConfig) {
			c.KeyFiles = nil
			c.KeyboardInteractive = func(user, instr string, qs []string, echos []bool) ([]string, error) {
				return []string{"s3cret"}, nil
			}
		}},
		{"encrypted key with passphrase callback", func(t *testing.T, r *rig, c *fleet.SSHConfig) {
			k, sg := userKey(t, t.TempDir(), "pass phrase")
			r.srv.AddAuthorizedKey(sg.PublicKey())
			c.KeyFiles = []string{k}
			c.Passphrase = func(string) ([]byte, error) { return []byte("pass phrase"), nil }
		}},
		{"certificate", func(t *testing.T, r *rig, c *fleet.SSHConfig) {
			k, sg := userKey(t, t.TempDir(), "")
			ca, _ := fleettest.NewSigner()
			cert := &ssh.Certificate{Key: sg.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"tester"}, ValidBefore: ssh.CertTimeInfinity}
			require.NoError(t, cert.SignCert(rand.Reader, ca))
			require.NoError(t, os.WriteFile(k+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o600))
			r.srv.AddTrustedUserCA(ca.PublicKey())
			c.KeyFiles = []string{k}
		}},
		{"ssh-agent", func(t *testing.T, r *rig, c *fleet.SSHConfig) {
			c.KeyFiles = nil
			c.AgentSocket = startAgent(t, r.keyFile)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, fleettest.Config{Password: "s3cret"})
			ex := r.executor(t, func(c *fleet.SSHConfig) { tc.mod(t, r, c) })
			res, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"echo", "in"}})
			require.NoError(t, err)
			assert.Equal(t, "in\n", string(res.Stdout))
		})
	}
}

func TestSSHEncryptedKeyWithoutCallback(t *testing.T) {
	k, _ := userKey(t, t.TempDir(), "pass phrase")
	_, err := fleet.NewSSH(fleet.SSHConfig{User: "u", KeyFiles: []string{k}})
	require.ErrorContains(t, err, "no passphrase callback")
}

func TestSSHJumpHosts(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	jump := newRig(t, fleettest.Config{AllowTCPForwarding: true})
	jump.srv.AddAuthorizedKey(r.signer.PublicKey())
	both := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(both, []byte(r.srv.KnownHostsLine()+jump.srv.KnownHostsLine()), 0o600))
	ex := r.executor(t, func(c *fleet.SSHConfig) {
		c.KnownHostsFiles = []string{both}
		c.Jump = []string{"hop@" + jump.srv.Addr(), jump.srv.Addr()}
	})
	res, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"echo", "through"}})
	require.NoError(t, err)
	assert.Equal(t, "through\n", string(res.Stdout))
	assert.Equal(t, 2, jump.srv.Accepted(), "the jump host is connected to twice: hop 1 and hop 2 through hop 1")

	// A jump host with an unknown key is refused before the target is reached.
	only := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(only, []byte(r.srv.KnownHostsLine()), 0o600))
	ex2 := r.executor(t, func(c *fleet.SSHConfig) {
		c.KnownHostsFiles = []string{only}
		c.Jump = []string{jump.srv.Addr()}
	})
	_, err = ex2.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.ErrorIs(t, err, fleet.ErrHostKeyUnknown)
}

func TestSSHStreamLocalThroughClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello from the socket\n")
		c.Close()
	}()
	r := newRig(t, fleettest.Config{AllowStreamLocal: true})
	ex := r.executor(t, nil)
	c, err := ex.Client(t.Context(), r.srv.Addr())
	require.NoError(t, err)
	conn, err := c.Dial("unix", sock)
	require.NoError(t, err)
	b, err := io.ReadAll(conn)
	require.NoError(t, err)
	assert.Equal(t, "hello from the socket\n", string(b))

	// Without the opt-in the channel is refused.
	r2 := newRig(t, fleettest.Config{})
	c2, err := r2.executor(t, nil).Client(t.Context(), r2.srv.Addr())
	require.NoError(t, err)
	_, err = c2.Dial("unix", sock)
	require.Error(t, err)
}

func TestSSHReconnectsAfterDrop(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	ex := r.executor(t, nil)
	r.srv.SetFailures(fleettest.Failures{DropMidCommand: true})
	_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.ErrorIs(t, err, fleet.ErrUnreachable)
	r.srv.SetFailures(fleettest.Failures{})
	_, err = ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.NoError(t, err)
	assert.Equal(t, 2, r.srv.Accepted())
}

var _ = errors.New

func TestSSHCloseHost(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	ex := r.executor(t, nil)
	for range 2 {
		_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
		require.NoError(t, err)
		ex.CloseHost(r.srv.Addr())
	}
	assert.Equal(t, 2, r.srv.Accepted(), "a closed host is dialled again")
}

func TestSSHKeepAliveDropsDeadConnection(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	ex := r.executor(t, func(c *fleet.SSHConfig) { c.KeepAlive = 50 * time.Millisecond })
	_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.NoError(t, err)
	r.srv.SetFailures(fleettest.Failures{IgnoreRequests: true})
	// The unanswered keepalive makes the client close the connection.
	require.Eventually(t, func() bool { return r.srv.Open() == 0 }, 10*time.Second, 10*time.Millisecond)
	r.srv.SetFailures(fleettest.Failures{})
	_, err = ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.NoError(t, err)
	assert.Equal(t, 2, r.srv.Accepted(), "a new connection after the dead one")
}

func TestSSHJumpHostBounded(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	jump := newRig(t, fleettest.Config{AllowTCPForwarding: true})
	jump.srv.SetFailures(fleettest.Failures{StallHandshake: true})
	both := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(both, []byte(r.srv.KnownHostsLine()+jump.srv.KnownHostsLine()), 0o600))
	ex := r.executor(t, func(c *fleet.SSHConfig) {
		c.KnownHostsFiles = []string{both}
		c.Jump = []string{jump.srv.Addr()}
		c.DialTimeout = 200 * time.Millisecond
	})
	_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	require.ErrorIs(t, err, fleet.ErrTimeout)
	assert.Zero(t, r.srv.Accepted(), "the target is never reached")
}

// Two executors (as two programs would) accept new keys for the same
// hosts into one known_hosts file at once: each host ends up on exactly
// one line.
func TestSSHAcceptNewConcurrent(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var rigs []*rig
	for range 5 {
		rigs = append(rigs, newRig(t, fleettest.Config{}))
	}
	var wg sync.WaitGroup
	for range 2 {
		for _, r := range rigs {
			ex := r.executor(t, func(c *fleet.SSHConfig) { c.KnownHostsFiles = []string{kh}; c.AcceptNewHostKeys = true })
			wg.Go(func() {
				_, err := ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
				assert.NoError(t, err)
			})
		}
	}
	wg.Wait()
	b, err := os.ReadFile(kh)
	require.NoError(t, err)
	for _, r := range rigs {
		assert.Equal(t, 1, strings.Count(string(b), r.srv.KnownHostsLine()), "lines for %s in\n%s", r.srv.Addr(), b)
	}
	assert.Equal(t, 5, strings.Count(string(b), "\n"))
}
