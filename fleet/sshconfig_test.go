package fleet_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// writeSSHConfig writes an ssh_config file and returns its path.
func writeSSHConfig(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh_config")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// TestSSHConfigFile: a Host alias with HostName, Port, User, IdentityFile
// and UserKnownHostsFile is all an executor needs; a user or port in the
// host, and explicit SSHConfig fields, win over the file.
func TestSSHConfigFile(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	host, port, err := splitHostPort(r.srv.Addr())
	require.NoError(t, err)
	conf := writeSSHConfig(t, fmt.Sprintf(`# fleet
Host web web-*
    HostName %s
    Port %s
    User alice
    IdentityFile %s
    UserKnownHostsFile %s
    ConnectTimeout 5
    ServerAliveInterval 15

Host *
    User nobody
`, host, port, r.keyFile, r.knownHosts))

	// No User, KeyFiles or KnownHostsFiles: all from the file.
	ex, err := fleet.NewSSH(fleet.SSHConfig{ConfigFiles: []string{conf}})
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })
	users := func() []string {
		var s []string
		for _, c := range r.srv.Commands() {
			s = append(s, c.User)
		}
		return s
	}
	for _, h := range []string{"web", "web-2", "carol@web"} {
		res, err := ex.Run(t.Context(), fleet.Command{Host: h, Args: []string{"echo", "hi"}})
		require.NoError(t, err, "host %q", h)
		assert.Equal(t, "hi\n", string(res.Stdout))
		assert.Equal(t, h, res.Host, "the Result names the host as given")
	}
	assert.Equal(t, []string{"alice", "alice", "carol"}, users(), "User from the file; user@ in the host wins")

	// The host's port wins over the file's.
	_, err = ex.Run(t.Context(), fleet.Command{Host: "web:1", Args: []string{"true"}})
	assert.ErrorIs(t, err, fleet.ErrUnreachable)

	// Explicit fields win: User.
	ex2, err := fleet.NewSSH(fleet.SSHConfig{User: "bob", ConfigFiles: []string{conf}})
	require.NoError(t, err)
	t.Cleanup(func() { ex2.Close() })
	_, err = ex2.Run(t.Context(), fleet.Command{Host: "web", Args: []string{"true"}})
	require.NoError(t, err)
	assert.Equal(t, "bob", users()[len(users())-1])

	// Explicit KnownHostsFiles win over UserKnownHostsFile.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	ex3, err := fleet.NewSSH(fleet.SSHConfig{KnownHostsFiles: []string{empty}, ConfigFiles: []string{conf}})
	require.NoError(t, err)
	t.Cleanup(func() { ex3.Close() })
	_, err = ex3.Run(t.Context(), fleet.Command{Host: "web", Args: []string{"true"}})
	assert.ErrorIs(t, err, fleet.ErrHostKeyUnknown)

	// A host the file does not name is used as given: web's
	// UserKnownHostsFile is not used for it.
	_, err = ex.Run(t.Context(), fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}})
	assert.ErrorIs(t, err, fleet.ErrHostKeyUnknown)
}

// TestSSHConfigProxyJumpAndAcceptNew: ProxyJump names a jump host that is
// itself an alias; StrictHostKeyChecking accept-new records the unknown
// key of each hop in UserKnownHostsFile.
func TestSSHConfigProxyJumpAndAcceptNew(t *testing.T) {
	inner := newRig(t, fleettest.Config{})
	jump := fleettest.NewServer(t, fleettest.Config{AllowTCPForwarding: true, AuthorizedKeys: []ssh.PublicKey{inner.signer.PublicKey()}})
	ih, ip, _ := splitHostPort(inner.srv.Addr())
	jh, jp, _ := splitHostPort(jump.Addr())
	kh := filepath.Join(t.TempDir(), "known_hosts") // empty: both keys unknown
	conf := writeSSHConfig(t, fmt.Sprintf(`Host inner
    HostName %s
    Port %s
    ProxyJump gw
Host gw
    HostName %s
    Port %s
    User jumper
Host *
    User ops
    IdentityFile %s
    UserKnownHostsFile %s
    StrictHostKeyChecking accept-new
`, ih, ip, jh, jp, inner.keyFile, kh))
	ex, err := fleet.NewSSH(fleet.SSHConfig{ConfigFiles: []string{conf}})
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })
	res, err := ex.Run(t.Context(), fleet.Command{Host: "inner", Args: []string{"echo", "via gw"}})
	require.NoError(t, err)
	assert.Equal(t, "via gw\n", string(res.Stdout))
	assert.Equal(t, 1, jump.Accepted(), "the connection went through the jump host")
	require.Len(t, inner.srv.Commands(), 1)
	assert.Equal(t, "ops", inner.srv.Commands()[0].User)
	assert.Empty(t, jump.Commands(), "nothing ran on the jump host")
	b, err := os.ReadFile(kh)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(b), "\n"), "both hops' keys were recorded:\n%s", b)

	// An explicit Jump wins over ProxyJump: with a bogus one, it fails.
	ex2, err := fleet.NewSSH(fleet.SSHConfig{ConfigFiles: []string{conf}, Jump: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	t.Cleanup(func() { ex2.Close() })
	_, err = ex2.Run(t.Context(), fleet.Command{Host: "inner", Args: []string{"true"}})
	assert.ErrorIs(t, err, fleet.ErrUnreachable)

}

// TestSSHConfigTimeouts: ConnectTimeout bounds a hop that never speaks SSH,
// and ServerAliveInterval closes a pooled connection whose peer stopped
// answering keepalives, unless SSHConfig sets its own values.
func TestSSHConfigTimeouts(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	host, port, _ := splitHostPort(r.srv.Addr())
	conf := writeSSHConfig(t, fmt.Sprintf("Host app\n  HostName %s\n  Port %s\n  ConnectTimeout 1\n  ServerAliveInterval 1\n", host, port))
	ex := r.executor(t, func(c *fleet.SSHConfig) { c.ConfigFiles = []string{conf} })

	_, err := ex.Run(t.Context(), fleet.Command{Host: "app", Args: []string{"true"}})
	require.NoError(t, err)
	r.srv.SetFailures(fleettest.Failures{IgnoreRequests: true})
	require.Eventually(t, func() bool { return r.srv.Open() == 0 }, 10*time.Second, 20*time.Millisecond,
		"ServerAliveInterval 1: the unanswered keepalive closes the connection")

	r.srv.SetFailures(fleettest.Failures{StallHandshake: true})
	_, err = ex.Run(t.Context(), fleet.Command{Host: "app", Args: []string{"true"}})
	require.ErrorIs(t, err, fleet.ErrTimeout)
	assert.ErrorContains(t, err, "longer than 1s", "ConnectTimeout 1")

	explicit := r.executor(t, func(c *fleet.SSHConfig) { c.ConfigFiles = []string{conf}; c.DialTimeout = 100 * time.Millisecond })
	_, err = explicit.Run(t.Context(), fleet.Command{Host: "app", Args: []string{"true"}})
	assert.ErrorContains(t, err, "longer than 100ms", "an explicit DialTimeout wins")
}
