package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

func hostNames(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("h%04d", i)
	}
	return hs
}

func TestGroupSummary(t *testing.T) {
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		switch cmd.Host {
		case "bad":
			return fleet.Result{ExitCode: 2, Stderr: []byte("nope")}, nil
		case "down":
			return fleet.Result{ExitCode: -1}, &fleet.HostError{Host: "down", Kind: fleet.ErrUnreachable}
		}
		return fleet.Result{Stdout: []byte(cmd.Host)}, nil
	})
	g := fleet.Group{Executor: rec, Concurrency: 2}
	sum, err := g.Run(t.Context(), []string{"a", "bad", "b", "down"}, fleet.Command{Args: []string{"uname"}})
	require.Error(t, err)
	var ee *fleet.ExitError
	assert.ErrorAs(t, err, &ee)
	assert.ErrorIs(t, err, fleet.ErrUnreachable)
	assert.ElementsMatch(t, []string{"a", "b"}, sum.Succeeded)
	assert.ElementsMatch(t, []string{"bad", "down"}, sum.Failed)
	assert.Empty(t, sum.NotStarted)
	assert.Equal(t, "a", string(sum.Results[0].Stdout))
	assert.Equal(t, 2, sum.Results[1].ExitCode)
	assert.NoError(t, sum.Errors[0])
	assert.Len(t, rec.Commands(), 4)
}

func TestGroupSlidingWindow(t *testing.T) {
	var inFlight, peak atomic.Int32
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer inFlight.Add(-1)
		return fleet.Result{}, nil
	})
	g := fleet.Group{Executor: rec, Concurrency: 7}
	sum, err := g.Run(t.Context(), hostNames(1500), fleet.Command{Shell: "true"})
	require.NoError(t, err)
	assert.Len(t, sum.Succeeded, 1500)
	assert.LessOrEqual(t, peak.Load(), int32(7))
}

func TestGroupCancelStopsDispatch(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var started atomic.Int32
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		if started.Add(1) == 3 {
			cancel()
		}
		<-ctx.Done()
		return fleet.Result{ExitCode: -1}, &fleet.HostError{Host: cmd.Host, Kind: context.Canceled, Err: ctx.Err()}
	})
	g := fleet.Group{Executor: rec, Concurrency: 3}
	sum, err := g.Run(ctx, hostNames(100), fleet.Command{Shell: "sleep 10"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int32(3), started.Load(), "hosts started after cancel")
	assert.Len(t, sum.Failed, 3)
	assert.Len(t, sum.NotStarted, 97)
}

func TestGroupHostTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
			if cmd.Host == "slow" {
				<-ctx.Done()
				return fleet.Result{ExitCode: -1}, &fleet.HostError{Host: cmd.Host, Kind: fleet.ErrTimeout, Err: ctx.Err()}
			}
			return fleet.Result{}, nil
		})
		g := fleet.Group{Executor: rec, HostTimeout: 5 * time.Second}
		start := time.Now()
		sum, err := g.Run(t.Context(), []string{"fast", "slow"}, fleet.Command{Shell: "x"})
		require.ErrorIs(t, err, fleet.ErrTimeout)
		assert.Equal(t, []string{"slow"}, sum.Failed)
		assert.Equal(t, 5*time.Second, time.Since(start))
	})
}

func TestGroupDialRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var starts []time.Duration
		start := time.Now()
		rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
			mu.Lock()
			starts = append(starts, time.Since(start))
			mu.Unlock()
			return fleet.Result{}, nil
		})
		g := fleet.Group{Executor: rec, DialRate: 4}
		_, err := g.Run(t.Context(), hostNames(9), fleet.Command{Shell: "x"})
		require.NoError(t, err)
		assert.Equal(t, 2*time.Second, starts[len(starts)-1], "the 9th start at 4/s")
	})
}

func TestGroupStream(t *testing.T) {
	rec := fleettest.NewRecorder(nil)
	g := fleet.Group{Executor: rec, Concurrency: 4}
	seen := map[string]bool{}
	for res, err := range g.Stream(t.Context(), hostNames(50), fleet.Command{Shell: "x"}) {
		require.NoError(t, err)
		seen[res.Host] = true
	}
	assert.Len(t, seen, 50)

	// Breaking out early stops the rest.
	rec2 := fleettest.NewRecorder(nil)
	n := 0
	for range (&fleet.Group{Executor: rec2, Concurrency: 1}).Stream(t.Context(), hostNames(1000), fleet.Command{Shell: "x"}) {
		n++
		if n == 5 {
			break
		}
	}
	assert.Less(t, len(rec2.Commands()), 1000)
}

func TestGroupBadInput(t *testing.T) {
	g := fleet.Group{Executor: fleettest.NewRecorder(nil)}
	_, err := g.Run(t.Context(), []string{"a"}, fleet.Command{Args: []string{"cat"}, Stdin: new(errReader)})
	assert.ErrorIs(t, err, fleet.ErrSharedStdin)
	_, err = g.Run(t.Context(), []string{"a"}, fleet.Command{})
	assert.ErrorIs(t, err, fleet.ErrEmptyCommand)
}

type errReader struct{}

func (*errReader) Read([]byte) (int, error) { return 0, errors.New("unused") }

// TestGroupOverSSHManyHosts fans out over one in-process server reached
// under many names; each name gets its own pooled connection.
func TestGroupOverSSHManyHosts(t *testing.T) {
	r := newRig(t, fleettest.Config{Handler: func(ctx context.Context, s *fleettest.Session) int {
		fmt.Fprintln(s.Stdout, "Linux fake")
		return 0
	}})
	ex := r.executor(t, func(c *fleet.SSHConfig) { c.InsecureIgnoreHostKey = true })
	_, port, _ := splitHostPort(r.srv.Addr())
	var hosts []string
	for i := range 300 {
		hosts = append(hosts, fmt.Sprintf("u%d@127.0.0.1:%s", i, port))
	}
	g := fleet.Group{Executor: ex, Concurrency: 50}
	sum, err := g.Run(t.Context(), hosts, fleet.Command{Args: []string{"uname", "-a"}})
	require.NoError(t, err)
	assert.Len(t, sum.Succeeded, 300)
	assert.Equal(t, 300, r.srv.Accepted())
	// A second command reuses the pooled connections.
	_, err = g.Run(t.Context(), hosts, fleet.Command{Args: []string{"uname", "-a"}})
	require.NoError(t, err)
	assert.Equal(t, 300, r.srv.Accepted(), "connections after the second command")
}
