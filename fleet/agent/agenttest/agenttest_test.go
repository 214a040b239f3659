package agenttest_test

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
)

func sleepZip(t testing.TB) []byte {
	t.Helper()
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	require.NoError(t, err)
	return z
}

func TestServer(t *testing.T) {
	for _, viaSSH := range []bool{false, true} {
		name := map[bool]string{false: "socket", true: "ssh"}[viaSSH]
		t.Run(name, func(t *testing.T) {
			srv := agenttest.NewServer(t, agenttest.Config{Stats: &agent.Stats{Uptime: 7}, SSH: viaSSH})
			c := srv.Client()
			if viaSSH {
				c = srv.SSHClient()
				require.NotEmpty(t, srv.SSHAddr())
			} else {
				assert.Nil(t, srv.SSHClient(), "no SSH client without Config.SSH")
			}
			defer c.Close()

			st, err := c.Stats(t.Context())
			require.NoError(t, err)
			assert.Equal(t, uint64(7), st.Uptime)
			srv.SetStats(&agent.Stats{Uptime: 8})
			st, err = c.Stats(t.Context())
			require.NoError(t, err)
			assert.Equal(t, uint64(8), st.Uptime, "SetStats publishes at once")

			z := sleepZip(t)
			pst, err := c.Install(t.Context(), "napper", bytes.NewReader(z), int64(len(z)),
				agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}}, agent.InstallOptions{})
			require.NoError(t, err)
			assert.True(t, pst.Running)
			var kinds []agent.EventKind
			for _, e := range srv.Events() {
				kinds = append(kinds, e.Kind)
			}
			assert.Equal(t, []agent.EventKind{agent.EventStarted, agent.EventInstalled}, kinds)
			got, err := srv.Agent().Status("napper")
			require.NoError(t, err)
			assert.Equal(t, pst.Pid, got.Pid)
		})
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	srv, err := agenttest.New(agenttest.Config{})
	require.NoError(t, err)
	sock := srv.Socket()
	require.FileExists(t, sock)
	require.NoError(t, srv.Close())
	assert.NoFileExists(t, sock)
}

func TestProgramZipMissingProgram(t *testing.T) {
	_, err := agenttest.ProgramZip("no-such-program-agenttest", "bin/x")
	require.ErrorIs(t, err, exec.ErrNotFound)
}
