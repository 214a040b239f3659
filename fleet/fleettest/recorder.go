package fleettest

import (
	"context"
	"io"
	"sync"

	"github.com/opskit/opskit/fleet"
)

// Recorder is an in-memory fleet.Executor for unit tests: it records
// every Command and answers with Respond. The zero value answers every
// command with exit status 0 and no output. It is safe for concurrent use.
type Recorder struct {
	// Respond computes the result of a command; nil means success.
	// Returning a Result with a non-zero ExitCode and a nil error makes Run
	// return a *fleet.ExitError, as a real executor does.
	Respond func(ctx context.Context, cmd fleet.Command) (fleet.Result, error)

	mu    sync.Mutex
	cmds  []fleet.Command
	stdin [][]byte
}

// NewRecorder returns a Recorder answering with respond (nil: success).
func NewRecorder(respond func(ctx context.Context, cmd fleet.Command) (fleet.Result, error)) *Recorder {
	return &Recorder{Respond: respond}
}

// Run records cmd (reading Stdin fully into StdinData) and returns
// Respond's answer. Like the SSH executor, it refuses a cmd.Host that
// names no machine ("", "@", "user@") with fleet.ErrInvalidHost, recording
// nothing.
func (r *Recorder) Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
	if err := fleet.CheckHost(cmd.Host); err != nil {
		return fleet.Result{Host: cmd.Host, ExitCode: -1}, err
	}
	if cmd.Stdin != nil {
		b, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return fleet.Result{Host: cmd.Host, ExitCode: -1}, err
		}
		cmd.Stdin = nil
		r.mu.Lock()
		r.cmds = append(r.cmds, cmd)
		r.stdin = append(r.stdin, b)
		r.mu.Unlock()
	} else {
		r.mu.Lock()
		r.cmds = append(r.cmds, cmd)
		r.stdin = append(r.stdin, nil)
		r.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return fleet.Result{Host: cmd.Host, ExitCode: -1}, &fleet.HostError{Host: cmd.Host, Kind: context.Canceled, Err: err}
	}
	res := fleet.Result{Host: cmd.Host}
	var err error
	if r.Respond != nil {
		res, err = r.Respond(ctx, cmd)
		if res.Host == "" {
			res.Host = cmd.Host
		}
	}
	if err == nil && !res.OK() {
		err = &fleet.ExitError{Host: res.Host, Code: res.ExitCode, Signal: res.Signal, Stderr: res.Stderr}
	}
	return res, err
}

// Commands returns the commands run so far, in order, with Stdin cleared.
func (r *Recorder) Commands() []fleet.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fleet.Command(nil), r.cmds...)
}

// Stdin returns the standard input each recorded command was given
// (nil for none), index for index with Commands.
func (r *Recorder) Stdin() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.stdin...)
}
