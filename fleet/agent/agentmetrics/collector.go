package agentmetrics

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/opskit/opskit/fleet/agent"
)

// metricsCollector is the agent's prometheus.Collector: the host figures of
// the Sampler's latest collection under node_exporter's names, and the
// installed programs' figures under opskit_agent_*.
type metricsCollector struct {
	a *agent.Agent

	cpu, memTotal, memFree, memAvail, memBuffers, memCached, memSRecl, swapTotal, swapFree *prometheus.Desc
	fsSize, fsAvail, fsFree, fsFiles, fsFilesFree, load1, load5, load15, bootTime          *prometheus.Desc
	collected, collectErrors                                                               *prometheus.Desc

	up, restarts, progCPU, progRSS, progStart, info *prometheus.Desc
}

// New returns a prometheus.Collector of a's metrics, for a registry the
// caller owns (never Prometheus' global one). Nothing is
// collected on a scrape but the programs' /proc figures: the host metrics
// come from the Sampler's latest collection, so a scrape is cheap and never
// waits for a slow disk. Before the first collection only the program
// metrics are reported.
//
// Host metrics use node_exporter's names and labels, so its dashboards and
// alerts work on them:
//
//	node_cpu_seconds_total{cpu,mode}       per CPU; mode user, nice, system, idle, iowait, irq, softirq, steal
//	node_memory_{MemTotal,MemFree,MemAvailable,Buffers,Cached,SReclaimable,SwapTotal,SwapFree}_bytes
//	node_filesystem_{size,avail,free}_bytes, node_filesystem_files{,_free}{device,fstype,mountpoint}
//	node_load1, node_load5, node_load15, node_boot_time_seconds
//
// Program metrics (label package; the figures of the program's main
// process, not its children):
//
//	opskit_agent_program_up                      1 while the program runs
//	opskit_agent_program_restarts_total          restarts by the supervisor since it was last started
//	opskit_agent_program_cpu_seconds_total       user and system CPU time of the current run
//	opskit_agent_program_resident_memory_bytes   resident set size
//	opskit_agent_program_start_time_seconds      when the current run started (Unix time)
//	opskit_agent_program_info{release,binary}    1, naming the installed release
//
// and opskit_agent_stats_collected_timestamp_seconds and
// opskit_agent_stats_errors (parts of the last collection that failed).
func New(a *agent.Agent) prometheus.Collector {
	node := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	fsl := []string{"device", "fstype", "mountpoint"}
	pl := []string{"package"}
	return &metricsCollector{
		a:             a,
		cpu:           node("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "cpu", "mode"),
		memTotal:      node("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes."),
		memFree:       node("node_memory_MemFree_bytes", "Memory information field MemFree_bytes."),
		memAvail:      node("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes."),
		memBuffers:    node("node_memory_Buffers_bytes", "Memory information field Buffers_bytes."),
		memCached:     node("node_memory_Cached_bytes", "Memory information field Cached_bytes."),
		memSRecl:      node("node_memory_SReclaimable_bytes", "Memory information field SReclaimable_bytes."),
		swapTotal:     node("node_memory_SwapTotal_bytes", "Memory information field SwapTotal_bytes."),
		swapFree:      node("node_memory_SwapFree_bytes", "Memory information field SwapFree_bytes."),
		fsSize:        node("node_filesystem_size_bytes", "Filesystem size in bytes.", fsl...),
		fsAvail:       node("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", fsl...),
		fsFree:        node("node_filesystem_free_bytes", "Filesystem free space in bytes.", fsl...),
		fsFiles:       node("node_filesystem_files", "Filesystem total file nodes.", fsl...),
		fsFilesFree:   node("node_filesystem_files_free", "Filesystem total free file nodes.", fsl...),
		load1:         node("node_load1", "1m load average."),
		load5:         node("node_load5", "5m load average."),
		load15:        node("node_load15", "15m load average."),
		bootTime:      node("node_boot_time_seconds", "Node boot time, in unixtime."),
		collected:     node("opskit_agent_stats_collected_timestamp_seconds", "When the agent's latest host stats collection finished (Unix time); the node_* metrics are from it."),
		collectErrors: node("opskit_agent_stats_errors", "Parts of the latest host stats collection that failed (their node_* metrics are missing)."),
		up:            node("opskit_agent_program_up", "1 while the installed program runs under the agent, 0 when it is stopped or waiting to restart.", pl...),
		restarts:      node("opskit_agent_program_restarts_total", "Times the agent restarted the program after it exited, since it was last started or installed.", pl...),
		progCPU:       node("opskit_agent_program_cpu_seconds_total", "User and system CPU time of the program's current run (its main process).", pl...),
		progRSS:       node("opskit_agent_program_resident_memory_bytes", "Resident memory of the program's main process.", pl...),
		progStart:     node("opskit_agent_program_start_time_seconds", "When the program's current run started (Unix time).", pl...),
		info:          node("opskit_agent_program_info", "Always 1; names the installed release and binary of each package.", "package", "release", "binary"),
	}
}

// Describe sends every descriptor.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.cpu, c.memTotal, c.memFree, c.memAvail, c.memBuffers, c.memCached, c.memSRecl, c.swapTotal, c.swapFree,
		c.fsSize, c.fsAvail, c.fsFree, c.fsFiles, c.fsFilesFree, c.load1, c.load5, c.load15, c.bootTime,
		c.collected, c.collectErrors, c.up, c.restarts, c.progCPU, c.progRSS, c.progStart, c.info,
	} {
		ch <- d
	}
}

// Collect sends the latest host stats and the programs' current figures.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if st := c.a.Sampler().Stats(); st != nil {
		gauge(c.collected, float64(st.CollectedAt.UnixNano())/1e9)
		gauge(c.collectErrors, float64(len(st.Errors)))
		for _, t := range st.CPU.PerCPU {
			cpu := strings.TrimPrefix(t.CPU, "cpu")
			for _, m := range []struct {
				mode string
				v    float64
			}{
				{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle},
				{"iowait", t.Iowait}, {"irq", t.Irq}, {"softirq", t.Softirq}, {"steal", t.Steal},
			} {
				counter(c.cpu, m.v, cpu, m.mode)
			}
		}
		if m := st.Memory; m != nil {
			gauge(c.memTotal, float64(m.Total))
			gauge(c.memFree, float64(m.Free))
			gauge(c.memAvail, float64(m.Available))
			gauge(c.memBuffers, float64(m.Buffers))
			// gopsutil adds SReclaimable to Cached (as free(1) does);
			// node_exporter reports /proc/meminfo's Cached as it is.
			gauge(c.memCached, float64(m.Cached-min(m.Sreclaimable, m.Cached)))
			gauge(c.memSRecl, float64(m.Sreclaimable))
			gauge(c.swapTotal, float64(m.SwapTotal))
			gauge(c.swapFree, float64(m.SwapFree))
		}
		for _, d := range st.Disks {
			l := []string{st.DiskDevices[d.Path], d.Fstype, d.Path}
			gauge(c.fsSize, float64(d.Total), l...)
			gauge(c.fsAvail, float64(d.Free), l...)
			gauge(c.fsFree, float64(d.Total-d.Used), l...)
			gauge(c.fsFiles, float64(d.InodesTotal), l...)
			gauge(c.fsFilesFree, float64(d.InodesFree), l...)
		}
		if l := st.Load; l != nil {
			gauge(c.load1, l.Load1)
			gauge(c.load5, l.Load5)
			gauge(c.load15, l.Load15)
		}
		if st.Host != nil && st.Host.BootTime > 0 {
			gauge(c.bootTime, float64(st.Host.BootTime))
		}
	}
	for _, p := range c.a.Packages() {
		gauge(c.info, 1, p.Name, p.Release, p.Binary)
		up := 0.0
		if p.Running {
			up = 1
		}
		gauge(c.up, up, p.Name)
		counter(c.restarts, float64(p.Restarts), p.Name)
		if !p.Running || p.Pid <= 0 {
			continue
		}
		gauge(c.progStart, float64(p.StartedAt.UnixNano())/1e9, p.Name)
		proc, err := process.NewProcessWithContext(context.Background(), int32(p.Pid))
		if err != nil {
			continue // it exited since Packages
		}
		if t, err := proc.Times(); err == nil {
			counter(c.progCPU, t.User+t.System, p.Name)
		}
		if m, err := proc.MemoryInfo(); err == nil {
			gauge(c.progRSS, float64(m.RSS), p.Name)
		}
	}
}
