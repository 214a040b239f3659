package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultHookTimeout is the ScriptHook timeout used when 0 is given.
const DefaultHookTimeout = 5 * time.Minute

// ScriptHook returns a Hook that runs the executable at path (a name
// without a slash is looked up in PATH; a relative path is taken relative
// to the current directory at the time of the call) with two
// arguments, the paths of release.env and release.tgz, in the release's
// directory, with stdin empty. Each line the script writes to stdout or
// stderr is logged at Info level with the product and version; a nil logger
// discards them.
//
// The script fails the hook when it exits non-zero or runs longer than
// timeout (0 means DefaultHookTimeout); on timeout its whole process group
// is killed. See Hook for what the receiver does then.
func ScriptHook(path string, timeout time.Duration, logger *slog.Logger) Hook {
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The script runs in the release's directory, so a relative path must
	// be made absolute against the current one first.
	if abs, err := filepath.Abs(path); err == nil && strings.ContainsRune(path, filepath.Separator) {
		path = abs
	}
	return func(ctx context.Context, r Release) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, r.EnvFile, r.Tarball)
		cmd.Dir = r.Dir
		setProcessGroup(cmd)
		// After the kill, give up on output that a surviving grandchild
		// still holds open.
		cmd.WaitDelay = 2 * time.Second
		log := logger.With("hook", path, "product", r.Product, "version", r.Version)
		lw := &lineLogger{log: log}
		cmd.Stdout = lw
		cmd.Stderr = lw
		start := time.Now()
		err := cmd.Run()
		lw.flush()
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("release: hook %s: timed out after %v", path, timeout)
		}
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("release: hook %s: %v", path, ee)
			}
			return fmt.Errorf("release: hook %s: %w", path, err)
		}
		log.Info("release hook done", "elapsed", time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// lineLogger logs what is written to it one line at a time.
type lineLogger struct {
	mu  sync.Mutex
	log *slog.Logger
	buf []byte
}

const maxLogLine = 4 << 10

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxLogLine {
				l.emit(l.buf[:maxLogLine])
				l.buf = append(l.buf[:0], l.buf[maxLogLine:]...)
				continue
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
}

func (l *lineLogger) emit(line []byte) {
	l.log.Info("release hook output", "line", string(line))
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}
