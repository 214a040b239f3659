package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
)

// Sudo runs a Command as another user through sudo(8) on the host.
type Sudo struct {
	// User is the user to run as; "" means root.
	User string
	// Password returns the sudo password of the login user on host when
	// sudo asks for it. It is written only to sudo's standard input (or
	// its terminal, without echo), never into a Result, an error or a
	// log. Nil means sudo must not ask (NOPASSWD or cached credentials);
	// if it asks anyway, the command fails with ErrSudo.
	Password func(host string) (string, error)
	// Program is the sudo program; "" means "sudo" (found on PATH).
	Program string
}

// ErrSudo is matched by the error of a Command with Sudo when sudo asked
// for a password it was not given or refused the one it was given (the
// command did not run), or when Password failed.
var ErrSudo = errors.New("fleet: sudo refused")

// sudoRun is one command under sudo: the tokens that tell sudo's prompt
// and the command's start apart on stderr, and the state of the dialogue.
type sudoRun struct {
	sudo    *Sudo
	host    string
	prompt  string // sudo -p PROMPT
	marker  string // printed by the shell once sudo let it run
	stdin   io.WriteCloser
	cmdIn   io.Reader // the Command's own stdin, copied once the command started
	errOut  io.Writer // where stderr goes, without prompt and marker
	mu      sync.Mutex
	pending []byte // stderr held back while a token may be cut across writes
	started bool
	asked   int
	err     error // ErrSudo, or Password's failure
	onFail  func()
}

func newSudoRun(s *Sudo, host string) *sudoRun {
	var b [12]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	return &sudoRun{sudo: s, host: host, prompt: "[opskit-sudo-" + tok + "] ", marker: "[opskit-run-" + tok + "]\n"}
}

// argv returns the command line that runs cmd under sudo: sudo reads the
// password from stdin (-S), prompts with the prompt token on stderr, and
// the shell it starts prints the marker on stderr before it execs the
// command, so that the Command's stdin reaches the command, not sudo.
func (r *sudoRun) argv(cmd Command, stdinPrompt bool) []string {
	prog := r.sudo.Program
	if prog == "" {
		prog = "sudo"
	}
	a := []string{prog}
	if stdinPrompt {
		a = append(a, "-S")
	}
	a = append(a, "-p", r.prompt)
	if r.sudo.User != "" {
		a = append(a, "-u", r.sudo.User)
	}
	mark := "printf '%s\\n' " + ShellQuote(r.marker[:len(r.marker)-1]) + " >&2; "
	if len(cmd.Args) > 0 {
		return append(append(a, "--", "/bin/sh", "-c", mark+`exec "$@"`, "sh"), cmd.Args...)
	}
	return append(a, "--", "/bin/sh", "-c", mark+cmd.Shell)
}

// Write takes the command's stderr: it answers the prompt, starts
// copying stdin at the marker, and passes the rest on.
func (r *sudoRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return r.errOut.Write(p)
	}
	r.pending = append(r.pending, p...)
	for {
		// Whichever token comes first: a prompt may precede the marker in
		// the same write.
		pi := bytes.Index(r.pending, []byte(r.prompt))
		mi := bytes.Index(r.pending, []byte(r.marker))
		if mi >= 0 && (pi < 0 || mi < pi) {
			r.errOut.Write(r.pending[:mi])
			rest := r.pending[mi+len(r.marker):]
			r.pending = nil
			r.started = true
			go r.copyStdin()
			r.errOut.Write(rest)
			return len(p), nil
		}
		if pi < 0 {
			break
		}
		r.errOut.Write(r.pending[:pi])
		r.pending = r.pending[pi+len(r.prompt):]
		r.answer()
	}
	// Keep back only what could be the start of a token.
	keep := max(len(r.prompt), len(r.marker)) - 1
	if n := len(r.pending) - keep; n > 0 {
		r.errOut.Write(r.pending[:n])
		r.pending = r.pending[n:]
	}
	return len(p), nil
}

// answer sends the password once; a second prompt means it was refused.
func (r *sudoRun) answer() {
	r.asked++
	switch {
	case r.asked > 1:
		r.fail(fmt.Errorf("%w: %s: the sudo password was not accepted", ErrSudo, r.host))
		return
	case r.sudo.Password == nil:
		r.fail(fmt.Errorf("%w: %s: sudo asked for a password and Sudo.Password is nil", ErrSudo, r.host))
		return
	}
	pw, err := r.sudo.Password(r.host)
	if err != nil {
		r.fail(fmt.Errorf("%w: %s: password: %w", ErrSudo, r.host, err))
		return
	}
	// Written at once: sudo is reading it, and a password fits any pipe
	// or channel window.
	io.WriteString(r.stdin, pw+"\n")
}

func (r *sudoRun) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.stdin.Close() // sudo reads EOF and gives up
	if r.onFail != nil {
		r.onFail()
	}
}

func (r *sudoRun) copyStdin() {
	if r.cmdIn != nil {
		io.Copy(r.stdin, r.cmdIn)
	}
	r.stdin.Close()
}

// finish flushes held-back stderr and returns the dialogue's error.
func (r *sudoRun) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		r.errOut.Write(r.pending)
		r.pending = nil
	}
	return r.err
}

// sudoSpawn handles sudo's prompt at the start of a pty dialogue: it
// answers the prompt with the password (the pty does not echo it) and
// returns once the command started, leaving the rest to the caller.
func sudoSpawn(ctx context.Context, e *Expecter, r *sudoRun) error {
	prompt := regexp.MustCompile(regexp.QuoteMeta(r.prompt))
	marker := regexp.MustCompile(regexp.QuoteMeta(r.marker[:len(r.marker)-1]) + `\r?\n`)
	for asked := 0; ; {
		i, _, _, err := e.Switch(ctx, Case{Match: marker}, Case{Match: prompt})
		if err != nil {
			return err
		}
		if i == 0 {
			return nil
		}
		asked++
		switch {
		case asked > 1:
			return fmt.Errorf("%w: %s: the sudo password was not accepted", ErrSudo, r.host)
		case r.sudo.Password == nil:
			return fmt.Errorf("%w: %s: sudo asked for a password and Sudo.Password is nil", ErrSudo, r.host)
		}
		pw, err := r.sudo.Password(r.host)
		if err != nil {
			return fmt.Errorf("%w: %s: password: %w", ErrSudo, r.host, err)
		}
		if err := e.Send(ctx, pw+"\n"); err != nil {
			return err
		}
	}
}
