package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opskit/opskit/internal/atomicfile"
)

// The agent's directory lock and its programs' pidfiles.
//
// A supervised program runs in its own process group, so it survives an
// agent killed with SIGKILL. Its output pipe does not: the program's next
// write to it fails (EPIPE, or SIGPIPE kills it), so such an orphan cannot
// be adopted as it is. The agent that starts next on the directory stops it
// (SIGTERM to its group, SIGKILL after StopTimeout) before Resume starts a
// supervised copy, so two copies never run.

const (
	lockName    = ".lock"
	pidfileName = "pid"
)

// lockDir takes an exclusive, non-blocking flock on DIR/.lock and writes
// the agent's pid into it. The lock is released when the file is closed or
// the process dies, whatever the way; exec'd programs do not inherit it
// (close-on-exec).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (agent pid %s)", ErrDirLocked, dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("agent: locking %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// cleanStale removes what a crash left in DIR/NAME: half uploads and
// half-unpacked staging directories. The caller holds the directory lock,
// so no other agent is writing them.
func cleanStale(dir string, log func(path string)) {
	for _, pat := range []string{"*/.upload-*.zip", "*/releases/.staging-*", "*/.current.tmp"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			if os.RemoveAll(p) == nil {
				log(p)
			}
		}
	}
}

// procInfo is what /proc/PID/stat says about a process.
type procInfo struct {
	state     string
	pgrp      int
	startTime uint64 // clock ticks after boot
}

// readProc reads /proc/PID/stat. It fails where there is no /proc.
func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, err
	}
	// The command name in parentheses may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("agent: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("agent: malformed /proc/%d/stat", pid)
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procInfo{}, fmt.Errorf("agent: malformed /proc/%d/stat", pid)
	}
	return procInfo{state: f[0], pgrp: pgrp, startTime: start}, nil
}

// pidfile is the identity of a program's run: its pid and start time, so a
// pid the kernel has since given to another process is not mistaken for
// it.
type pidfile struct {
	pid       int
	startTime uint64
}

// writePidfile records a run started with pid in DIR/NAME/pid. Without
// /proc (not Linux) nothing is written: the start time cannot be checked,
// so no orphan would be recognised safely.
func writePidfile(pkgDir string, pid int) {
	info, err := readProc(pid)
	if err != nil {
		return
	}
	_ = atomicfile.WriteFile(filepath.Join(pkgDir, pidfileName), fmt.Appendf(nil, "%d %d\n", pid, info.startTime), 0o600)
}

func removePidfile(pkgDir string) { os.Remove(filepath.Join(pkgDir, pidfileName)) }

func readPidfile(pkgDir string) (pidfile, bool) {
	b, err := os.ReadFile(filepath.Join(pkgDir, pidfileName))
	if err != nil {
		return pidfile{}, false
	}
	var p pidfile
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.pid, &p.startTime); err != nil || p.pid <= 1 {
		return pidfile{}, false
	}
	return p, true
}

// live reports whether p's run still exists: the same pid, start time and
// process group, and not a zombie.
func (p pidfile) live() bool {
	info, err := readProc(p.pid)
	return err == nil && info.startTime == p.startTime && info.pgrp == p.pid && info.state != "Z" && info.state != "X"
}

// stopOrphans stops, in parallel, the runs that a previous agent on this
// directory left behind (named by the packages' pidfiles), each with
// SIGTERM to its process group and SIGKILL after stopTimeout, and emits
// EventOrphanStopped for each.
func (a *Agent) stopOrphans() {
	ents, _ := os.ReadDir(a.cfg.Dir)
	var wg sync.WaitGroup
	for _, e := range ents {
		if !e.IsDir() || !validName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(a.cfg.Dir, e.Name())
		pf, ok := readPidfile(dir)
		if !ok {
			continue
		}
		wg.Go(func() {
			defer removePidfile(dir)
			if !pf.live() {
				return
			}
			a.cfg.Logger.Warn("stopping a program orphaned by a previous agent", "package", e.Name(), "pid", pf.pid)
			_ = syscall.Kill(-pf.pid, syscall.SIGTERM)
			exit := "terminated"
			if !waitGone(pf, a.cfg.StopTimeout) {
				exit = "killed"
				_ = syscall.Kill(-pf.pid, syscall.SIGKILL)
				waitGone(pf, 5*time.Second)
			}
			a.emit(Event{Package: e.Name(), Kind: EventOrphanStopped, Pid: pf.pid, Exit: exit})
		})
	}
	wg.Wait()
}

// waitGone polls until pf's run is gone or d has passed; the orphan is not
// our child, so there is nothing to wait on.
func waitGone(pf pidfile, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for pf.live() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
