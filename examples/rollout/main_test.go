package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/examples/internal/lbrollout"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/workflow"
)

func TestDemo(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		want     []string
		wantErr  bool
		progress string
	}{
		{
			name:     "all backends upgraded",
			args:     []string{"-demo"},
			want:     []string{"pool: 8 of 8 backends in rotation", "end state: ESSuccess"},
			progress: "done 8 | failed 0 | in flight 0 | remaining 0",
		},
		{
			name:     "a corrupted copy is a tolerated failure",
			args:     []string{"-demo", "-demo-corrupt", "4"},
			want:     []string{"in state copy: checksum mismatch", "pool: 7 of 8 backends in rotation", "out of pool  down", "end state: ESSuccess"},
			progress: "done 7 | failed 1 | in flight 0 | remaining 0",
		},
		{
			name:    "a corrupted canary stops the rollout",
			args:    []string{"-demo", "-demo-corrupt", "1"},
			want:    []string{"pool: 7 of 8 backends in rotation", "end state: ESCanaryFailure"},
			wantErr: true,
		},
		{
			name: "dry run prints the plan",
			args: []string{"-demo", "-dry-run"},
			want: []string{"plan: 8 targets to run (0 skipped), 1 canary, concurrency 3, 1 failure tolerated",
				"preconditions: load balancer answers",
				": remove-from-pool → stop → copy → start → check → add-to-pool"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tt.args, &out, &errb)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
			}
			for _, w := range tt.want {
				assert.Contains(t, out.String(), w)
			}
			if tt.progress != "" {
				lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
				assert.Equal(t, tt.progress, lines[len(lines)-1], "last progress line")
			}
			if tt.name == "all backends upgraded" {
				assert.Equal(t, 8, strings.Count(out.String(), "in pool      app v2"), out.String())
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-h"}, &out, &errb)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, errb.String(), "Usage:")
	for _, args := range [][]string{
		{"-bogus"},
		{},
		{"-demo", "-config", "x.json"},
		{"-demo", "extra"},
		{"-demo", "-resume", "-retry-failed"},
		{"-config", "x.json"},
		{"-demo", "-demo-corrupt", "9"},
	} {
		err := run(t.Context(), args, &out, &errb)
		assert.ErrorIs(t, err, errUsage, "run(%q)", args)
	}
}

// TestSSHPath runs the non-demo path against fleet's in-process SSH server:
// the copy and checksum run for real through /bin/sh, stop and start drive
// a local backend, and the load balancer is the demo's.
func TestSSHPath(t *testing.T) {
	dir := t.TempDir()
	b, err := lbrollout.NewDemoBackend(dir)
	require.NoError(t, err)
	t.Cleanup(b.Stop)
	lb, err := lbrollout.NewDemoLB([]string{b.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() { lb.Close() })

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "id_ed25519")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600))

	srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sshPub},
		Handler: func(ctx context.Context, s *fleettest.Session) int {
			switch {
			case strings.HasPrefix(s.Command, "pkill -f -- "):
				b.Stop()
				return 0
			case strings.HasPrefix(s.Command, "nohup "):
				if err := b.Start(); err != nil {
					return 1
				}
				return 0
			}
			return fleettest.RunReal(ctx, s)
		}})
	kh := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600))
	_, port, _ := net.SplitHostPort(srv.Addr())

	src := filepath.Join(dir, "app-v2")
	require.NoError(t, os.WriteFile(src, []byte("app v2\n"), 0o755))
	cfg := `{"Concurrency":1,"CanaryNum":1,"MaxFailures":0,"Src":"` + src + `","LB":"` + lb.Addr() +
		`","Pattern":"app","Backends":["` + b.Addr() + `"],"Dst":"` + b.Binary() + `"}`
	cfgFile := filepath.Join(dir, "rollout.json")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))

	var out, errb bytes.Buffer
	err = run(t.Context(), []string{"-config", cfgFile, "-user", "ops", "-key", keyFile, "-known-hosts", kh,
		"-ssh-port", port, "-journal", filepath.Join(dir, "journal")}, &out, &errb)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	assert.Contains(t, out.String(), "end state: ESSuccess")
	assert.Contains(t, out.String(), "pool: 1 of 1 backends in rotation")
	got, err := os.ReadFile(b.Binary())
	require.NoError(t, err)
	assert.Equal(t, "app v2\n", string(got), "the binary was replaced over SSH")
	v, err := lbrollout.Get(t.Context(), http.DefaultClient, "http://"+b.Addr()+"/")
	require.NoError(t, err)
	assert.Equal(t, "app v2", v, "the backend runs the new binary")
	var cmds []string
	for _, r := range srv.Commands() {
		cmds = append(cmds, r.Command)
	}
	assert.Len(t, cmds, 4, "stop, checksum of dst, copy+check+rename, start: %q", cmds)

	// Resuming a finished rollout touches nothing.
	out.Reset()
	err = run(t.Context(), []string{"-config", cfgFile, "-user", "ops", "-key", keyFile, "-known-hosts", kh,
		"-ssh-port", port, "-journal", filepath.Join(dir, "journal"), "-resume"}, &out, &errb)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "end state: ESSuccess")
	assert.Len(t, srv.Commands(), 4, "-resume skipped the backend that succeeded")

	// Resuming that journal with another binary is refused before anything
	// runs, unless asked for.
	require.NoError(t, os.WriteFile(src, []byte("app v3\n"), 0o755))
	out.Reset()
	err = run(t.Context(), []string{"-config", cfgFile, "-user", "ops", "-key", keyFile, "-known-hosts", kh,
		"-ssh-port", port, "-journal", filepath.Join(dir, "journal"), "-resume"}, &out, &errb)
	require.ErrorIs(t, err, workflow.ErrPlanMismatch)
	assert.Len(t, srv.Commands(), 4, "a refused resume runs nothing")
	err = run(t.Context(), []string{"-config", cfgFile, "-user", "ops", "-key", keyFile, "-known-hosts", kh,
		"-ssh-port", port, "-journal", filepath.Join(dir, "journal"), "-resume", "-allow-plan-change"}, &out, &errb)
	require.NoError(t, err)
	assert.Len(t, srv.Commands(), 4, "the journaled rollout finished: nothing to do")
}

func TestConfigDryRunWritesNothing(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	require.NoError(t, os.WriteFile(src, []byte("v2"), 0o755))
	cfgFile := filepath.Join(dir, "rollout.json")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`{"Concurrency":2,"CanaryNum":1,"MaxFailures":0,"Src":"`+src+
		`","LB":"lb:8081","Pattern":"app","Backends":["web1:8080","web2:8080","web3:8080"]}`), 0o600))
	journal := filepath.Join(dir, "journal")
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"-config", cfgFile, "-user", "ops", "-known-hosts", filepath.Join(dir, "kh"),
		"-journal", journal, "-dry-run"}, &out, &errb)
	require.NoError(t, err, errb.String())
	assert.Contains(t, out.String(), "canary 1: web1:8080: remove-from-pool → stop → copy → start → check → add-to-pool\nrollout: web2:8080")
	assert.NoFileExists(t, journal, "a dry run writes no journal")
}

func TestProgressLine(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var buf bytes.Buffer
		p := &progress{w: &buf, tty: tty, total: 4}
		for _, ev := range []workflow.Event{
			{Kind: workflow.EventSkip, Target: "a"},
			{Kind: workflow.EventStart, Target: "b"},
			{Kind: workflow.EventState, Target: "b", State: "stop"}, // no change, no line
			{Kind: workflow.EventStart, Target: "c"},
			{Kind: workflow.EventFail, Target: "b"},
			{Kind: workflow.EventEnd},
		} {
			p.event(ev)
		}
		assert.Equal(t, "done 1 | failed 1 | in flight 1 | remaining 1", p.line(), "tty=%v", tty)
		if tty {
			assert.Equal(t, 4, strings.Count(buf.String(), "\r\033[K"), "one redraw per change: %q", buf.String())
			assert.True(t, strings.HasSuffix(buf.String(), "\n"), "the line ends when the rollout does")
		} else {
			assert.Equal(t, 4, strings.Count(buf.String(), "\n"), "one line per change: %q", buf.String())
		}
	}
}
