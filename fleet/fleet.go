package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxOutput is the number of bytes of stdout and of stderr that a
// Result keeps when Command.MaxOutput is zero: 1 MiB each.
const DefaultMaxOutput = 1 << 20

// Executor runs one command on one host. Local, SSH and fleettest.Recorder
// implement it; fleettest.TestExecutor checks an implementation.
type Executor interface {
	// Run runs cmd and waits for it. It returns the Result even when the
	// command exits non-zero, together with a *ExitError.
	Run(ctx context.Context, cmd Command) (Result, error)
}

// Command is one command to run.
//
// Exactly one of Args and Shell is set. Args runs a program with
// arguments and no shell (over SSH the arguments are quoted for the remote
// POSIX shell, which sshd always uses). Shell is a shell command line run
// by /bin/sh -c locally or by the login shell over SSH.
type Command struct {
	// Host names the target, "host" or "host:port". The local executor
	// only copies it into the Result; Group.Run sets it per host.
	Host string
	// Args is the program and its arguments.
	Args []string
	// Shell is a command line for the shell; it is run only when Args is empty.
	Shell string
	// Stdin, if non-nil, is copied to the command's standard input.
	// Group.Run refuses a Command with Stdin, which cannot be shared.
	Stdin io.Reader
	// MaxOutput caps the bytes of stdout and of stderr kept in the
	// Result, each. 0 means DefaultMaxOutput; a negative value keeps nothing.
	MaxOutput int
	// PTY asks for a pseudo-terminal (SSH only).
	PTY bool
	// Sudo, if set, runs the command through sudo as Sudo.User. Run
	// answers sudo's password prompt on its standard input (sudo -S) and
	// Spawn on the terminal, with Sudo.Password; the password never
	// reaches the Result. Stdin goes to the command once sudo let it
	// start. It cannot be combined with PTY in Run (use Spawn).
	Sudo *Sudo
}

// String returns the command line as a person would type it: Shell, or
// for Args the line the SSH executor runs, ShellQuote(Args...) preceded by
// "exec " when Args[0] is a special builtin of the shell (exec, export,
// set, eval, ...), which quoting cannot stop from running as one. So Args
// always runs the program it names: ["exec", "x"] fails with exit status
// 127 (no program "exec") instead of running the builtin.
func (c Command) String() string {
	if len(c.Args) == 0 {
		return c.Shell
	}
	if specialBuiltin(c.Args[0]) {
		return "exec " + ShellQuote(c.Args...)
	}
	return ShellQuote(c.Args...)
}

func (c Command) maxOutput() int {
	switch {
	case c.MaxOutput == 0:
		return DefaultMaxOutput
	case c.MaxOutput < 0:
		return 0
	}
	return c.MaxOutput
}

func (c Command) validate() error {
	if len(c.Args) == 0 && c.Shell == "" {
		return ErrEmptyCommand
	}
	if len(c.Args) > 0 && c.Shell != "" {
		return fmt.Errorf("%w: both Args and Shell are set", ErrEmptyCommand)
	}
	if c.Sudo != nil && c.PTY {
		return fmt.Errorf("%w: Sudo with PTY in Run (use Spawn for a terminal)", ErrSudo)
	}
	return nil
}

// Result is what a command did on one host.
type Result struct {
	Host string
	// ExitCode is the exit status, or -1 when the command did not exit
	// normally (killed by Signal, or never started).
	ExitCode int
	// Signal is the name of the signal that ended the command ("KILL"), or "".
	Signal string
	// Stdout and Stderr hold at most the first Command.MaxOutput bytes
	// (DefaultMaxOutput by default) of each stream.
	Stdout, Stderr []byte
	// StdoutTruncated and StderrTruncated report that output was dropped
	// beyond the cap.
	StdoutTruncated, StderrTruncated bool
	// Duration is the wall time from the start of Run to its end,
	// including connecting.
	Duration time.Duration
	// ConnectRetries counts the connection attempts that failed
	// transiently and were retried before the command ran
	// (SSHConfig.ConnectRetries); the command itself ran at most once.
	ConnectRetries int
}

// OK reports whether the command exited with status 0.
func (r Result) OK() bool { return r.ExitCode == 0 && r.Signal == "" }

// Sentinel errors. Errors from executors wrap one of these in a
// *HostError, so errors.Is(err, fleet.ErrUnreachable) works.
var (
	// ErrUnreachable: the host could not be reached (DNS, TCP, connection lost).
	ErrUnreachable = errors.New("fleet: host unreachable")
	// ErrAuth: the server refused every authentication method.
	ErrAuth = errors.New("fleet: authentication failed")
	// ErrHostKeyUnknown: the host has no entry in known_hosts.
	ErrHostKeyUnknown = errors.New("fleet: host key unknown")
	// ErrHostKeyChanged: known_hosts has keys for the host, none of which
	// is the one it presented. This may be an attack.
	ErrHostKeyChanged = errors.New("fleet: host key changed")
	// ErrTimeout: the context's deadline passed (it also matches
	// context.DeadlineExceeded).
	ErrTimeout = errors.New("fleet: timeout")
	// ErrEmptyCommand: a Command with neither Args nor Shell, or both.
	ErrEmptyCommand = errors.New("fleet: empty command")
	// ErrMissingProgram: the program to run is not installed.
	ErrMissingProgram = errors.New("fleet: program not found")
	// ErrInvalidHost: a host that names no machine: "", "@", "user@",
	// ":22", "user@:22" or "[]". Executors refuse it before connecting or
	// running anything (an empty SSH host would otherwise reach this
	// machine), as do Group and ParseHosts.
	ErrInvalidHost = errors.New("fleet: invalid host")
)

// CheckHost returns nil when h, "[user@]host[:port]", names a host, and
// otherwise a *HostError matching ErrInvalidHost.
func CheckHost(h string) error {
	name := h
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[i+1:]
	}
	if hh, _, err := net.SplitHostPort(name); err == nil {
		name = hh
	}
	if strings.TrimSpace(strings.Trim(name, "[]")) == "" {
		return &HostError{Host: h, Kind: ErrInvalidHost, Err: errors.New("no host name")}
	}
	return nil
}

// HostError is a failure to run a command on Host before it could exit:
// Kind is one of the sentinel errors (ErrUnreachable, ErrAuth, ...), Err
// the underlying cause. errors.Is matches both.
type HostError struct {
	Host string
	Kind error
	Err  error
}

// Error returns "fleet: HOST: ..." with the cause (HOST is quoted when
// it is empty or holds spaces).
func (e *HostError) Error() string {
	msg := strings.TrimPrefix(e.Kind.Error(), "fleet: ")
	host := e.Host
	if host == "" || strings.ContainsAny(host, " \t\n") {
		host = strconv.Quote(host)
	}
	if e.Err == nil {
		return fmt.Sprintf("fleet: %s: %s", host, msg)
	}
	return fmt.Sprintf("fleet: %s: %s: %v", host, msg, e.Err)
}

// Unwrap returns Kind and Err.
func (e *HostError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ExitError reports a command that ran on Host and exited non-zero or was
// killed by a signal.
type ExitError struct {
	Host   string
	Code   int    // -1 when killed by a signal
	Signal string // signal name, or ""
	Stderr []byte // last 4 KiB of the kept stderr
}

// maxErrorStderr is the number of bytes at the end of Stderr that
// ExitError.Error shows.
const maxErrorStderr = 200

// Error returns "fleet: HOST: exit status N" (or "killed by signal S")
// followed by the last lines of Stderr on one line, at most 200
// bytes of them, so a report that prints the error says why the command
// failed: "fleet: web1: exit status 1: Job for app.service failed ...".
// The whole Stderr stays in the field (errors.As).
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("fleet: %s: exit status %d", e.Host, e.Code)
	if e.Signal != "" {
		msg = fmt.Sprintf("fleet: %s: killed by signal %s", e.Host, e.Signal)
	}
	if tail := stderrTail(e.Stderr, maxErrorStderr); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// stderrTail returns the last lines of stderr within max bytes, joined by
// "; " on one line, without control characters. When the last line alone
// is longer than max, its end is kept after "...".
func stderrTail(stderr []byte, max int) string {
	s := strings.TrimRightFunc(string(stderr), unicode.IsSpace)
	cut := false
	if len(s) > max {
		s = s[len(s)-max:]
		cut = true
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:] // drop the partial first line
			cut = false
		}
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
	}
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || unicode.IsControl(r) {
				return ' '
			}
			return r
		}, line)
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	out := strings.Join(lines, "; ")
	if cut {
		out = "..." + out
	}
	return out
}

// MissingProgramsError lists programs that LookPath could not find.
// It matches ErrMissingProgram.
type MissingProgramsError struct {
	Programs []string
}

// Error lists the missing programs.
func (e *MissingProgramsError) Error() string {
	return "fleet: programs not found: " + strings.Join(e.Programs, ", ")
}

// Is reports whether target is ErrMissingProgram.
func (e *MissingProgramsError) Is(target error) bool { return target == ErrMissingProgram }

// ctxError turns a context error into a *HostError: ErrTimeout for a
// deadline, the bare cancel cause otherwise.
func ctxError(host string, ctx context.Context) error {
	err := context.Cause(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if !errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(err, context.DeadlineExceeded)
		}
		return &HostError{Host: host, Kind: ErrTimeout, Err: err}
	}
	if err == context.Canceled {
		err = nil // the Kind says it all
	}
	return &HostError{Host: host, Kind: context.Canceled, Err: err}
}

func exitError(r Result) error {
	if r.OK() {
		return nil
	}
	tail := r.Stderr
	if len(tail) > 4096 {
		tail = tail[len(tail)-4096:]
	}
	return &ExitError{Host: r.Host, Code: r.ExitCode, Signal: r.Signal, Stderr: tail}
}

// capWriter keeps the first max bytes written and notes that more came.
type capWriter struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

// snapshot copies what was kept so far, while writes may still come.
func (w *capWriter) snapshot() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.buf...)
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - len(w.buf)
	if room >= len(p) {
		w.buf = append(w.buf, p...)
	} else {
		if room > 0 {
			w.buf = append(w.buf, p[:room]...)
		}
		w.truncated = true
	}
	return len(p), nil
}

// ShellQuote quotes args for a POSIX shell, so that the shell passes
// each one to the program unchanged. The first word is also quoted when
// it contains '=' (else the shell reads an assignment) or is a reserved
// word ("if", "while", ...) or a special builtin ("exec", "export", ...).
// Quoting does not stop a special builtin from running as one; to run a
// program from arguments, use Command.String, as the SSH executor does.
func ShellQuote(args ...string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, needsQuote) < 0 && (i > 0 || !shellSyntax(a)) {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// shellSyntax reports whether a, as a command's first word, is read by
// the shell as something other than a program name.
func shellSyntax(a string) bool {
	return strings.ContainsRune(a, '=') || reservedWord(a) || specialBuiltin(a)
}

// reservedWord reports whether a is a reserved word of the POSIX shell,
// or one that bash and ksh add.
func reservedWord(a string) bool {
	switch a {
	case "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in",
		"then", "until", "while", "[[", "]]", "function", "select", "time", "coproc":
		return true
	}
	return false
}

// specialBuiltin reports whether a is one of POSIX's special built-in
// utilities, found before any program of the same name, quoted or not.
func specialBuiltin(a string) bool {
	switch a {
	case "break", ":", ".", "continue", "eval", "exec", "exit", "export", "readonly",
		"return", "set", "shift", "times", "trap", "unset":
		return true
	}
	return false
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_./=:,+@%", r)
}
