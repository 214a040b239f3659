package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
)

const crashDirEnv = "OPSKIT_AGENT_CRASH_DIR"

// TestAgentCrashHelper is the agent daemon TestHardening10 kills with
// SIGKILL; it runs only as that test's subprocess. It installs a copy of
// sleep as "napper", leaves an upload of "slow" hanging half-way, prints
// "ready PID" (napper's pid) and waits to be killed.
func TestAgentCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the subprocess of TestHardening10")
	}
	a, err := agent.New(agent.Config{Dir: filepath.Join(dir, "pkgs"), StartGrace: 100 * time.Millisecond,
		Sampler: agent.NewSampler(agent.SamplerConfig{Collect: fakeCollect})})
	require.NoError(t, err)
	ln, err := agent.Listen(t.Context(), agent.ListenConfig{Address: filepath.Join(dir, "agent.sock")})
	require.NoError(t, err)
	go a.Serve(context.Background(), ln)
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	require.NoError(t, err)
	st, err := a.Install(t.Context(), "napper", bytes.NewReader(z), agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}})
	require.NoError(t, err)
	pr, pw := io.Pipe()
	go a.Install(context.Background(), "slow", pr, agent.Manifest{Binary: "bin/sleep"})
	pw.Write(z[:len(z)/2]) // returns once the agent has read it; the rest never comes
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "pkgs", "slow", ".upload-*.zip")); len(m) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("ready %d\n", st.Pid)
	for {
		time.Sleep(time.Hour) // until SIGKILL
	}
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// running lists the live processes whose executable is under dir.
func running(t testing.TB, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestHardening10CrashOrphansAndDuplicates: an agent killed with SIGKILL
// leaves its programs running (their own process group) and a half
// upload. A second agent on the same directory while the first runs must
// refuse to start and leave the live socket alone; the agent restarted
// after the crash must stop the orphan before Resume starts the program
// again (one copy, not two) and remove the stale upload.
func TestHardening10CrashOrphansAndDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "pkgs")
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestAgentCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "ready ") {
	}
	line, ok := strings.CutPrefix(sc.Text(), "ready ")
	require.True(t, ok, "the agent subprocess never got ready")
	orphan, err := strconv.Atoi(line)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(-orphan, syscall.SIGKILL) })

	// A second agent while the first one runs.
	_, err = agent.New(agent.Config{Dir: pkgs})
	require.ErrorIs(t, err, agent.ErrDirLocked, "a second agent on a directory in use")
	_, err = agent.Listen(t.Context(), agent.ListenConfig{Address: sock})
	require.ErrorIs(t, err, agent.ErrSocketInUse, "listening on the live agent's socket")
	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	defer c.Close()
	list, err := c.Packages(t.Context())
	require.NoError(t, err, "the first agent still answers on its socket")
	require.Len(t, list, 1)

	// The crash.
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	killed = true
	require.True(t, alive(orphan), "the program outlives its agent's SIGKILL (its own process group)")
	uploads, _ := filepath.Glob(filepath.Join(pkgs, "*", ".upload-*.zip"))
	require.Len(t, uploads, 1, "the crash left the half upload behind")

	// The restart.
	b, ev, _ := newAgent(t, func(c *agent.Config) { c.Dir = pkgs; c.StopTimeout = 5 * time.Second })
	require.NoError(t, b.Resume(t.Context()))
	st, err := b.Status("napper")
	require.NoError(t, err)
	require.True(t, st.Running)
	assert.False(t, alive(orphan), "the orphan of the killed agent is stopped")
	assert.Equal(t, []int{st.Pid}, running(t, pkgs), "exactly one copy of the program runs, under the new agent")
	uploads, _ = filepath.Glob(filepath.Join(pkgs, "*", ".upload-*.zip"))
	assert.Empty(t, uploads, "stale uploads are removed at start")
	var orphanEvents int
	ev.mu.Lock()
	for _, e := range ev.all {
		if e.Kind == agent.EventOrphanStopped && e.Package == "napper" && e.Pid == orphan {
			orphanEvents++
		}
	}
	ev.mu.Unlock()
	assert.Equal(t, 1, orphanEvents, "one EventOrphanStopped for napper's orphan")

	require.NoError(t, b.Close(t.Context()))
	assert.Empty(t, running(t, pkgs), "Close stops the program")
}

// TestOrphanPidfileReused: a pidfile whose pid now belongs to another
// process (a different start time) does not get that process killed.
func TestOrphanPidfileReused(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	dir := filepath.Join(t.TempDir(), "pkgs")
	a, _, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir })
	_, err := a.Install(t.Context(), "app", bytes.NewReader(helperZip(t)), agent.Manifest{Binary: "bin/helper", Args: []string{"run"}})
	require.NoError(t, err)
	require.NoError(t, a.Close(t.Context()))

	other := exec.Command("sleep", "600")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, other.Start())
	defer func() { other.Process.Kill(); other.Wait() }()
	// The pid of an unrelated process, with a start time that is not its own.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app", "pid"), fmt.Appendf(nil, "%d 1\n", other.Process.Pid), 0o600))

	b, _, _ := newAgent(t, func(c *agent.Config) { c.Dir = dir })
	require.NoError(t, b.Resume(t.Context()))
	assert.True(t, alive(other.Process.Pid), "an unrelated process with a reused pid is left alone")
	st, err := b.Status("app")
	require.NoError(t, err)
	assert.True(t, st.Running)
}
