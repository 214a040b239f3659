package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
		{"bad log format", []string{"-log-format", "xml"}, errUsage},
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

// TestRunServesMetrics runs the daemon with -metrics-addr and -log-format
// json, installs a program and scrapes /metrics on the separate listener.
func TestRunServesMetrics(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", filepath.Join(dir, "pkgs"), "-socket", sock, "-start-grace", "100ms",
			"-metrics-addr", "127.0.0.1:0", "-log-format", "json"}, pw, &logs)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "agent: listening on unix "+sock+"\n", line)
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "agent: metrics on ")
	require.True(t, ok, "second line %q", line)
	go io.Copy(io.Discard, br)

	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	defer c.Close()
	z := sleepZip(t)
	_, err = c.Install(t.Context(), "napper", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}}, agent.InstallOptions{})
	require.NoError(t, err)
	for { // the first collection runs as the server starts
		if _, err := c.Stats(t.Context()); err == nil {
			break
		}
	}
	scrape := func() string {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	body := scrape()
	assert.Contains(t, body, `opskit_agent_program_up{package="napper"} 1`)
	assert.Contains(t, body, `opskit_agent_program_restarts_total{package="napper"} 0`)
	assert.Contains(t, body, "node_load1 ")
	assert.Contains(t, body, `node_cpu_seconds_total{cpu="0",mode="idle"}`)
	assert.Contains(t, body, "process_resident_memory_bytes ", "the agent's own process metrics")

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	first, _, _ := strings.Cut(logs.String(), "\n")
	assert.True(t, strings.HasPrefix(first, "{"), "JSON logs, got %q", first)
}
