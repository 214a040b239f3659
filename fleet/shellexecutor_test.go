package fleet_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/workflowtest"
)

// ShellExecutor is what workflow.Cmd takes, with no adapter of the user's own.
var _ workflow.Executor = fleet.ShellExecutor{}

func TestShellExecutorLocal(t *testing.T) {
	workflowtest.TestExecutor(t, fleet.ShellExecutor{Executor: &fleet.Local{}}, "localhost")
}

// TestShellExecutorSSH runs workflowtest's checker over fleet's SSH
// executor and fleettest's SSH server running real /bin/sh.
func TestShellExecutorSSH(t *testing.T) {
	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))
	ex, err := fleet.NewSSH(fleet.SSHConfig{User: "ops", KnownHostsFiles: []string{kh},
		Password: func(user, host string) (string, error) { return "pw", nil }})
	require.NoError(t, err)
	t.Cleanup(func() { ex.Close() })
	workflowtest.TestExecutor(t, fleet.ShellExecutor{Executor: ex}, srv.Addr())
}

// TestShellExecutorRunsOnHostAndKeepsExitError: the command goes to the host
// named by workflow as a shell line, and a failure stays a *fleet.ExitError
// whose message carries stderr into the workflow report.
func TestShellExecutorRunsOnHostAndKeepsExitError(t *testing.T) {
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		if cmd.Host == "web2" {
			return fleet.Result{ExitCode: 1, Stderr: []byte("Job for app.service failed\n")}, nil
		}
		return fleet.Result{Stdout: []byte("ok\n")}, nil
	})
	ex := fleet.ShellExecutor{Executor: rec}
	out, err := ex.Run(t.Context(), "web1", "systemctl start app")
	require.NoError(t, err)
	assert.Equal(t, "ok\n", string(out))
	_, err = ex.Run(t.Context(), "web2", "systemctl start app")
	var ee *fleet.ExitError
	require.True(t, errors.As(err, &ee), "Run(web2) = %v; want a *fleet.ExitError", err)
	assert.Contains(t, err.Error(), "Job for app.service failed")
	cmds := rec.Commands()
	require.Len(t, cmds, 2)
	assert.Equal(t, fleet.Command{Host: "web1", Shell: "systemctl start app"}, cmds[0])
}

func TestShellExecutorNil(t *testing.T) {
	_, err := fleet.ShellExecutor{}.Run(t.Context(), "web1", "true")
	assert.ErrorContains(t, err, "fleet: ShellExecutor")
}
