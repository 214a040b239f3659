package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

func quiet(ctx context.Context, s *fleettest.Session) int { return 0 }

// BenchmarkSSHRunPooled is one command over an open pooled connection to
// an in-process server (bytes: hosts reached).
func BenchmarkSSHRunPooled(b *testing.B) {
	r := newRig(b, fleettest.Config{Handler: quiet})
	ex := r.executor(b, nil)
	cmd := fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}}
	b.SetBytes(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ex.Run(b.Context(), cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSSHRunCold dials, verifies known_hosts, authenticates and runs
// one command per iteration.
func BenchmarkSSHRunCold(b *testing.B) {
	r := newRig(b, fleettest.Config{Handler: quiet})
	cmd := fleet.Command{Host: r.srv.Addr(), Args: []string{"true"}}
	ex := r.executor(b, nil)
	b.SetBytes(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ex.Run(b.Context(), cmd); err != nil {
			b.Fatal(err)
		}
		ex.CloseHost(cmd.Host)
	}
}

// BenchmarkGroupRecorder200 is the fan-out machinery alone: 200 hosts,
// window 50, over an in-memory executor (bytes: hosts reached).
func BenchmarkGroupRecorder200(b *testing.B) {
	g := fleet.Group{Executor: fleettest.NewRecorder(nil), Concurrency: 50}
	hosts := hostNames(200)
	b.SetBytes(int64(len(hosts)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Run(b.Context(), hosts, fleet.Command{Args: []string{"uname", "-a"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExpandCIDR expands a /16 (bytes: addresses).
func BenchmarkExpandCIDR(b *testing.B) {
	b.SetBytes(65534)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fleet.ExpandCIDR("10.1.0.0/16", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushLocal pushes 4 MiB through the local executor, which
// hashes it on both sides (bytes: file bytes).
func BenchmarkPushLocal(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	var l fleet.Local
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := fleet.Push(b.Context(), &l, "localhost", src, filepath.Join(dir, "dst"+strconv.Itoa(i%2)), 0o644); err != nil {
			b.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "dst"+strconv.Itoa(i%2)))
	}
}

// BenchmarkSSHDFanOut runs against the servers that make bench-fleet
// starts (it skips otherwise): uname -a on OPSKIT_BENCH_HOSTS addresses,
// with cold connections, then a second command over the pooled ones
// (bytes: hosts reached). The addresses are the first lines of
// OPSKIT_BENCH_HOSTS_FILE (host:port, from scripts/bench-fleet-server,
// as scripts/bench-fleet-fanout.sh runs it), or else 127.0.0.2 on at
// OPSKIT_BENCH_PORT (one real sshd, as scripts/bench-fleet.sh runs it).
func BenchmarkSSHDFanOut(b *testing.B) {
	port, file := os.Getenv("OPSKIT_BENCH_PORT"), os.Getenv("OPSKIT_BENCH_HOSTS_FILE")
	if port == "" && file == "" {
		b.Skip("run by make bench-fleet (OPSKIT_BENCH_PORT and OPSKIT_BENCH_HOSTS_FILE unset)")
	}
	n, _ := strconv.Atoi(os.Getenv("OPSKIT_BENCH_HOSTS"))
	conc, _ := strconv.Atoi(os.Getenv("OPSKIT_BENCH_CONCURRENCY"))
	hosts := make([]string, n)
	var lines []string
	if file != "" {
		bs, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		if lines = strings.Fields(string(bs)); len(lines) < n {
			b.Fatalf("%s: %d hosts, %d wanted", file, len(lines), n)
		}
	}
	for i := range hosts {
		if lines != nil {
			hosts[i] = lines[i]
			continue
		}
		a := 2 + i
		hosts[i] = fmt.Sprintf("127.0.%d.%d:%s", a/256, a%256, port)
	}
	cfg := fleet.SSHConfig{
		User:            os.Getenv("OPSKIT_BENCH_USER"),
		KeyFiles:        []string{os.Getenv("OPSKIT_BENCH_KEY")},
		KnownHostsFiles: []string{os.Getenv("OPSKIT_BENCH_KNOWN_HOSTS")},
		DialTimeout:     60e9,
	}
	cmd := fleet.Command{Args: []string{"uname", "-a"}}
	for _, pooled := range []bool{false, true} {
		name := "cold"
		if pooled {
			name = "pooled"
		}
		b.Run(fmt.Sprintf("%s-%d", name, n), func(b *testing.B) {
			ex, err := fleet.NewSSH(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { ex.Close() }()
			g := fleet.Group{Executor: ex, Concurrency: conc}
			if pooled {
				if _, err := g.Run(b.Context(), hosts, cmd); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sum, err := g.Run(b.Context(), hosts, cmd)
				if err != nil {
					b.Fatalf("%d of %d hosts failed: %v", len(sum.Failed), n, err)
				}
				if !pooled {
					b.StopTimer()
					ex.Close()
					if ex, err = fleet.NewSSH(cfg); err != nil {
						b.Fatal(err)
					}
					g.Executor = ex
					b.StartTimer()
				}
			}
		})
	}
}
