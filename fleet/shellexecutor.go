package fleet

import (
	"context"
	"errors"
)

// ShellExecutor adapts an Executor to package workflow: its Run method has
// the shape of workflow.Executor, so fleet.ShellExecutor{Executor: ssh} is
// what workflow.Cmd takes. Each call runs cmd as a shell line
// (Command.Shell) on host and returns its standard output.
//
// It lives here, and without importing workflow, so that neither package
// imports the other: fleet and workflow stay independent leaves that only a
// program (or a test) joins.
//
// Errors are the Executor's: a non-zero exit is a *ExitError (whose message
// ends with the command's last lines of stderr), a failure to reach the host
// a *HostError, a cancelled ctx matches context.Canceled. The zero value has
// no Executor and returns an error. ShellExecutor holds no resources; close
// the Executor it wraps when finished.
type ShellExecutor struct {
	Executor Executor
}

// Run runs cmd through host's shell and returns its standard output, also
// when the command failed.
func (s ShellExecutor) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	if s.Executor == nil {
		return nil, errors.New("fleet: ShellExecutor has no Executor")
	}
	res, err := s.Executor.Run(ctx, Command{Host: host, Shell: cmd})
	return res.Stdout, err
}
