package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet/fleettest"
)

func fakeAptGet(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../fleet/testdata/fake-apt-get")
	require.NoError(t, err)
	t.Setenv("FAKE_APT_DIR", t.TempDir())
	return p
}

func lines(t *testing.T, s string) []line {
	t.Helper()
	var out []line
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
		out = append(out, l)
	}
	return out
}

func TestRunLocal(t *testing.T) {
	apt := fakeAptGet(t)
	require.NoError(t, os.WriteFile(filepath.Join(os.Getenv("FAKE_APT_DIR"), "curl"), nil, 0o644))
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-local", "-apt-get", apt, "curl", "jq"}, &stdout, &stderr))
	got := lines(t, stdout.String())
	require.Len(t, got, 1)
	assert.Equal(t, []string{"jq"}, got[0].Installed)
	assert.Equal(t, []string{"curl"}, got[0].AlreadyNewest)
	assert.True(t, got[0].Answered)

	// Again: everything is already the newest, no prompt.
	stdout.Reset()
	require.NoError(t, run(t.Context(), []string{"-local", "-apt-get", apt, "curl", "jq"}, &stdout, &stderr))
	got = lines(t, stdout.String())
	assert.Equal(t, []string{"curl", "jq"}, got[0].AlreadyNewest)
	assert.False(t, got[0].Answered)
}

func TestRunOverSSH(t *testing.T) {
	apt := fakeAptGet(t)
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "id"), pem.EncodeToMemory(blk), 0o600))
	sg, _ := ssh.NewSignerFromKey(priv)
	srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sg.PublicKey()}})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kh"), []byte(srv.KnownHostsLine()), 0o600))
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-host", srv.Addr(), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "kh"), "-apt-get", apt, "nginx"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	got := lines(t, stdout.String())
	require.Len(t, got, 1)
	assert.Equal(t, []string{"nginx"}, got[0].Installed)
	require.Len(t, srv.Commands(), 1)
	assert.True(t, srv.Commands()[0].PTY, "apt-get ran on a pty")

	// An unknown package fails the host: exit 1.
	stdout.Reset()
	err = run(t.Context(), []string{"-host", srv.Addr(), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "kh"), "-apt-get", apt, "no-such-package"}, &stdout, &stderr)
	require.ErrorIs(t, err, errFailed)
	assert.Equal(t, 100, lines(t, stdout.String())[0].ExitCode)
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"help", []string{"-h"}, flag.ErrHelp},
		{"unknown flag", []string{"-x"}, errUsage},
		{"no target", []string{"nginx"}, errUsage},
		{"two targets", []string{"-local", "-host", "a", "-user", "u", "nginx"}, errUsage},
		{"no user", []string{"-host", "a", "nginx"}, errUsage},
		{"no packages", []string{"-local"}, errUsage},
		{"option as package", []string{"-local", "--", "-o=x"}, errUsage},
		{"sudo password without sudo", []string{"-local", "-sudo-password-file", "pw", "nginx"}, errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tc.args, new(bytes.Buffer), &stderr)
			require.True(t, errors.Is(err, tc.want), "run(%q) = %v; want %v", tc.args, err, tc.want)
			assert.Contains(t, stderr.String(), "Usage: apt-install")
		})
	}
}
