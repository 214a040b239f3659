package fleet_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// flakyProxy listens on loopback and forwards to target, except that it
// resets (RST) the first `drop` connections at once, as a host whose sshd
// is restarting or over MaxStartups does.
type flakyProxy struct {
	ln    net.Listener
	conns atomic.Int32
}

func newFlakyProxy(t *testing.T, target string, drop int32) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &flakyProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.conns.Add(1) <= drop {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

// TestConnectRetries: transient connection failures (reset before the
// handshake) are retried with backoff and counted in the Result; the
// command runs exactly once; failures that are not transient, and failures
// after the command started, are not retried.
func TestConnectRetries(t *testing.T) {
	r := newRig(t, fleettest.Config{})
	retrying := func(n int) func(*fleet.SSHConfig) {
		return func(c *fleet.SSHConfig) {
			c.ConnectRetries, c.ConnectRetryWait = n, time.Millisecond
			c.InsecureIgnoreHostKey = true // the proxy's address is not in known_hosts
		}
	}

	t.Run("two resets then success", func(t *testing.T) {
		p := newFlakyProxy(t, r.srv.Addr(), 2)
		before := len(r.srv.Commands())
		ex := r.executor(t, retrying(3))
		res, err := ex.Run(t.Context(), fleet.Command{Host: p.ln.Addr().String(), Args: []string{"echo", "once"}})
		require.NoError(t, err)
		assert.Equal(t, "once\n", string(res.Stdout))
		assert.Equal(t, 2, res.ConnectRetries, "the result counts the retries")
		assert.EqualValues(t, 3, p.conns.Load())
		assert.Len(t, r.srv.Commands(), before+1, "the command ran once")
	})
	t.Run("retries exhausted", func(t *testing.T) {
		p := newFlakyProxy(t, r.srv.Addr(), 2)
		ex := r.executor(t, retrying(1))
		res, err := ex.Run(t.Context(), fleet.Command{Host: p.ln.Addr().String(), Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrUnreachable)
		assert.Equal(t, 1, res.ConnectRetries)
		assert.EqualValues(t, 2, p.conns.Load())
	})
	t.Run("no retries by default", func(t *testing.T) {
		p := newFlakyProxy(t, r.srv.Addr(), 1)
		ex := r.executor(t, func(c *fleet.SSHConfig) { c.InsecureIgnoreHostKey = true })
		_, err := ex.Run(t.Context(), fleet.Command{Host: p.ln.Addr().String(), Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrUnreachable)
		assert.EqualValues(t, 1, p.conns.Load())
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close() // nothing listens: connection refused
		ex := r.executor(t, retrying(2))
		res, err := ex.Run(t.Context(), fleet.Command{Host: addr, Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrUnreachable)
		assert.Equal(t, 2, res.ConnectRetries, "refused is retried")
	})
	t.Run("timeout before the handshake", func(t *testing.T) {
		srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{r.signer.PublicKey()}})
		srv.SetFailures(fleettest.Failures{StallHandshake: true})
		ex := r.executor(t, func(c *fleet.SSHConfig) {
			retrying(1)(c)
			c.DialTimeout = 50 * time.Millisecond
		})
		res, err := ex.Run(t.Context(), fleet.Command{Host: srv.Addr(), Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrTimeout)
		assert.Equal(t, 1, res.ConnectRetries)
		assert.Equal(t, 2, srv.Accepted())
	})
	t.Run("auth failure is not retried", func(t *testing.T) {
		other := fleettest.NewServer(t, fleettest.Config{Password: "x"})
		p := newFlakyProxy(t, other.Addr(), 0)
		ex := r.executor(t, retrying(3))
		res, err := ex.Run(t.Context(), fleet.Command{Host: p.ln.Addr().String(), Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrAuth)
		assert.Zero(t, res.ConnectRetries)
		assert.EqualValues(t, 1, p.conns.Load())
	})
	t.Run("a command that started is never retried", func(t *testing.T) {
		srv := fleettest.NewServer(t, fleettest.Config{AuthorizedKeys: []ssh.PublicKey{r.signer.PublicKey()}})
		srv.SetFailures(fleettest.Failures{DropMidCommand: true})
		p := newFlakyProxy(t, srv.Addr(), 0)
		ex := r.executor(t, retrying(3))
		res, err := ex.Run(t.Context(), fleet.Command{Host: p.ln.Addr().String(), Args: []string{"true"}})
		require.ErrorIs(t, err, fleet.ErrUnreachable)
		assert.Zero(t, res.ConnectRetries)
		assert.EqualValues(t, 1, p.conns.Load(), "no second connection")
		assert.Equal(t, "partial\n", string(res.Stdout), "the command started once, and its output is kept")
	})
}
