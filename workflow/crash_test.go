package workflow_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/workflow"
)

const crashDirEnv = "OPSKIT_WORKFLOW_CRASH_DIR"

// crashTargets builds eight targets with states a → b → c. Each state,
// once its work is done, appends a line to <dir>/<target>.<state>: the
// side effect the crash test counts. If block is set, targets t4 and t5
// announce on stdout that they are in state b and then hang there.
func crashTargets(dir string, block bool) []workflow.Target {
	var blocked sync.WaitGroup
	blocked.Add(2)
	effect := func(target, state string) error {
		f, err := os.OpenFile(filepath.Join(dir, target+"."+state), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString("ran\n"); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	var targets []workflow.Target
	for _, name := range names("t", 8) {
		st := func(state, next string) workflow.State {
			return workflow.State{Name: state, Fn: func(ctx context.Context) (workflow.StateFn, error) {
				if block && state == "b" && (name == "t4" || name == "t5") {
					blocked.Done()
					blocked.Wait()
					if name == "t4" {
						fmt.Println("blocked") // both are in state b
					}
					for {
						time.Sleep(time.Hour) // until SIGKILL; a timer, so the runtime sees no deadlock
					}
				}
				if err := effect(name, state); err != nil {
					return nil, err
				}
				if next == "" {
					return nil, nil
				}
				return workflow.Goto(next), nil
			}}
		}
		targets = append(targets, workflow.Target{Name: name, States: []workflow.State{st("a", "b"), st("b", "c"), st("c", "")}})
	}
	return targets
}

// TestCrashHelper is the rollout the crash test kills; it runs only in
// the subprocess that TestCrashResume starts.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the subprocess of TestCrashResume")
	}
	j, err := workflow.OpenJournal(filepath.Join(dir, "journal"))
	require.NoError(t, err)
	r := workflow.Runner{Concurrency: 2, CanaryNum: 1, Journal: j}
	r.Run(context.Background(), crashTargets(dir, true))
	t.Fatal("the rollout should have hung until killed")
}

// TestCrashResume runs a rollout in a subprocess, kills it with SIGKILL
// while two targets are in state b, resumes from the journal, and checks
// that every state of every target ran to success exactly once.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "blocked" {
	}
	require.Equal(t, "blocked", sc.Text(), "the subprocess never reached the blocking state")
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred code, no cleanup
	_ = cmd.Wait()

	count := func(target, state string) int {
		b, err := os.ReadFile(filepath.Join(dir, target+"."+state))
		if os.IsNotExist(err) {
			return 0
		}
		require.NoError(t, err)
		return strings.Count(string(b), "\n")
	}
	// Half way: t0-t3 done, t4 and t5 in state b, t6 and t7 not started.
	j, err := workflow.OpenJournal(filepath.Join(dir, "journal"))
	require.NoError(t, err)
	defer j.Close()
	for _, n := range []string{"t4", "t5"} {
		st, ok := j.Status(n)
		require.True(t, ok)
		assert.Equal(t, workflow.TargetStatus{Status: workflow.StatusRunning, State: "b"}, st, "journal of %s after the kill", n)
		assert.Equal(t, 1, count(n, "a"))
		assert.Equal(t, 0, count(n, "b"))
	}
	for _, n := range []string{"t6", "t7"} {
		_, ok := j.Status(n)
		assert.False(t, ok, "%s had not started", n)
	}

	r := workflow.Runner{Concurrency: 2, CanaryNum: 1, Journal: j}
	rep, err := r.Resume(t.Context(), crashTargets(dir, false))
	require.NoError(t, err)
	assert.Equal(t, workflow.ESSuccess, rep.State)
	assert.Equal(t, []string{"t0", "t1", "t2", "t3"}, rep.Skipped)
	assert.Equal(t, []string{"t4", "t5", "t6", "t7"}, rep.Succeeded)
	for _, n := range names("t", 8) {
		for _, s := range []string{"a", "b", "c"} {
			assert.Equal(t, 1, count(n, s), "side effects of %s state %s", n, s)
		}
	}
}
