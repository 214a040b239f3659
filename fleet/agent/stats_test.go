package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
)

// fakeCollect returns fixed stats.
func fakeCollect(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
	return &agent.Stats{CollectedAt: time.Unix(1700000000, 0).UTC(), Uptime: 42}, nil
}

func TestCollectHost(t *testing.T) {
	first, err := agent.CollectHost(t.Context(), nil)
	require.NoError(t, err)
	second, err := agent.CollectHost(t.Context(), first)
	require.NoError(t, err)
	for _, st := range []*agent.Stats{first, second} {
		assert.Positive(t, st.CPU.Total.User+st.CPU.Total.Idle, "total CPU times")
		assert.NotEmpty(t, st.CPU.PerCPU, "per-CPU times")
		assert.InDelta(t, 50, st.CPU.Total.Percent, 50, "percentage in [0,100]")
		require.NotNil(t, st.Memory)
		assert.Positive(t, st.Memory.Total)
		assert.NotNil(t, st.Swap)
		require.NotNil(t, st.Load)
		require.NotNil(t, st.Host)
		assert.NotEmpty(t, st.Host.Hostname)
		assert.Positive(t, st.Uptime)
		assert.NotEmpty(t, st.Disks, "usage of at least one mount")
	}
}

func TestCollectHostCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := agent.CollectHost(ctx, nil)
	require.ErrorIs(t, err, context.Canceled)
}

// TestSamplerReadersDoNotBlock: while a collection is stuck, Stats returns
// the previous one at once.
func TestSamplerReadersDoNotBlock(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var n atomic.Int64
	s := agent.NewSampler(agent.SamplerConfig{
		Timeout: time.Hour,
		Collect: func(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
			if n.Add(1) == 2 {
				close(entered)
				<-release
			}
			return &agent.Stats{Uptime: uint64(n.Load())}, nil
		},
	})
	assert.Nil(t, s.Stats(), "nothing before the first collection")
	require.NoError(t, s.Collect(t.Context()))
	done := make(chan error)
	go func() { done <- s.Collect(t.Context()) }()
	<-entered
	assert.Equal(t, uint64(1), s.Stats().Uptime, "the previous stats while the collection runs")
	require.ErrorIs(t, s.Collect(t.Context()), agent.ErrBusy, "no second collection joins a running one")
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, uint64(2), s.Stats().Uptime, "the new stats once published")
}

// TestSamplerTimeout: a collection that ignores its context is abandoned
// after Timeout; the previous stats stay.
func TestSamplerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		s := agent.NewSampler(agent.SamplerConfig{
			Timeout: 5 * time.Second,
			Collect: func(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
				if calls.Add(1) == 1 {
					return &agent.Stats{Uptime: 1}, nil
				}
				<-release // hung, like a statfs on a dead NFS mount
				return &agent.Stats{Uptime: 2}, nil
			},
		})
		require.NoError(t, s.Collect(t.Context()))
		start := time.Now()
		err := s.Collect(t.Context())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 5*time.Second, time.Since(start))
		close(release)
		synctest.Wait()
		assert.Equal(t, uint64(1), s.Stats().Uptime, "a late result is not published")
	})
}

func TestSamplerRunCollectsOnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		s := agent.NewSampler(agent.SamplerConfig{
			Interval: 10 * time.Second,
			Collect: func(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
				n := calls.Add(1)
				if n == 2 {
					return nil, errors.New("transient")
				}
				return &agent.Stats{Uptime: uint64(n)}, nil
			},
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()
		assert.Equal(t, uint64(1), s.Stats().Uptime, "collected at once")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, uint64(1), s.Stats().Uptime, "a failed collection keeps the previous stats")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, uint64(3), s.Stats().Uptime)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// BenchmarkStatsRead reads the stats while a slow collection runs the
// whole time.
func BenchmarkStatsRead(b *testing.B) {
	stop := make(chan struct{})
	s := agent.NewSampler(agent.SamplerConfig{
		Timeout: time.Hour,
		Collect: func(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
			if prev != nil {
				<-stop // a collection that takes as long as the benchmark
			}
			return &agent.Stats{Uptime: 1}, nil
		},
	})
	require.NoError(b, s.Collect(b.Context()))
	go s.Collect(context.Background())
	b.SetBytes(1)
	b.ReportAllocs()
	for b.Loop() {
		if s.Stats() == nil {
			b.Fatal("no stats")
		}
	}
	close(stop)
}

// BenchmarkStatsHTTP is GET /v1/stats through the handler while a slow
// collection runs: what a reader waits for.
func BenchmarkStatsHTTP(b *testing.B) {
	stop := make(chan struct{})
	st, err := agent.CollectHost(b.Context(), nil)
	require.NoError(b, err)
	s := agent.NewSampler(agent.SamplerConfig{
		Timeout: time.Hour,
		Collect: func(ctx context.Context, prev *agent.Stats) (*agent.Stats, error) {
			if prev != nil {
				<-stop
			}
			return st, nil
		},
	})
	require.NoError(b, s.Collect(b.Context()))
	go s.Collect(context.Background())
	a, err := agent.New(agent.Config{Dir: b.TempDir(), Sampler: s})
	require.NoError(b, err)
	h := a.Handler()
	req := httptestRequest("GET", "/v1/stats")
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		w := &countWriter{}
		h.ServeHTTP(w, req)
		n = w.n
	}
	b.SetBytes(n)
	close(stop)
}

// TestVarsWithoutGlobalRegistry: /debug/vars is the agent's own handler;
// nothing is registered on http.DefaultServeMux.
func TestVarsWithoutGlobalRegistry(t *testing.T) {
	a, _, _ := newAgent(t, nil)
	require.NoError(t, a.Sampler().Collect(t.Context()))
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/vars", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var vars map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &vars))
	assert.Contains(t, vars, "cmdline")
	assert.Contains(t, vars, "memstats")
	assert.JSONEq(t, `42`, string(mustField(t, vars["stats"], "uptime")))
	_, pattern := http.DefaultServeMux.Handler(httptest.NewRequest("GET", "/debug/vars", nil))
	assert.Empty(t, pattern, "nothing registered on the default mux")
}

func mustField(t testing.TB, raw json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m[field]
}

// TestCollectHostPercents: the percentages of the second collection are
// over the interval since the first and add up to 100.
func TestCollectHostPercents(t *testing.T) {
	first, err := agent.CollectHost(t.Context(), nil)
	require.NoError(t, err)
	// Burn a little CPU so the interval is not empty.
	for i := 0; i < 3e7; i++ {
		_ = i * i
	}
	second, err := agent.CollectHost(t.Context(), first)
	require.NoError(t, err)
	for _, c := range append([]agent.CPUTimes{second.CPU.Total}, second.CPU.PerCPU...) {
		p := c.Percents
		sum := p.User + p.System + p.Idle + p.Nice + p.Iowait + p.Irq + p.Softirq + p.Steal
		if sum == 0 {
			continue // a CPU with no ticks in the interval
		}
		assert.InDelta(t, 100, sum, 0.01, "%s: the kinds add up to 100%%", c.CPU)
		assert.InDelta(t, 100-p.Idle-p.Iowait, c.Percent, 0.01, "%s: busy is the rest of idle", c.CPU)
	}
}
