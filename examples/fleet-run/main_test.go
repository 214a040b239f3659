package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// setup starts three in-process SSH servers accepting a new user key and
// writes the key, a known_hosts file and a hosts file. The third server's
// known_hosts entry is another key, as after a reinstall or an attack.
func setup(t *testing.T) (dir string, srvs []*fleettest.Server) {
	t.Helper()
	dir = t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "id"), pem.EncodeToMemory(blk), 0o600))
	sg, _ := ssh.NewSignerFromKey(priv)
	var kh, hosts strings.Builder
	for i := range 3 {
		srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sg.PublicKey()}, Handler: func(ctx context.Context, s *fleettest.Session) int {
			if s.Command == "exit 3" {
				return 3
			}
			fmt.Fprintf(s.Stdout, "ran %q\n", s.Command)
			return 0
		}})
		srvs = append(srvs, srv)
		if i == 2 {
			other, _ := fleettest.NewSigner()
			host, port, _ := net.SplitHostPort(srv.Addr())
			kh.WriteString("[" + host + "]:" + port + " " + string(ssh.MarshalAuthorizedKey(other.PublicKey())))
		} else {
			kh.WriteString(srv.KnownHostsLine())
		}
		fmt.Fprintf(&hosts, "%s # server %d\n\n", srv.Addr(), i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh.String()), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hosts"), []byte("# fleet\n"+hosts.String()), 0o600))
	return dir, srvs
}

func decode(t *testing.T, out string) map[string]line {
	t.Helper()
	got := map[string]line{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
		got[l.Host] = l
	}
	return got
}

func TestRun(t *testing.T) {
	dir, srvs := setup(t)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-hosts", filepath.Join(dir, "hosts"), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "known_hosts"), "--", "uname", "-a"}, &stdout, &stderr)
	require.ErrorIs(t, err, errFailed, "one host has a changed key: exit 1")
	got := decode(t, stdout.String())
	require.Len(t, got, 3, "one JSON line per host:\n%s", stdout.String())
	for _, s := range srvs[:2] {
		l := got[s.Addr()]
		assert.Equal(t, 0, l.ExitCode)
		assert.Equal(t, "ran \"uname -a\"\n", l.Stdout)
		assert.Empty(t, l.Error)
	}
	bad := got[srvs[2].Addr()]
	assert.Equal(t, -1, bad.ExitCode)
	assert.Contains(t, bad.Error, "host key changed")
	assert.Empty(t, srvs[2].Commands(), "nothing ran on the host with the changed key")
	assert.Contains(t, stderr.String(), "2 succeeded, 1 failed")
	assert.Contains(t, stdout.String(), `"connect_retries":0`, "a changed host key is not retried")
}

func TestRunExitCodes(t *testing.T) {
	dir, srvs := setup(t)
	hosts := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(hosts, []byte(srvs[0].Addr()+"\n"), 0o600))
	base := []string{"-hosts", hosts, "-user", "ops", "-key", filepath.Join(dir, "id"), "-known-hosts", filepath.Join(dir, "known_hosts")}
	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), append(base, "--", "true"), &stdout, new(bytes.Buffer)))
	stdout.Reset()
	require.ErrorIs(t, run(t.Context(), append(base, "--", "exit", "3"), &stdout, new(bytes.Buffer)), errFailed)
	assert.Equal(t, 3, decode(t, stdout.String())[srvs[0].Addr()].ExitCode)
}

func TestRunCIDRProbesFirst(t *testing.T) {
	dir, srvs := setup(t)
	_, port, _ := net.SplitHostPort(srvs[0].Addr())
	var stdout, stderr bytes.Buffer
	// 127.0.0.0/30 is 127.0.0.1 and 127.0.0.2; only .1 listens on port.
	err := run(t.Context(), []string{"-cidr", "127.0.0.0/30", "-port", port, "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "known_hosts"), "--", "hostname"}, &stdout, &stderr)
	require.NoError(t, err)
	got := decode(t, stdout.String())
	assert.Len(t, got, 1)
	assert.Contains(t, got, "127.0.0.1:"+port)
	assert.Contains(t, stderr.String(), "1 of 2 addresses answer")
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"help", []string{"-h"}, flag.ErrHelp},
		{"unknown flag", []string{"-nope"}, errUsage},
		{"no hosts", []string{"-user", "u", "--", "true"}, errUsage},
		{"both hosts and cidr", []string{"-hosts", "f", "-cidr", "10.0.0.0/30", "-user", "u", "--", "true"}, errUsage},
		{"no user", []string{"-hosts", "f", "--", "true"}, errUsage},
		{"no command", []string{"-hosts", "f", "-user", "u"}, errUsage},
		{"bad cidr", []string{"-cidr", "10.0.0.0/33", "-user", "u", "--", "true"}, errUsage},
		{"zero concurrency", []string{"-hosts", "f", "-user", "u", "-concurrency", "0", "--", "true"}, errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tc.args, new(bytes.Buffer), &stderr)
			require.True(t, errors.Is(err, tc.want), "run(%q) = %v; want %v", tc.args, err, tc.want)
			assert.Contains(t, stderr.String(), "Usage: fleet-run")
		})
	}
}

// TestRunSSHConfigFile: with -F, hosts are ssh_config aliases whose
// HostName, Port, User, IdentityFile and UserKnownHostsFile come from the
// file; -user is then optional, and an explicit -user wins.
func TestRunSSHConfigFile(t *testing.T) {
	dir, srvs := setup(t)
	var conf strings.Builder
	for i, s := range srvs[:2] {
		host, port, _ := net.SplitHostPort(s.Addr())
		fmt.Fprintf(&conf, "Host app%d\n  HostName %s\n  Port %s\n", i, host, port)
	}
	fmt.Fprintf(&conf, "Host *\n  User deploy\n  IdentityFile %s\n  UserKnownHostsFile %s\n", filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts"))
	cf := filepath.Join(dir, "ssh_config")
	require.NoError(t, os.WriteFile(cf, []byte(conf.String()), 0o600))
	hosts := filepath.Join(dir, "aliases")
	require.NoError(t, os.WriteFile(hosts, []byte("app0\napp1\n"), 0o600))

	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-hosts", hosts, "-F", cf, "--", "uptime"}, &stdout, &stderr)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	got := decode(t, stdout.String())
	require.Len(t, got, 2)
	for i, s := range srvs[:2] {
		assert.Equal(t, "ran \"uptime\"\n", got[fmt.Sprintf("app%d", i)].Stdout)
		require.Len(t, s.Commands(), 1)
		assert.Equal(t, "deploy", s.Commands()[0].User, "User from the file")
	}
	stdout.Reset()
	err = run(t.Context(), []string{"-hosts", hosts, "-F", cf, "-user", "ops", "--", "uptime"}, &stdout, &stderr)
	require.NoError(t, err)
	assert.Equal(t, "ops", srvs[0].Commands()[1].User, "an explicit -user wins")

	err = run(t.Context(), []string{"-hosts", hosts, "-F", filepath.Join(dir, "missing"), "--", "uptime"}, &stdout, &stderr)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestRunInventory: -i reads an Ansible inventory; hosts are printed by
// inventory name and reached at ansible_host/ansible_port as
// ansible_user; -limit picks groups.
func TestRunInventory(t *testing.T) {
	dir, srvs := setup(t)
	var inv strings.Builder
	inv.WriteString("[web]\n")
	for i, s := range srvs {
		if i == 2 {
			inv.WriteString("[changed]\n")
		}
		host, port, _ := net.SplitHostPort(s.Addr())
		fmt.Fprintf(&inv, "app%d ansible_host=%s ansible_port=%s\n", i, host, port)
	}
	inv.WriteString("[all:vars]\nansible_user=deploy\n")
	invFile := filepath.Join(dir, "inventory.ini")
	require.NoError(t, os.WriteFile(invFile, []byte(inv.String()), 0o600))
	base := []string{"-i", invFile, "-key", filepath.Join(dir, "id"), "-known-hosts", filepath.Join(dir, "known_hosts")}

	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append(base, "-limit", "web", "--", "uptime"), &stdout, &stderr)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	got := decode(t, stdout.String())
	require.Len(t, got, 2, stdout.String())
	for i, s := range srvs[:2] {
		assert.Equal(t, "ran \"uptime\"\n", got[fmt.Sprintf("app%d", i)].Stdout, "printed by inventory name")
		require.Len(t, s.Commands(), 1)
		assert.Equal(t, "deploy", s.Commands()[0].User, "ansible_user")
	}
	assert.Empty(t, srvs[2].Commands(), "-limit web leaves out the changed group")

	stdout.Reset()
	err = run(t.Context(), append(base, "--", "uptime"), &stdout, &stderr)
	require.ErrorIs(t, err, errFailed, "without -limit every host runs, and app2's key changed")
	assert.Len(t, decode(t, stdout.String()), 3)

	err = run(t.Context(), append(base, "-limit", "nosuch", "--", "uptime"), &stdout, &stderr)
	require.ErrorIs(t, err, fleet.ErrInventory)
	err = run(t.Context(), []string{"-hosts", filepath.Join(dir, "hosts"), "-user", "ops", "-limit", "web", "--", "true"}, &stdout, &stderr)
	require.ErrorIs(t, err, errUsage)
}

// TestRunOutputModes: -inline prints parallel-ssh's -i form, -outdir writes
// each host's streams to files, -progress always keeps a progress line on
// stderr, and the summary names the failed hosts.
func TestRunOutputModes(t *testing.T) {
	dir, srvs := setup(t)
	outdir := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-hosts", filepath.Join(dir, "hosts"), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "known_hosts"), "-inline", "-outdir", outdir, "-progress", "always", "-concurrency", "1", "--", "uname"}, &stdout, &stderr)
	require.ErrorIs(t, err, errFailed)
	out := stdout.String()
	assert.Regexp(t, `(?m)^\[1\] \d\d:\d\d:\d\d \[SUCCESS\] `+regexp.QuoteMeta(srvs[0].Addr())+"\nran \"uname\"\n", out)
	assert.Regexp(t, `(?m)^\[3\] \d\d:\d\d:\d\d \[FAILURE\] `+regexp.QuoteMeta(srvs[2].Addr())+` fleet: .*host key changed`, out)
	assert.NotContains(t, out, "{", "no JSON with -inline")

	b, err := os.ReadFile(filepath.Join(outdir, srvs[1].Addr()+".stdout"))
	require.NoError(t, err)
	assert.Equal(t, "ran \"uname\"\n", string(b))
	b, err = os.ReadFile(filepath.Join(outdir, srvs[2].Addr()+".stderr"))
	require.NoError(t, err)
	assert.Empty(t, b, "a host that failed to connect has empty files")

	assert.Contains(t, stderr.String(), "\r\x1b[Kfleet-run: 2/3 done, 0 failed, 0 in flight, ETA", "progress line")
	assert.Regexp(t, `fleet-run: 2 succeeded, 1 failed, 0 not started in \S+\nfleet-run: failed: `+regexp.QuoteMeta(srvs[2].Addr())+"\n$", stderr.String())
}
