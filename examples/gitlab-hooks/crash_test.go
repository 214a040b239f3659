package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

const crashArgsEnv = "GITLAB_HOOKS_CRASH_ARGS"

// TestCrashHelper is the gitlab-hooks process that TestEmbeddedCrashLosesNothing
// kills; it runs only as that test's subprocess.
func TestCrashHelper(t *testing.T) {
	raw := os.Getenv(crashArgsEnv)
	if raw == "" {
		t.Skip("runs only as the subprocess of TestEmbeddedCrashLosesNothing")
	}
	var args []string
	require.NoError(t, json.Unmarshal([]byte(raw), &args))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, run(ctx, args, os.Stdout, os.Stderr))
}

// startHooks runs gitlab-hooks in a subprocess and returns its URL.
func startHooks(t *testing.T, args []string) (*exec.Cmd, string) {
	t.Helper()
	cmd, url := startHooksOrErr(args)
	if cmd == nil {
		t.Fatal(url)
	}
	return cmd, url
}

// startHooksOrErr is startHooks for other goroutines than the test's: on
// failure the command is nil and the string says why.
func startHooksOrErr(args []string) (*exec.Cmd, string) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err.Error()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashArgsEnv+"="+string(raw))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err.Error()
	}
	if err := cmd.Start(); err != nil {
		return nil, err.Error()
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "gitlab-hooks: listening on "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, strings.Fields(rest)[0]
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, "gitlab-hooks never said it was listening"
}

// TestEmbeddedCrashLosesNothing runs gitlab-hooks with its embedded
// JetStream server, SIGKILLs it in the middle of a burst of MR deliveries
// while many accepted ones are still unhandled, starts it again on the same
// -data-dir, and checks that every delivery answered 202 was handled: each
// MR ends with exactly one version note.
func TestEmbeddedCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	const mrs = 120
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.SetFile(7, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(7, "fix", "VERSION", []byte("1.0.1\n"))
	bodies := make([][]byte, mrs)
	for i := range mrs {
		mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{SourceBranch: "fix", AuthorID: 42})
		b, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: "open"})
		require.NoError(t, err)
		bodies[i] = b
	}
	srv.SetLatency(200 * time.Millisecond) // handling lags far behind acks, even on a loaded machine
	args := []string{"-addr", "127.0.0.1:0", "-gitlab-url", srv.URL(),
		"-token-file", writeFile(t, "token", srv.Token()), "-secret-file", writeFile(t, "secret", "hook-secret"),
		"-data-dir", t.TempDir(), "-partitions", "8", "-ack-wait", "2s"}
	notes := func() (n int) {
		for i := range mrs {
			n += min(1, len(srv.Notes(7, gitlabtest.MergeRequestNoteable, int64(i+1))))
		}
		return n
	}

	cmd, url := startHooks(t, args)
	status := make([]int, mrs)
	var accepted atomic.Int32
	var killOnce sync.Once
	var notesAtKill, acceptedAtKill int
	kill := func() {
		killOnce.Do(func() {
			acceptedAtKill = int(accepted.Load())
			notesAtKill = notes()
			require.NoError(t, cmd.Process.Kill()) // SIGKILL: no Shutdown, no flush
			cmd.Wait()
		})
	}
	var wg sync.WaitGroup
	for s := range 8 {
		wg.Go(func() {
			for i := s; i < mrs; i += 8 {
				resp, err := gitlabtest.SendWebhook(t.Context(), url, gitlabtest.MergeRequestHook, bodies[i],
					gitlabtest.WebhookOptions{Token: "hook-secret", IdempotencyKey: fmt.Sprintf("mr-%d", i)})
				if err == nil {
					status[i] = resp.StatusCode
					if resp.StatusCode == 202 && accepted.Add(1) == mrs/2 {
						kill()
					}
				}
			}
		})
	}
	wg.Wait()
	kill()
	t.Logf("at the kill: %d deliveries accepted, %d MRs with their note", acceptedAtKill, notesAtKill)
	require.Less(t, notesAtKill, acceptedAtKill, "the kill came while accepted deliveries were unhandled")

	// Restart on the same data directory; GitLab delivers what got no answer.
	cmd, url = startHooks(t, args)
	srv.SetLatency(0)
	for i := range mrs {
		if status[i] != 202 {
			resp, err := gitlabtest.SendWebhook(t.Context(), url, gitlabtest.MergeRequestHook, bodies[i],
				gitlabtest.WebhookOptions{Token: "hook-secret", IdempotencyKey: fmt.Sprintf("mr-%d", i)})
			require.NoError(t, err)
			require.Contains(t, []int{200, 202}, resp.StatusCode, "redelivery of MR !%d", i+1)
		}
	}
	require.Eventually(t, func() bool { return notes() == mrs }, 2*time.Minute, 50*time.Millisecond,
		"every MR gets its version note after the restart")
	for i := range mrs {
		assert.Len(t, srv.Notes(7, gitlabtest.MergeRequestNoteable, int64(i+1)), 1, "version notes on MR !%d", i+1)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.NoError(t, cmd.Wait(), "gitlab-hooks stops cleanly on SIGTERM")
}
