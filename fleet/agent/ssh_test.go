package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/fleettest"
)

// sshTo returns an SSH executor that trusts srv.
func sshTo(t testing.TB, srv *fleettest.Server) *fleet.SSH {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))
	ex, err := fleet.NewSSH(fleet.SSHConfig{
		User:            "ops",
		KnownHostsFiles: []string{kh},
		Password:        func(user, host string) (string, error) { return "pw", nil },
	})
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })
	return ex
}

// TestClientOverSSH reaches the agent's unix socket through an SSH
// connection (direct-streamlocal), with fleet's pooled client.
func TestClientOverSSH(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	_, sock := serve(t, a)
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw", AllowStreamLocal: true})
	ex := sshTo(t, srv)
	c := agent.NewSSHClient(ex.Client, srv.Addr(), sock, agent.ClientConfig{})
	defer c.Close()

	z := helperZip(t)
	st, err := c.Install(t.Context(), "app", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/helper", Args: []string{"run"}}, agent.InstallOptions{})
	require.NoError(t, err)
	assert.True(t, st.Running)
	stats, err := c.Stats(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(42), stats.Uptime)
	vars, err := c.Vars(t.Context())
	require.NoError(t, err)
	for _, k := range []string{"cmdline", "memstats", "stats", "packages"} {
		assert.Contains(t, vars, k)
	}
	assert.JSONEq(t, `42`, string(mustField(t, vars["stats"], "uptime")))
	assert.Equal(t, 1, srv.Accepted(), "one pooled SSH connection")
}

// TestClientOverSSHRefused: without AllowStreamLocal the SSH server refuses
// the channel, and the error says so.
func TestClientOverSSHRefused(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	_, sock := serve(t, a)
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
	c := agent.NewSSHClient(sshTo(t, srv).Client, srv.Addr(), sock, agent.ClientConfig{})
	_, err := c.Stats(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over ssh")
}
