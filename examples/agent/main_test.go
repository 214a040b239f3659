package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
)

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"help", []string{"-h"}, flag.ErrHelp},
		{"unknown flag", []string{"-nope"}, errUsage},
		{"stray argument", []string{"extra"}, errUsage},
		{"cert without key", []string{"-tcp", "127.0.0.1:0", "-tls-cert", "c"}, errUsage},
		{"tcp without a token", []string{"-dir", t.TempDir(), "-tcp", "0.0.0.0:0"}, agent.ErrInsecureListen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OPSKIT_AGENT_TOKEN", "")
			var out, errOut bytes.Buffer
			err := run(t.Context(), tt.args, &out, &errOut)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

// TestRunServesAndStopsPrograms runs the daemon on a socket, installs a
// copy of sleep, reads real stats, and checks that the program is stopped
// when the daemon exits.
func TestRunServesAndStopsPrograms(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "agent.sock")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", filepath.Join(dir, "pkgs"), "-socket", sock, "-start-grace", "100ms"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "agent: listening on unix "+sock+"\n", line)
	go io.Copy(io.Discard, pr)
	st, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	defer c.Close()
	var stats *agent.Stats
	for stats == nil { // the first collection runs as the server starts
		stats, err = c.Stats(t.Context())
		if err != nil && !errors.Is(err, agent.ErrNoStats) {
			require.NoError(t, err)
		}
	}
	assert.NotEmpty(t, stats.CPU.PerCPU)

	z := sleepZip(t)
	pst, err := c.Install(t.Context(), "napper", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}}, agent.InstallOptions{})
	require.NoError(t, err)
	require.True(t, pst.Running)

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Error(t, syscall.Kill(pst.Pid, 0), "the program is stopped when the daemon exits")
	assert.NoFileExists(t, sock)
}

func sleepZip(t testing.TB) []byte {
	t.Helper()
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	require.NoError(t, err)
	return z
}
