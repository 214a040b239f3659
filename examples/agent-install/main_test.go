package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
	"github.com/opskit/opskit/fleet/fleettest"
)

func TestRunUsage(t *testing.T) {
	zipFile := filepath.Join(t.TempDir(), "p.zip")
	require.NoError(t, os.WriteFile(zipFile, []byte("x"), 0o600))
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"help", []string{"-h"}, flag.ErrHelp},
		{"unknown flag", []string{"-nope"}, errUsage},
		{"no zip", []string{"-host", "h", "-name", "a", "-binary", "b"}, errUsage},
		{"no name", []string{"-host", "h", "-binary", "b", zipFile}, errUsage},
		{"no hosts", []string{"-name", "a", "-binary", "b", zipFile}, errUsage},
		{"bad concurrency", []string{"-host", "h", "-name", "a", "-binary", "b", "-concurrency", "0", zipFile}, errUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.ErrorIs(t, run(t.Context(), tt.args, &out, &errOut), tt.want)
			assert.Empty(t, out.String())
		})
	}
}

// TestRunInstallsThroughSSH installs on an agent reached through the
// in-process SSH server, and reports an unreachable host as failed.
func TestRunInstallsThroughSSH(t *testing.T) {
	dir := t.TempDir()
	// The agent, on a unix socket.
	a, err := agent.New(agent.Config{Dir: filepath.Join(dir, "pkgs"), StartGrace: 100 * time.Millisecond,
		Sampler: agent.NewSampler(agent.SamplerConfig{})})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Address: sock})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { a.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() { cancel(); <-served })

	// An SSH server that lets a key in and forwards to unix sockets.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "id_ed25519")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600))
	srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sshPub}, AllowStreamLocal: true})
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))

	// A host that refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	l.Close()

	zipFile := filepath.Join(dir, "napper.zip")
	require.NoError(t, os.WriteFile(zipFile, sleepZip(t), 0o600))
	var out, errOut bytes.Buffer
	hostsFile := filepath.Join(dir, "hosts")
	require.NoError(t, os.WriteFile(hostsFile, []byte("# the agent's host\n"+srv.Addr()+"  # via fleettest\n"), 0o600))
	err = run(t.Context(), []string{"-hosts", hostsFile, "-host", dead, "-user", "ops", "-key", keyFile,
		"-known-hosts", kh, "-socket", sock, "-name", "napper", "-binary", "bin/sleep", zipFile, "--", "600"}, &out, &errOut)
	require.ErrorIs(t, err, errFailed)

	results := map[string]result{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r result
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		results[r.Host] = r
	}
	require.Len(t, results, 2)
	ok := results[srv.Addr()]
	assert.Empty(t, ok.Error)
	assert.True(t, ok.Running)
	assert.NotZero(t, ok.Pid)
	assert.NotEmpty(t, results[dead].Error)
	assert.Contains(t, errOut.String(), srv.Addr()+": sent ")
	assert.Contains(t, errOut.String(), "(100%)")

	st, err := a.Status("napper")
	require.NoError(t, err)
	assert.Equal(t, []string{"600"}, st.Args)
	assert.Equal(t, ok.Pid, st.Pid)
}

func sleepZip(t testing.TB) []byte {
	t.Helper()
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	require.NoError(t, err)
	return z
}
