//go:build unix

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet/fleettest"
)

// TestMain lets a test run this binary as fleet-run itself (in a shell
// that lowered the open-file limit first): FLEET_RUN_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("FLEET_RUN_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunConcurrencyAboveFileLimit (issue 18 item 6, no fd ceiling): with
// more hosts in flight than the open-file limit allows (-concurrency 100,
// limit 64), every reachable host still runs: fleet-run keeps the hosts in
// flight under the limit and says so, instead of failing the rest as
// "host unreachable: socket: too many open files".
func TestRunConcurrencyAboveFileLimit(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to lower the open-file limit with")
	}
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "id"), pem.EncodeToMemory(blk), 0o600))
	sg, _ := ssh.NewSignerFromKey(priv)
	const n = 100
	var kh, hosts strings.Builder
	for range n {
		// Each command holds its connection a while, so all of them
		// would be open at once at -concurrency 100.
		srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{sg.PublicKey()}, Handler: func(ctx context.Context, s *fleettest.Session) int {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
			fmt.Fprintln(s.Stdout, "ok")
			return 0
		}})
		kh.WriteString(srv.KnownHostsLine())
		fmt.Fprintln(&hosts, srv.Addr())
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh.String()), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o600))

	cmd := exec.CommandContext(t.Context(), "sh", "-c", `ulimit -n 64 && exec "$0" "$@"`, os.Args[0],
		"-hosts", filepath.Join(dir, "hosts"), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "known_hosts"), "-concurrency", "100", "-progress", "never", "--", "true")
	cmd.Env = append(os.Environ(), "FLEET_RUN_TEST_MAIN=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	got := decode(t, stdout.String())
	failed := 0
	for _, l := range got {
		if l.ExitCode != 0 {
			failed++
			if failed == 1 {
				t.Logf("first failure: %s: %s", l.Host, l.Error)
			}
		}
	}
	assert.Zero(t, failed, "no host fails for want of file descriptors")
	assert.Len(t, got, n, "one line per host")
	require.NoError(t, err, "exit 0 when every host ran; stderr:\n%s", stderr.String())
	assert.Contains(t, stderr.String(), "-concurrency 100 lowered to", "the lowered concurrency is said")
	assert.Contains(t, stderr.String(), "100 succeeded, 0 failed")
}
