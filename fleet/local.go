package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"syscall"
	"time"
)

// Local runs commands on this machine with os/exec. The zero value is
// ready to use: no shell unless Command.Shell is set, the process
// environment, and a WaitDelay of 5s.
type Local struct {
	// Dir is the working directory; "" means the current one.
	Dir string
	// Env replaces the environment when non-nil.
	Env []string
	// WaitDelay bounds how long Run waits for the output pipes after the
	// process was killed on cancellation (children that keep them open).
	// 0 means 5s.
	WaitDelay time.Duration
	// Logger receives one debug event per command; nil discards.
	Logger *slog.Logger
}

// Check reports which of the programs cannot be found on PATH, as a
// *MissingProgramsError, or nil when all are present.
func (l *Local) Check(programs ...string) error {
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return &MissingProgramsError{Programs: missing}
	}
	return nil
}

// Run runs cmd on this machine. A program that cannot be found is a
// *MissingProgramsError; a non-zero exit is a *ExitError returned with the
// Result; cancellation kills the process and returns an error matching
// context.Canceled (or ErrTimeout and context.DeadlineExceeded).
// cmd.Host only names this machine in the Result: "" means "localhost",
// and one that names no machine ("@", "user@") is refused with
// ErrInvalidHost, as the SSH executor refuses it.
func (l *Local) Run(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	host := cmd.Host
	if host == "" {
		host = "localhost"
	}
	res := Result{Host: host, ExitCode: -1}
	if err := cmd.validate(); err != nil {
		return res, err
	}
	if err := CheckHost(host); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, ctxError(host, ctx)
	}
	args := cmd.Args
	if len(args) == 0 {
		args = []string{"/bin/sh", "-c", cmd.Shell}
	}
	var sr *sudoRun
	if cmd.Sudo != nil {
		sr = newSudoRun(cmd.Sudo, host)
		args = sr.argv(cmd, true)
	}
	if err := l.Check(args[0]); err != nil {
		return res, err
	}
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	c.Dir, c.Env = l.Dir, l.Env
	c.WaitDelay = l.WaitDelay
	if c.WaitDelay == 0 {
		c.WaitDelay = 5 * time.Second
	}
	c.Stdin = cmd.Stdin
	out := &capWriter{max: cmd.maxOutput()}
	errw := &capWriter{max: cmd.maxOutput()}
	c.Stdout, c.Stderr = out, errw
	if sr != nil {
		c.Stdin = nil
		w, err := c.StdinPipe()
		if err != nil {
			return res, fmt.Errorf("fleet: sudo: %w", err)
		}
		c.Stderr, sr.stdin, sr.errOut, sr.cmdIn = sr, w, errw, cmd.Stdin
	}
	err := c.Run()
	if sr != nil {
		if serr := sr.finish(); serr != nil && ctx.Err() == nil {
			res.Duration = time.Since(start)
			res.Stdout, res.Stderr = out.buf, errw.buf
			res.ExitCode = 1
			if c.ProcessState != nil {
				res.ExitCode = c.ProcessState.ExitCode()
			}
			return res, serr
		}
	}
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = out.buf, errw.buf
	res.StdoutTruncated, res.StderrTruncated = out.truncated, errw.truncated
	if c.ProcessState != nil {
		res.ExitCode = c.ProcessState.ExitCode()
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = signalName(ws.Signal())
		}
	}
	logger(l.Logger).DebugContext(ctx, "local command", "host", host, "cmd", cmd.String(), "exit", res.ExitCode, "err", err)
	if ctx.Err() != nil {
		return res, ctxError(host, ctx)
	}
	if c.ProcessState == nil {
		// It never started: not executable, bad Dir, ...
		return res, fmt.Errorf("fleet: start %s: %w", args[0], err)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		return res, fmt.Errorf("fleet: %s: %w", args[0], err)
	}
	return res, exitError(res)
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "KILL"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGPIPE:
		return "PIPE"
	case syscall.SIGQUIT:
		return "QUIT"
	case syscall.SIGSEGV:
		return "SEGV"
	case syscall.SIGABRT:
		return "ABRT"
	case syscall.SIGUSR1:
		return "USR1"
	case syscall.SIGUSR2:
		return "USR2"
	}
	return s.String()
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
