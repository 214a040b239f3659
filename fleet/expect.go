package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	expect "github.com/google/goexpect"
	"github.com/google/goterm/term"
	"golang.org/x/crypto/ssh"
)

// ErrExpectEnded is matched by an *ExpectError when the program ended
// (or the dialogue was closed) before printing what was expected.
var ErrExpectEnded = errors.New("fleet: program ended before the expected output")

// ExpectError reports an Expect or Switch that did not match: Output is
// the tail of what the program printed meanwhile (at most 1 KiB).
type ExpectError struct {
	Host    string
	Pattern string
	Output  string
	Err     error // ErrExpectEnded, or a *HostError for a deadline or cancellation
}

// Error returns "fleet: HOST: ..." with the cause.
func (e *ExpectError) Error() string {
	return fmt.Sprintf("fleet: %s: expect %q: %s; last output %q", e.Host, e.Pattern, strings.TrimPrefix(e.Err.Error(), "fleet: "), e.Output)
}

// Unwrap returns Err.
func (e *ExpectError) Unwrap() error { return e.Err }

// Spawner starts an interactive program for a dialogue. SSH and Local
// implement it.
type Spawner interface {
	Spawn(ctx context.Context, cmd Command) (*Expecter, error)
}

// Expecter is a dialogue with one interactive program on a pseudo-terminal,
// local or over SSH. Its methods take the dialogue's context: when it
// ends, the program is closed, so a deadline bounds the whole dialogue
// even while the program keeps printing. Matching sees output past the
// first chunk: what a match did not consume stays for the next Expect.
// The caller must call Close (or Wait) when finished.
type Expecter struct {
	host    string
	g       *expect.GExpect
	in      io.Writer
	inMu    sync.Mutex
	done    chan struct{} // closed when the program exited and its output was read
	closeFn func() error
	running atomic.Bool // false after Close
	eof     atomic.Bool // the output stream ended
	out     *capWriter  // transcript, for Wait's Result
	start   time.Time
	exit    func(error) (code int, signal string, ok bool)

	closeOnce sync.Once
	waitErr   error // valid after done
}

// Case is one branch of Expecter.Switch: when Match matches, Send (if
// not empty) is sent.
type Case struct {
	Match *regexp.Regexp
	Send  string
}

// Step is one step of a scripted Batch: exactly one of Expect, Send or
// Switch is set.
type Step struct {
	Expect *regexp.Regexp
	Send   string
	Switch []Case
}

type caser struct{ re *regexp.Regexp }

func (c caser) RE() (*regexp.Regexp, error) { return c.re, nil }
func (c caser) String() string              { return "" }
func (c caser) Tag() (expect.Tag, *expect.Status) {
	return expect.OKTag, nil
}
func (c caser) Retry() bool { return false }

func newExpecter(host string, in io.Writer, out io.Reader, wait, closeFn func() error, exit func(error) (int, string, bool)) (*Expecter, error) {
	e := &Expecter{host: host, in: in, closeFn: closeFn, out: &capWriter{max: DefaultMaxOutput}, start: time.Now(), exit: exit}
	e.running.Store(true)
	g, ch, err := expect.SpawnGeneric(&expect.GenOptions{
		In:    nopWriteCloser{in},
		Out:   eofReader{out, &e.eof},
		Wait:  wait,
		Close: func() error { return e.Close() },
		Check: e.alive,
	}, time.Hour, expect.PartialMatch(true), expect.Tee(nopWriteCloser{e.out}), expect.CheckDuration(50*time.Millisecond))
	if err != nil {
		closeFn()
		return nil, err
	}
	e.g, e.done = g, make(chan struct{})
	go func() { e.waitErr = <-ch; close(e.done) }()
	return e, nil
}

// alive reports whether the program may still print: not closed and its
// output not yet at EOF (so output printed just before exit is matched).
func (e *Expecter) alive() bool { return e.running.Load() && !e.eof.Load() }

type eofReader struct {
	r   io.Reader
	eof *atomic.Bool
}

func (r eofReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.eof.Store(true)
	}
	return n, err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// guard closes the dialogue when ctx ends and returns the remaining time
// until its deadline, for goexpect's per-chunk timeout.
func (e *Expecter) guard(ctx context.Context) (time.Duration, func() bool) {
	stop := context.AfterFunc(ctx, func() { e.Close() })
	d := 24 * time.Hour
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), time.Millisecond)
	}
	return d, stop
}

// Expect waits until the program's output matches re and returns the
// output up to the end of the match and the submatches. If the program
// ends first, the error is an *ExpectError matching ErrExpectEnded; if
// ctx ends first, one matching ErrTimeout or context.Canceled.
func (e *Expecter) Expect(ctx context.Context, re *regexp.Regexp) (string, []string, error) {
	_, out, m, err := e.Switch(ctx, Case{Match: re})
	return out, m, err
}

// Switch waits until one of the cases matches, sends that case's Send and
// returns its index (when several match, the match that starts first in
// the output wins), the output up to the end of the match and the
// submatches. Errors are as for Expect.
func (e *Expecter) Switch(ctx context.Context, cases ...Case) (int, string, []string, error) {
	if len(cases) == 0 {
		return -1, "", nil, errors.New("fleet: expect: no cases")
	}
	// One regexp with a group per case: the match that starts first in
	// the output wins, whatever the order of the cases.
	pats := make([]string, len(cases))
	base := make([]int, len(cases))
	n := 1
	for i, c := range cases {
		pats[i] = "(" + c.Match.String() + ")"
		base[i] = n
		n += 1 + c.Match.NumSubexp()
	}
	all, err := regexp.Compile(strings.Join(pats, "|"))
	if err != nil {
		return -1, "", nil, fmt.Errorf("fleet: expect: %v", err)
	}
	timeout, stop := e.guard(ctx)
	out, sub, _, err := e.g.ExpectSwitchCase([]expect.Caser{caser{all}}, timeout)
	stop()
	if ctx.Err() != nil {
		return -1, out, nil, &ExpectError{Host: e.host, Pattern: all.String(), Output: tail(out, 1024), Err: ctxError(e.host, ctx)}
	}
	if err != nil {
		return -1, out, nil, &ExpectError{Host: e.host, Pattern: all.String(), Output: tail(out, 1024), Err: ErrExpectEnded}
	}
	// Find the case whose group took part in the match.
	loc := all.FindStringSubmatchIndex(out)
	i := 0
	for j := range cases {
		if loc != nil && loc[2*base[j]] >= 0 {
			i = j
			break
		}
	}
	m := sub[base[i] : base[i]+1+cases[i].Match.NumSubexp()]
	if s := cases[i].Send; s != "" {
		if err := e.Send(ctx, s); err != nil {
			return i, out, m, err
		}
	}
	return i, out, m, nil
}

// Send writes s to the program's input, as typed (add "\n" for Enter).
func (e *Expecter) Send(ctx context.Context, s string) error {
	if err := ctx.Err(); err != nil {
		return ctxError(e.host, ctx)
	}
	if !e.alive() {
		return &HostError{Host: e.host, Kind: ErrExpectEnded}
	}
	_, stop := e.guard(ctx)
	defer stop()
	e.inMu.Lock()
	_, err := io.WriteString(e.in, s)
	e.inMu.Unlock()
	if ctx.Err() != nil {
		return ctxError(e.host, ctx)
	}
	if err != nil {
		return &HostError{Host: e.host, Kind: ErrExpectEnded, Err: err}
	}
	return nil
}

// Batch runs the steps in order and stops at the first error.
func (e *Expecter) Batch(ctx context.Context, steps ...Step) error {
	for i, s := range steps {
		var err error
		switch {
		case s.Expect != nil:
			_, _, err = e.Expect(ctx, s.Expect)
		case len(s.Switch) > 0:
			_, _, _, err = e.Switch(ctx, s.Switch...)
		case s.Send != "":
			err = e.Send(ctx, s.Send)
		default:
			err = fmt.Errorf("fleet: expect batch step %d is empty", i)
		}
		if err != nil {
			return fmt.Errorf("fleet: expect batch step %d: %w", i, err)
		}
	}
	return nil
}

// Wait waits for the program to exit and returns a Result whose Stdout
// is the dialogue's transcript. A non-zero exit is a *ExitError.
func (e *Expecter) Wait(ctx context.Context) (Result, error) {
	res := Result{Host: e.host, ExitCode: -1}
	select {
	case <-ctx.Done():
		e.Close()
		return res, ctxError(e.host, ctx)
	case <-e.done:
	}
	e.Close()
	res.Duration = time.Since(e.start)
	res.Stdout, res.StdoutTruncated = e.out.buf, e.out.truncated
	code, sig, ok := e.exit(e.waitErr)
	if !ok {
		return res, &HostError{Host: e.host, Kind: ErrUnreachable, Err: e.waitErr}
	}
	res.ExitCode, res.Signal = code, sig
	return res, exitError(res)
}

// Close ends the dialogue, killing the program if it still runs.
func (e *Expecter) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.running.Store(false)
		err = e.closeFn()
	})
	return err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Spawn starts cmd on cmd.Host on a pseudo-terminal for a dialogue.
// With neither Args nor Shell set it starts the login shell. The context
// bounds only the start; each dialogue call takes its own. A cmd.Host
// that names no machine is refused with ErrInvalidHost.
func (s *SSH) Spawn(ctx context.Context, cmd Command) (*Expecter, error) {
	sess, _, release, err := s.session(ctx, cmd.Host, nil)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Expecter, error) {
		release()
		if ctx.Err() != nil {
			return nil, ctxError(cmd.Host, ctx)
		}
		return nil, &HostError{Host: cmd.Host, Kind: ErrUnreachable, Err: err}
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	if err := sess.RequestPty("xterm", 40, 200, ssh.TerminalModes{ssh.ECHO: 0, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}); err != nil {
		return fail(err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return fail(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	sess.Stderr = io.Discard
	line := cmd.String()
	var sr *sudoRun
	if cmd.Sudo != nil {
		sr = newSudoRun(cmd.Sudo, cmd.Host)
		line = ShellQuote(sr.argv(cmd, false)...)
	}
	if line == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(line)
	}
	if err != nil {
		return fail(err)
	}
	var once sync.Once
	closeFn := func() error {
		once.Do(func() { sess.Signal(ssh.SIGKILL); sess.Close(); release() })
		return nil
	}
	e, err := newExpecter(cmd.Host, in, out, sess.Wait, closeFn, func(err error) (int, string, bool) {
		var ee *ssh.ExitError
		switch {
		case err == nil:
			return 0, "", true
		case errors.As(err, &ee):
			if ee.Signal() != "" {
				return -1, ee.Signal(), true
			}
			return ee.ExitStatus(), "", true
		}
		return -1, "", false
	})
	return spawned(ctx, e, err, sr)
}

// spawned finishes a Spawn: under sudo, it answers the password prompt
// before handing the dialogue over.
func spawned(ctx context.Context, e *Expecter, err error, sr *sudoRun) (*Expecter, error) {
	if err != nil || sr == nil {
		return e, err
	}
	if err := sudoSpawn(ctx, e, sr); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Spawn starts cmd on a local pseudo-terminal for a dialogue (no shell
// unless cmd.Shell is set). A missing program is a *MissingProgramsError.
// cmd.Host is "" (localhost) or a name for the Result; one that names no
// machine ("@", "user@") is refused with ErrInvalidHost.
func (l *Local) Spawn(ctx context.Context, cmd Command) (*Expecter, error) {
	if err := cmd.validate(); err != nil {
		return nil, err
	}
	if cmd.Host != "" {
		if err := CheckHost(cmd.Host); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxError("localhost", ctx)
	}
	args := cmd.Args
	if len(args) == 0 {
		args = []string{"/bin/sh", "-c", cmd.Shell}
	}
	var sr *sudoRun
	if cmd.Sudo != nil {
		sr = newSudoRun(cmd.Sudo, cmp.Or(cmd.Host, "localhost"))
		args = sr.argv(cmd, false)
	}
	if err := l.Check(args[0]); err != nil {
		return nil, err
	}
	pty, err := term.OpenPTY()
	if err != nil {
		return nil, fmt.Errorf("fleet: pty: %v", err)
	}
	var t term.Termios
	t.Raw()
	t.Set(pty.Slave)
	c := exec.Command(args[0], args[1:]...)
	c.Dir, c.Env = l.Dir, l.Env
	c.Stdin, c.Stdout, c.Stderr = pty.Slave, pty.Slave, pty.Slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := c.Start(); err != nil {
		pty.Master.Close()
		pty.Slave.Close()
		return nil, fmt.Errorf("fleet: start %s: %w", args[0], err)
	}
	pty.Slave.Close()
	host := cmd.Host
	if host == "" {
		host = "localhost"
	}
	var once sync.Once
	closeFn := func() error {
		once.Do(func() { c.Process.Kill(); pty.Master.Close() })
		return nil
	}
	e, err := newExpecter(host, pty.Master, pty.Master, c.Wait, closeFn, func(err error) (int, string, bool) {
		if c.ProcessState == nil {
			return -1, "", false
		}
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, signalName(ws.Signal()), true
		}
		return c.ProcessState.ExitCode(), "", true
	})
	return spawned(ctx, e, err, sr)
}
