package agentmetrics_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agentmetrics"
	"github.com/opskit/opskit/fleet/agent/agenttest"
	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/internal/secret"
)

// newAgent starts an Agent in a temp dir; its events go to the returned
// channel.
func newAgent(t testing.TB, sampler *agent.Sampler, token string) (*agent.Agent, *prometheus.Registry, chan agent.Event) {
	t.Helper()
	events := make(chan agent.Event, 100)
	reg := prometheus.NewRegistry()
	a, err := agent.New(agent.Config{
		Dir: t.TempDir(), StartGrace: 100 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Sampler: sampler, Token: secret.String(token),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		OnEvent: func(e agent.Event) {
			select {
			case events <- e:
			default:
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	reg.MustRegister(agentmetrics.New(a))
	return a, reg, events
}

// sleepZip is a package holding a copy of sleep as bin/sleep.
func sleepZip(t testing.TB) []byte {
	t.Helper()
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	require.NoError(t, err)
	return z
}

// procStatCPU0 reads cpu0's user and idle seconds from /proc/stat.
func procStatCPU0(t testing.TB) (user, idle float64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[0] == "cpu0" {
			u, _ := strconv.ParseFloat(f[1], 64)
			i, _ := strconv.ParseFloat(f[4], 64)
			return u / 100, i / 100 // USER_HZ is 100 on Linux
		}
	}
	t.Fatal("no cpu0 in /proc/stat")
	return 0, 0
}

// procMeminfo reads one /proc/meminfo field in bytes.
func procMeminfo(t testing.TB, field string) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			require.NoError(t, err)
			return kb * 1024
		}
	}
	t.Fatalf("no %s in /proc/meminfo", field)
	return 0
}

func procLoad1(t testing.TB) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	require.NoError(t, err)
	v, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	require.NoError(t, err)
	return v
}

// procPid reads a process's CPU seconds, RSS and start time from /proc.
func procPid(t testing.TB, pid int) (cpu, rss, start float64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	startTicks, _ := strconv.ParseFloat(f[19], 64)
	rssPages, _ := strconv.ParseFloat(f[21], 64)
	stat, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	var btime float64
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, _ = strconv.ParseFloat(v, 64)
		}
	}
	return (ut + st) / 100, rssPages * float64(os.Getpagesize()), btime + startTicks/100
}

// TestMetricsMatchProc scrapes the agent's registry after real activity
// (a real host collection, an install, a crash and its restart) and compares
// what it reports with /proc read around the scrape.
func TestMetricsMatchProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("needs /proc")
	}
	sampler := agent.NewSampler(agent.SamplerConfig{})
	a, reg, events := newAgent(t, sampler, "")

	run := agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}}
	st, err := a.Install(t.Context(), "app", bytes.NewReader(sleepZip(t)), run)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(st.Pid, syscall.SIGKILL))
	var restarted agent.Event
	for restarted.Kind != agent.EventStarted || restarted.Restarts == 0 { // not the install's own start
		select {
		case restarted = <-events:
		case <-time.After(30 * time.Second):
			t.Fatal("no restart after the kill") // a hang guard, not a timing assertion
		}
	}
	require.Equal(t, 1, restarted.Restarts)
	_, err = a.Install(t.Context(), "idle", bytes.NewReader(sleepZip(t)), run)
	require.NoError(t, err)
	_, err = a.Stop(t.Context(), "idle")
	require.NoError(t, err)

	userBefore, idleBefore := procStatCPU0(t)
	loadBefore := procLoad1(t)
	require.NoError(t, sampler.Collect(t.Context()))
	fams, err := reg.Gather()
	require.NoError(t, err)
	userAfter, idleAfter := procStatCPU0(t)
	loadAfter := procLoad1(t)
	cpuAfter, rssAfter, startProc := procPid(t, restarted.Pid)

	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := promtest.Find(fams, name, labels)
		require.True(t, ok, "no %s%v in the scrape", name, labels)
		return v
	}
	const tick = 0.011 // one USER_HZ tick plus rounding
	user := get("node_cpu_seconds_total", map[string]string{"cpu": "0", "mode": "user"})
	assert.True(t, user >= userBefore-tick && user <= userAfter+tick, "cpu0 user %v, /proc/stat %v..%v", user, userBefore, userAfter)
	idle := get("node_cpu_seconds_total", map[string]string{"cpu": "0", "mode": "idle"})
	assert.True(t, idle >= idleBefore-tick && idle <= idleAfter+tick, "cpu0 idle %v, /proc/stat %v..%v", idle, idleBefore, idleAfter)
	assert.Equal(t, procMeminfo(t, "MemTotal"), get("node_memory_MemTotal_bytes", nil))
	assert.Equal(t, procMeminfo(t, "SwapTotal"), get("node_memory_SwapTotal_bytes", nil))
	assert.InDelta(t, procMeminfo(t, "MemAvailable"), get("node_memory_MemAvailable_bytes", nil), 128<<20)
	assert.InDelta(t, procMeminfo(t, "Cached"), get("node_memory_Cached_bytes", nil), 128<<20)
	load1 := get("node_load1", nil)
	assert.True(t, load1 >= min(loadBefore, loadAfter)-0.5 && load1 <= max(loadBefore, loadAfter)+0.5, "load1 %v, /proc/loadavg %v..%v", load1, loadBefore, loadAfter)
	var fs syscall.Statfs_t
	require.NoError(t, syscall.Statfs("/", &fs))
	assert.Equal(t, float64(fs.Blocks)*float64(fs.Frsize), get("node_filesystem_size_bytes", map[string]string{"mountpoint": "/"}))
	assert.InDelta(t, float64(fs.Bavail)*float64(fs.Frsize), get("node_filesystem_avail_bytes", map[string]string{"mountpoint": "/"}), 256<<20)

	app := map[string]string{"package": "app"}
	assert.Equal(t, 1.0, get("opskit_agent_program_up", app))
	assert.Equal(t, 1.0, get("opskit_agent_program_restarts_total", app), "one crash, one restart")
	assert.Equal(t, 0.0, get("opskit_agent_program_up", map[string]string{"package": "idle"}))
	assert.Equal(t, 1.0, get("opskit_agent_program_info", map[string]string{"package": "app", "release": st.Release, "binary": "bin/sleep"}))
	cpu := get("opskit_agent_program_cpu_seconds_total", app)
	assert.True(t, cpu >= 0 && cpu <= cpuAfter+tick, "program cpu %v, /proc %v", cpu, cpuAfter)
	rss := get("opskit_agent_program_resident_memory_bytes", app)
	assert.InDelta(t, rssAfter, rss, math.Max(rssAfter/4, 1<<20), "program RSS")
	assert.InDelta(t, startProc, get("opskit_agent_program_start_time_seconds", app), 2, "program start time")
	_, ok := promtest.Find(fams, "opskit_agent_program_resident_memory_bytes", map[string]string{"package": "idle"})
	assert.False(t, ok, "a stopped program has no RSS")

	// Lint: node_exporter's own memory names are camelCase (MemTotal);
	// they are kept as they are for its dashboards. Nothing else may be
	// reported.
	problems, err := testutil.CollectAndLint(agentmetrics.New(a))
	require.NoError(t, err)
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "node_memory_") && strings.Contains(p.Text, "camelCase") {
			continue
		}
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsEndpoint: GET /metrics serves Config.Metrics behind the token.
func TestMetricsEndpoint(t *testing.T) {
	a, _, _ := newAgent(t, agent.NewSampler(agent.SamplerConfig{}), "s3cret")
	_, err := a.Install(t.Context(), "app", bytes.NewReader(sleepZip(t)), agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}})
	require.NoError(t, err)
	h := a.Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	w = httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Authorization", "Bearer s3cret")
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `opskit_agent_program_up{package="app"} 1`)
	assert.NotContains(t, w.Body.String(), "node_load1", "no host metrics before the first collection")
}
