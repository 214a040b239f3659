package fleet_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

const inflightServerEnv = "OPSKIT_FLEET_INFLIGHT_SERVER"

// TestInFlightServerHelper is the SSH server of
// BenchmarkGroupSSHMemoryInFlight, in a process of its own so that the
// benchmark measures the client alone. It prints its address, then "open"
// for each session, whose command waits until the client closes it.
func TestInFlightServerHelper(t *testing.T) {
	if os.Getenv(inflightServerEnv) == "" {
		t.Skip("runs only as the subprocess of BenchmarkGroupSSHMemoryInFlight")
	}
	var mu sync.Mutex
	srv, err := fleettest.New(fleettest.Config{Password: "pw", Handler: func(ctx context.Context, s *fleettest.Session) int {
		mu.Lock()
		fmt.Println("open")
		mu.Unlock()
		<-ctx.Done()
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(srv.Addr())
	select {} // until killed
}

// BenchmarkGroupSSHMemoryInFlight measures the client's memory per host in
// flight: OPSKIT_BENCH_INFLIGHT hosts (default 200), each its own SSH
// connection, all with a command running at once against a server in
// another process. It reports the heap and goroutines per host in flight
// (B/host, goroutines/host). Run it with -benchtime=1x.
func BenchmarkGroupSSHMemoryInFlight(b *testing.B) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("OPSKIT_BENCH_INFLIGHT")); err == nil && v > 0 {
		n = v
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInFlightServerHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), inflightServerEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if t := sc.Text(); t != "open" && t != "" {
			addr = t
			break
		}
	}
	if addr == "" {
		b.Fatal("the server process printed no address")
	}
	opened := make(chan struct{}, n)
	go func() {
		for sc.Scan() {
			if sc.Text() == "open" {
				opened <- struct{}{}
			}
		}
	}()
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("u%d@%s", i, addr) // one pooled connection each
	}
	for b.Loop() {
		ex, err := fleet.NewSSH(fleet.SSHConfig{InsecureIgnoreHostKey: true, DialTimeout: time.Minute,
			Password: func(string, string) (string, error) { return "pw", nil }})
		if err != nil {
			b.Fatal(err)
		}
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan struct{})
		go func() {
			g := fleet.Group{Executor: ex, Concurrency: n}
			g.Run(ctx, hosts, fleet.Command{Args: []string{"wait"}})
			close(done)
		}()
		for range n {
			select {
			case <-opened:
			case <-time.After(2 * time.Minute):
				b.Fatal("not every host got its command running")
			}
		}
		var during runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&during)
		g1 := runtime.NumGoroutine()
		b.ReportMetric(float64(int64(during.HeapInuse)-int64(before.HeapInuse))/float64(n), "B/host")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/host")
		cancel()
		<-done
		ex.Close()
	}
}
