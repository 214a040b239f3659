package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/testenv"
)

// natsServerBinary finds a real nats-server: $OPSKIT_NATS_SERVER, the CI
// cache, or PATH. It skips the test when there is none, or fails it when
// integration tests are required.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("OPSKIT_NATS_SERVER"), "/root/.cache/opskit/bin/nats-server"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return testenv.Tool(t, "nats-server")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestThreeReplicas runs three gitlab-hooks processes against one real
// nats-server (with a token read from a file) and the fake GitLab: 400 MRs,
// each opened and merged, every delivery sent to a random replica, 200 of
// them delivered twice to another replica (1,000 deliveries), the replica holding the
// partitions SIGKILLed mid-run and restarted. Every MR ends with exactly one version note, every linked
// issue with exactly one workflow label (To Test), and no delivery got an
// answer outside 2xx from a live replica (none would count toward GitLab
// disabling the hook).
func TestThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	bin := natsServerBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
		"listen: 127.0.0.1:%d\njetstream { store_dir: %q }\nauthorization { token: \"nats-secret\" }\n", port, filepath.Join(dir, "js"))), 0o600))
	ns := exec.CommandContext(t.Context(), bin, "-c", conf)
	require.NoError(t, ns.Start())
	t.Cleanup(func() { ns.Process.Signal(syscall.SIGTERM); ns.Wait() })
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		nc, err := nats.Connect(natsURL, nats.Token("nats-secret"))
		if err != nil {
			return false
		}
		nc.Close()
		return true
	}, 20*time.Second, 50*time.Millisecond, "nats-server accepts connections")

	const mrs = 400 // 800 deliveries, 200 of them sent twice: 1,000 in all
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	for _, l := range []string{"To Do", "In Development", "In Review", "To Test", "Testing"} {
		srv.AddLabel(7, l)
	}
	srv.SetFile(7, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(7, "fix", "VERSION", []byte("1.0.1\n"))
	type delivery struct {
		body []byte
		key  string
	}
	perMR := make([][]delivery, mrs)
	for i := range mrs {
		is := srv.AddIssue(7, gitlabtest.Issue{Title: "bug " + strconv.Itoa(i), AuthorID: 42})
		mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{SourceBranch: "fix", ClosesIssues: []int64{is.IID}, AuthorID: 42})
		for _, action := range []string{"open", "merge"} {
			b, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: action})
			require.NoError(t, err)
			perMR[i] = append(perMR[i], delivery{b, fmt.Sprintf("mr%d-%s", mr.IID, action)})
		}
	}

	args := []string{"-addr", "127.0.0.1:0", "-gitlab-url", srv.URL(),
		"-token-file", writeFile(t, "token", srv.Token()), "-secret-file", writeFile(t, "secret", "hook-secret"),
		"-nats-url", natsURL, "-nats-token-file", writeFile(t, "nats-token", "nats-secret"),
		"-partitions", "16", "-ack-wait", "2s", "-pinned-ttl", "2s"}
	var mu sync.Mutex
	urls := make([]string, 3)
	cmds := make([]*exec.Cmd, 3)
	for r := range 3 {
		cmds[r], urls[r] = startHooks(t, args)
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	})
	replicaURL := func(r int) string { mu.Lock(); defer mu.Unlock(); return urls[r] }

	done := func() (notes, labelled int) {
		for i := range mrs {
			notes += min(1, len(srv.Notes(7, gitlabtest.MergeRequestNoteable, int64(i+1))))
			if is, ok := srv.Issue(7, int64(i+1)); ok && len(is.Labels) == 1 && is.Labels[0] == "To Test" {
				labelled++
			}
		}
		return notes, labelled
	}
	killNow, restarted := make(chan struct{}), make(chan struct{})
	var sent, bad atomic.Int32
	var badMu sync.Mutex
	badCodes := map[int]int{}
	// post sends d to a random replica, and to another one when that one is
	// down (as a load balancer does); with redeliver, to a second replica too.
	post := func(d delivery, redeliver bool) {
		first := rand.IntN(3)
		for n := 0; ; n++ {
			r := (first + n) % 3
			resp, err := gitlabtest.SendWebhook(t.Context(), replicaURL(r), gitlabtest.MergeRequestHook, d.body,
				gitlabtest.WebhookOptions{Token: "hook-secret", IdempotencyKey: d.key})
			if err != nil {
				if n > 30 {
					t.Errorf("no replica answered %s: %v", d.key, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if resp.StatusCode/100 != 2 {
				bad.Add(1)
				badMu.Lock()
				badCodes[resp.StatusCode]++
				badMu.Unlock()
			}
			if redeliver && n == 0 {
				redeliver = false
				first++ // the redelivery lands on another replica
				continue
			}
			break
		}
		if sent.Add(1) == mrs/2 { // a quarter of the way: SIGKILL replica 0, restart it later
			close(killNow)
		}
	}
	go func() {
		defer close(restarted)
		<-killNow
		mu.Lock()
		cmds[0].Process.Kill() // SIGKILL: its pulled, unacknowledged deliveries must go to another replica
		cmds[0].Wait()
		mu.Unlock()
		n, _ := done()
		t.Logf("replica 0 (started first, so holding the partitions' pins) killed after %d deliveries; %d MRs had their note", sent.Load(), n)
		time.Sleep(500 * time.Millisecond)
		c, u := startHooksOrErr(args)
		mu.Lock()
		defer mu.Unlock()
		if c == nil {
			t.Errorf("restarting replica 0: %s", u)
			return
		}
		cmds[0], urls[0] = c, u
	}()
	var wg sync.WaitGroup
	for s := range 8 {
		wg.Go(func() {
			for i := s; i < mrs; i += 8 {
				for k, d := range perMR[i] { // open, then merge: GitLab's order for one MR
					post(d, (i+k)%4 == 0)
				}
			}
		})
	}
	wg.Wait()
	<-restarted
	assert.Zero(t, bad.Load(), "answers outside 2xx from live replicas (status: count): %v", badCodes)

	require.Eventually(t, func() bool { n, l := done(); return n == mrs && l == mrs }, 3*time.Minute, 100*time.Millisecond,
		"every MR has its note and every issue is To Test")
	for i := range mrs {
		assert.Len(t, srv.Notes(7, gitlabtest.MergeRequestNoteable, int64(i+1)), 1, "version notes on MR !%d", i+1)
		is, _ := srv.Issue(7, int64(i+1))
		assert.Equal(t, []string{"To Test"}, is.Labels, "labels of issue #%d", i+1)
	}
	for r := range 3 {
		mu.Lock()
		c := cmds[r]
		mu.Unlock()
		require.NoError(t, c.Process.Signal(syscall.SIGTERM))
		assert.NoError(t, c.Wait(), "replica %d stops cleanly", r)
	}
}
