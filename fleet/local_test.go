package fleet_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

func TestLocalConformance(t *testing.T) {
	fleettest.TestExecutor(t, func(t *testing.T) (fleet.Executor, string) {
		return &fleet.Local{}, "localhost"
	})
}

func TestLocalMissingPrograms(t *testing.T) {
	var l fleet.Local
	err := l.Check("sh", "opskit-no-such-program", "opskit-nor-this")
	var me *fleet.MissingProgramsError
	if !errors.As(err, &me) || !errors.Is(err, fleet.ErrMissingProgram) {
		t.Fatalf("Check = %v; want *MissingProgramsError", err)
	}
	if len(me.Programs) != 2 || me.Programs[0] != "opskit-no-such-program" {
		t.Errorf("missing = %q; want the two absent programs", me.Programs)
	}
	_, err = l.Run(t.Context(), fleet.Command{Args: []string{"opskit-no-such-program", "x"}})
	if !errors.Is(err, fleet.ErrMissingProgram) {
		t.Errorf("Run(missing program) = %v; want ErrMissingProgram", err)
	}
}

func TestLocalNoShellUnlessAsked(t *testing.T) {
	var l fleet.Local
	res, err := l.Run(t.Context(), fleet.Command{Args: []string{"echo", "$HOME;", "`id`"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "$HOME; `id`\n" {
		t.Errorf("Stdout = %q; want the arguments verbatim", res.Stdout)
	}
}

// A background child that keeps stdout open must not hold Run past
// WaitDelay.
func TestLocalWaitDelay(t *testing.T) {
	l := fleet.Local{WaitDelay: 100 * time.Millisecond}
	res, err := l.Run(t.Context(), fleet.Command{Shell: "sleep 30 & echo started"})
	require.NoError(t, err)
	assert.Equal(t, "started\n", string(res.Stdout))
	assert.Equal(t, 0, res.ExitCode)
}

func TestLocalStartFailure(t *testing.T) {
	dir := t.TempDir()
	l := fleet.Local{Dir: filepath.Join(dir, "missing")}
	_, err := l.Run(t.Context(), fleet.Command{Args: []string{"true"}})
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "fleet: start true")
}

func TestCancelMessage(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var l fleet.Local
	_, err := l.Run(ctx, fleet.Command{Host: "h1", Args: []string{"true"}})
	assert.EqualError(t, err, "fleet: h1: context canceled")
	ctx, cancelCause := context.WithCancelCause(t.Context())
	cancelCause(errors.New("operator pressed ^C"))
	_, err = l.Run(ctx, fleet.Command{Host: "h1", Args: []string{"true"}})
	assert.EqualError(t, err, "fleet: h1: context canceled: operator pressed ^C")
	assert.ErrorIs(t, err, context.Canceled)
}
