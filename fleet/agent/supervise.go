package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// EventKind says what happened to a supervised program.
type EventKind string

// The events a Config.OnEvent callback receives.
const (
	EventStarted    EventKind = "started"     // a run began (Pid set)
	EventExited     EventKind = "exited"      // a run ended on its own (Exit set); a restart follows
	EventStopped    EventKind = "stopped"     // stopped on request
	EventInstalled  EventKind = "installed"   // a new version was swapped in and runs
	EventRolledBack EventKind = "rolled-back" // a new version failed to start; the previous one is back
	// EventOrphanStopped: New found a run that a previous agent on the
	// directory left behind (it was killed without stopping its
	// programs) and stopped it (Pid is the orphan's; Exit is "terminated"
	// or "killed"), so that Resume starts one supervised copy.
	EventOrphanStopped EventKind = "orphan-stopped"
)

// Event is one thing that happened to a package, for progress and logs.
type Event struct {
	Package  string
	Kind     EventKind
	Pid      int    // the program's pid, for EventStarted
	Exit     string // how the run ended, for EventExited
	Restarts int    // restarts so far
}

// proc supervises one program: it starts it, restarts it with backoff when
// it exits, and stops it on request.
type proc struct {
	name, dir, bin string
	pkgDir         string // DIR/NAME, where the pidfile is
	args           []string
	out            *cappedLog
	backoffMin     time.Duration
	backoffMax     time.Duration
	stopTimeout    time.Duration
	emit           func(Event)

	mu        sync.Mutex
	cmd       *exec.Cmd
	pid       int
	running   bool
	restarts  int
	lastExit  string
	startedAt time.Time

	stopOnce  sync.Once
	stopCh    chan struct{} // closed by stop
	done      chan struct{} // closed when the supervising goroutine returns
	firstExit chan string   // the first run's exit, buffered
}

// start starts the first run and the supervising goroutine. An error means
// the program could not be started at all (exec error).
func (p *proc) start() error {
	p.stopCh = make(chan struct{})
	p.done = make(chan struct{})
	p.firstExit = make(chan string, 1)
	cmd, err := p.launch()
	if err != nil {
		close(p.done)
		return err
	}
	go p.supervise(cmd)
	return nil
}

// launch starts one run: argv only, no shell, in its own process group.
func (p *proc) launch() (*exec.Cmd, error) {
	cmd := &exec.Cmd{
		Path:        p.bin,
		Args:        append([]string{p.bin}, p.args...),
		Dir:         p.dir,
		Env:         os.Environ(),
		Stdout:      p.out,
		Stderr:      p.out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   2 * time.Second, // a child holding the output pipe cannot wedge Wait
	}
	if err := cmd.Start(); err != nil {
		p.mu.Lock()
		p.lastExit = err.Error()
		p.mu.Unlock()
		return nil, err
	}
	writePidfile(p.pkgDir, cmd.Process.Pid)
	p.mu.Lock()
	p.cmd, p.pid, p.running, p.startedAt = cmd, cmd.Process.Pid, true, time.Now()
	restarts := p.restarts
	p.mu.Unlock()
	if p.stopCh != nil && p.stopping() {
		// stop ran between the backoff and this start: either it saw
		// running and signalled, or we see its close here.
		p.signal(syscall.SIGTERM)
	}
	p.emit(Event{Package: p.name, Kind: EventStarted, Pid: cmd.Process.Pid, Restarts: restarts})
	return cmd, nil
}

func (p *proc) stopping() bool {
	select {
	case <-p.stopCh:
		return true
	default:
		return false
	}
}

func (p *proc) supervise(cmd *exec.Cmd) {
	defer close(p.done)
	defer removePidfile(p.pkgDir)
	backoff := p.backoffMin
	first := true
	for {
		began := time.Now()
		err := cmd.Wait()
		exit := exitString(cmd, err)
		p.mu.Lock()
		p.running, p.pid, p.lastExit = false, 0, exit
		restarts := p.restarts
		p.mu.Unlock()
		if first {
			p.firstExit <- exit
			first = false
		}
		if p.stopping() {
			p.emit(Event{Package: p.name, Kind: EventStopped, Exit: exit, Restarts: restarts})
			return
		}
		p.emit(Event{Package: p.name, Kind: EventExited, Exit: exit, Restarts: restarts})
		if time.Since(began) > p.backoffMax {
			backoff = p.backoffMin // it ran well for a while: a fresh crash
		}
		for {
			t := time.NewTimer(backoff)
			select {
			case <-p.stopCh:
				t.Stop()
				p.emit(Event{Package: p.name, Kind: EventStopped, Exit: exit, Restarts: restarts})
				return
			case <-t.C:
			}
			if p.stopping() {
				p.emit(Event{Package: p.name, Kind: EventStopped, Exit: exit, Restarts: restarts})
				return
			}
			backoff = min(2*backoff, p.backoffMax)
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
			c, err := p.launch()
			if err == nil {
				cmd = c
				break
			}
		}
	}
}

// stop asks the program to end (SIGTERM to its process group), kills it
// after stopTimeout, and waits for the supervisor to finish.
func (p *proc) stop(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stopCh) })
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.signal(syscall.SIGKILL)
	<-p.done // SIGKILL cannot be ignored; Wait returns within WaitDelay
	return ctx.Err()
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running && p.pid > 0 {
		_ = syscall.Kill(-p.pid, sig)
	}
}

// exitString describes how a run ended.
func exitString(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exited"
}

// cappedLog is a program's output file. When it reaches max bytes it is
// renamed to path.1 (replacing the older one) and a new one is started, so
// the output on disk stays under 2*max.
type cappedLog struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	n    int64
}

func openCappedLog(path string, max int64) (*cappedLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: open log: %w", err)
	}
	return &cappedLog{path: path, max: max, f: f, n: st.Size()}, nil
}

func (l *cappedLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return len(b), nil
	}
	written := 0
	for len(b) > 0 {
		if l.n >= l.max {
			if err := l.rotate(); err != nil {
				return written, err
			}
		}
		chunk := b[:min(int64(len(b)), l.max-l.n)]
		n, err := l.f.Write(chunk)
		l.n += int64(n)
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func (l *cappedLog) rotate() error {
	l.f.Close()
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		l.f = nil
		return err
	}
	l.f, l.n = f, 0
	return nil
}

func (l *cappedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// tail returns up to n bytes from the end of the log.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b, _ := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	return string(b)
}
