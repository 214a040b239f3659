package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
)

// Stats is one collection of the machine's health. The gopsutil types are
// used as they are, so their JSON field names are gopsutil's.
type Stats struct {
	// CollectedAt is when the collection finished.
	CollectedAt time.Time `json:"collected_at"`
	// CPU holds the total and per-CPU times and busy percentages.
	CPU CPUStats `json:"cpu"`
	// Memory and Swap are the virtual-memory and swap figures.
	Memory *mem.VirtualMemoryStat `json:"memory,omitempty"`
	Swap   *mem.SwapMemoryStat    `json:"swap,omitempty"`
	// Disks holds the usage of each mounted file system, one per mount point.
	Disks []*disk.UsageStat `json:"disks"`
	// DiskDevices maps each mount point in Disks to its device
	// ("/dev/sda1"), when known.
	DiskDevices map[string]string `json:"disk_devices,omitempty"`
	// Load holds the 1, 5 and 15 minute load averages.
	Load *load.AvgStat `json:"load,omitempty"`
	// Host describes the machine (hostname, OS, kernel, boot time).
	Host *host.InfoStat `json:"host,omitempty"`
	// Uptime is the machine's uptime in seconds.
	Uptime uint64 `json:"uptime"`
	// Errors lists the parts that could not be collected this time; the
	// other parts are still valid.
	Errors []string `json:"errors,omitempty"`
}

// CPUStats holds the CPU times (seconds since boot, from /proc/stat) and
// the busy percentage since the previous collection (since boot for the
// first one).
type CPUStats struct {
	Total  CPUTimes   `json:"total"`
	PerCPU []CPUTimes `json:"per_cpu"`
}

// CPUTimes is one CPU's (or the total's) times and percentages.
type CPUTimes struct {
	cpu.TimesStat
	// Percent is the share of time not idle (idle and iowait count as
	// idle), 0 to 100.
	Percent float64 `json:"percent"`
	// Percents is the share of each kind of time, 0 to 100.
	Percents CPUPercents `json:"percents"`
}

// CPUPercents is the share of each kind of CPU time over an interval.
type CPUPercents struct {
	User    float64 `json:"user"`
	System  float64 `json:"system"`
	Idle    float64 `json:"idle"`
	Nice    float64 `json:"nice"`
	Iowait  float64 `json:"iowait"`
	Irq     float64 `json:"irq"`
	Softirq float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
}

// CollectFunc collects one Stats. prev is the previous collection (nil for
// the first), for figures that are rates, such as CPU percentages. It must
// return promptly when ctx is done.
type CollectFunc func(ctx context.Context, prev *Stats) (*Stats, error)

// CollectHost is the CollectFunc that reads this machine through gopsutil.
// A part that fails is listed in Stats.Errors; an error comes back only when
// ctx is done.
func CollectHost(ctx context.Context, prev *Stats) (*Stats, error) {
	s := &Stats{}
	fail := func(part string, err error) { s.Errors = append(s.Errors, fmt.Sprintf("%s: %v", part, err)) }

	if total, err := cpu.TimesWithContext(ctx, false); err != nil {
		fail("cpu", err)
	} else if len(total) > 0 {
		var p *cpu.TimesStat
		if prev != nil {
			p = &prev.CPU.Total.TimesStat
		}
		s.CPU.Total = cpuTimes(p, total[0])
	}
	if per, err := cpu.TimesWithContext(ctx, true); err != nil {
		fail("cpu per cpu", err)
	} else {
		s.CPU.PerCPU = make([]CPUTimes, len(per))
		for i, t := range per {
			var p *cpu.TimesStat
			if prev != nil && i < len(prev.CPU.PerCPU) && prev.CPU.PerCPU[i].CPU == t.CPU {
				p = &prev.CPU.PerCPU[i].TimesStat
			}
			s.CPU.PerCPU[i] = cpuTimes(p, t)
		}
	}
	var err error
	if s.Memory, err = mem.VirtualMemoryWithContext(ctx); err != nil {
		fail("memory", err)
	}
	if s.Swap, err = mem.SwapMemoryWithContext(ctx); err != nil {
		fail("swap", err)
	}
	if parts, err := disk.PartitionsWithContext(ctx, false); err != nil {
		fail("disk", err)
	} else {
		seen := map[string]bool{}
		for _, p := range parts {
			if seen[p.Mountpoint] || ctx.Err() != nil {
				continue
			}
			seen[p.Mountpoint] = true
			u, err := disk.UsageWithContext(ctx, p.Mountpoint)
			if err != nil {
				fail("disk "+p.Mountpoint, err)
				continue
			}
			s.Disks = append(s.Disks, u)
			if s.DiskDevices == nil {
				s.DiskDevices = map[string]string{}
			}
			s.DiskDevices[p.Mountpoint] = p.Device
		}
	}
	if s.Load, err = load.AvgWithContext(ctx); err != nil {
		fail("load", err)
	}
	if s.Host, err = host.InfoWithContext(ctx); err != nil {
		fail("host", err)
	}
	if s.Uptime, err = host.UptimeWithContext(ctx); err != nil {
		fail("uptime", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.CollectedAt = time.Now()
	return s, nil
}

// cpuTimes is cur with its percentages over the time since prev (since
// boot when prev is nil).
func cpuTimes(prev *cpu.TimesStat, cur cpu.TimesStat) CPUTimes {
	d := cur
	if prev != nil {
		d = cpu.TimesStat{
			User: cur.User - prev.User, System: cur.System - prev.System, Idle: cur.Idle - prev.Idle,
			Nice: cur.Nice - prev.Nice, Iowait: cur.Iowait - prev.Iowait, Irq: cur.Irq - prev.Irq,
			Softirq: cur.Softirq - prev.Softirq, Steal: cur.Steal - prev.Steal,
		}
	}
	total := cpuTotal(d)
	pct := func(v float64) float64 {
		if total <= 0 {
			return 0
		}
		return min(max(100*v/total, 0), 100)
	}
	return CPUTimes{
		TimesStat: cur,
		Percent:   pct(total - d.Idle - d.Iowait),
		Percents: CPUPercents{
			User: pct(d.User), System: pct(d.System), Idle: pct(d.Idle), Nice: pct(d.Nice),
			Iowait: pct(d.Iowait), Irq: pct(d.Irq), Softirq: pct(d.Softirq), Steal: pct(d.Steal),
		},
	}
}

// cpuTotal is the sum of t's times. Guest and GuestNice are already
// counted in User and Nice by the kernel.
func cpuTotal(t cpu.TimesStat) float64 {
	return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
}

// Default sampler settings.
const (
	DefaultInterval       = 10 * time.Second
	DefaultCollectTimeout = 5 * time.Second
)

// ErrNoStats is returned by Sampler.Stats callers (and GET /v1/stats as 503)
// before the first collection has finished.
var ErrNoStats = errors.New("agent: no stats collected yet")

// SamplerConfig configures a Sampler. The zero value collects this host
// every DefaultInterval.
type SamplerConfig struct {
	// Collect collects one Stats; nil means CollectHost.
	Collect CollectFunc
	// Interval is the time between the starts of two collections; 0
	// means DefaultInterval.
	Interval time.Duration
	// Timeout bounds one collection; 0 means DefaultCollectTimeout. A
	// collection that overruns it is abandoned and the previous Stats
	// stay published.
	Timeout time.Duration
	// Logger receives failed collections; nil discards.
	Logger *slog.Logger
}

// Sampler collects Stats on an interval and publishes each one atomically:
// Stats never blocks, even while a collection runs. It is safe for
// concurrent use.
type Sampler struct {
	cfg SamplerConfig
	cur atomic.Pointer[Stats]
	// busy is set while a collection runs, so an abandoned slow one is
	// not joined by another.
	busy atomic.Bool
}

// NewSampler returns a Sampler; call Run to start collecting.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.Collect == nil {
		cfg.Collect = CollectHost
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultCollectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sampler{cfg: cfg}
}

// Stats returns the latest collection, or nil before the first one. The
// returned value is shared: do not modify it.
func (s *Sampler) Stats() *Stats { return s.cur.Load() }

// Collect runs one collection now, bounded by the sampler's Timeout, and
// publishes it. If a collection is already running it returns ErrBusy.
func (s *Sampler) Collect(ctx context.Context) error {
	if !s.busy.CompareAndSwap(false, true) {
		return fmt.Errorf("agent: stats collection: %w", ErrBusy)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	type result struct {
		st  *Stats
		err error
	}
	done := make(chan result, 1)
	prev := s.cur.Load()
	go func() {
		// The collection may ignore ctx (a hung NFS statfs does); it then
		// finishes in the background and only clears busy.
		st, err := s.cfg.Collect(ctx, prev)
		if err == nil && st != nil && ctx.Err() == nil {
			s.cur.Store(st)
		}
		s.busy.Store(false)
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return fmt.Errorf("agent: stats collection: %w", r.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent: stats collection: %w", context.Cause(ctx))
	}
}

// Run collects at once and then every Interval until ctx is done, and
// returns ctx's error. Failed collections are logged and leave the previous
// Stats published.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Collect(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("stats collection failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
