package workflowmetrics

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opskit/opskit/observe"
	"github.com/opskit/opskit/workflow"
)

// Config configures Metrics. The zero value is usable.
type Config struct {
	// MaxFailures is the Runner's MaxFailures, for the budget metrics.
	MaxFailures int
	// Targets is how many targets the rollout has, so that targets not
	// started yet show as pending; 0 reports no pending count.
	Targets int
	// Labels are constant labels added to every metric (e.g. the
	// rollout's name), so several rollouts can share a registry.
	Labels prometheus.Labels
}

// Metrics is a prometheus.Collector fed by a Runner's events. It is safe for
// concurrent use. Build it with New.
type Metrics struct {
	cfg Config

	targets, phase, budget, budgetMax, budgetRatio, failures, rollbacks, endState *prometheus.Desc
	started, ended, last                                                          *prometheus.Desc

	mu        sync.Mutex
	status    map[string]string // target -> its latest status
	curPhase  workflow.Phase
	inRun     bool
	budgetN   int
	failN     map[workflow.Phase]int
	rbOK      int
	rbErr     int
	end       string
	startedAt time.Time
	endedAt   time.Time
	lastAt    time.Time
}

// The statuses of opskit_workflow_targets.
var statuses = []string{"pending", "running", "succeeded", "failed", "interrupted", "skipped"}

var phases = []workflow.Phase{workflow.PhasePrecondition, workflow.PhaseCanary, workflow.PhaseSoak, workflow.PhaseRollout, workflow.PhasePostcondition}

// New returns Metrics with nothing observed yet.
func New(cfg Config) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cfg.Labels)
	}
	return &Metrics{
		cfg:         cfg,
		targets:     d("opskit_workflow_targets", "Targets of the rollout by their latest status.", "status"),
		phase:       d("opskit_workflow_phase", "1 for the rollout phase running now, 0 for the others.", "phase"),
		budget:      d("opskit_workflow_budget_failures", "Target failures counted against the failure budget in the current run."),
		budgetMax:   d("opskit_workflow_budget_max_failures", "Target failures the rollout tolerates (Runner.MaxFailures)."),
		budgetRatio: d("opskit_workflow_budget_used_ratio", "Budget failures divided by MaxFailures+1: 1 means the budget tripped."),
		failures:    d("opskit_workflow_target_failures_total", "Target failures by phase, in every run observed.", "phase"),
		rollbacks:   d("opskit_workflow_rollbacks_total", "Rollbacks of failed targets by result (ok, error).", "result"),
		endState:    d("opskit_workflow_end_state", "1 for how the last run ended.", "state"),
		started:     d("opskit_workflow_start_timestamp_seconds", "When the current or last run began (Unix time)."),
		ended:       d("opskit_workflow_end_timestamp_seconds", "When the last run ended (Unix time)."),
		last:        d("opskit_workflow_last_event_timestamp_seconds", "When the rollout last reported progress (Unix time)."),
		status:      map[string]string{},
		failN:       map[workflow.Phase]int{},
	}
}

// Observe records ev. Use it as (or call it from) Runner.OnEvent; it
// returns at once. Event kinds it does not know are ignored.
func (m *Metrics) Observe(ev workflow.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	if !m.inRun && ev.Kind != workflow.EventEnd {
		// The first event of a run: its budget counts afresh.
		m.inRun, m.budgetN, m.startedAt, m.end, m.endedAt = true, 0, t, "", time.Time{}
	}
	m.lastAt = t
	switch ev.Kind {
	case workflow.EventPhase:
		m.curPhase = ev.Phase
	case workflow.EventStart:
		m.status[ev.Target] = "running"
	case workflow.EventDone:
		m.status[ev.Target] = "succeeded"
	case workflow.EventFail:
		m.status[ev.Target] = "failed"
		m.failN[ev.Phase]++
		if ev.Phase == workflow.PhaseRollout {
			m.budgetN++
		}
	case workflow.EventInterrupted:
		m.status[ev.Target] = "interrupted"
	case workflow.EventSkip:
		if _, ok := m.status[ev.Target]; !ok {
			m.status[ev.Target] = "skipped"
		}
	case workflow.EventRollback:
		if ev.Err != nil {
			m.rbErr++
		} else {
			m.rbOK++
		}
	case workflow.EventEnd:
		m.inRun, m.curPhase, m.end, m.endedAt = false, "", ev.State, t
	}
}

// Describe sends every descriptor.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.targets, m.phase, m.budget, m.budgetMax, m.budgetRatio, m.failures, m.rollbacks, m.endState, m.started, m.ended, m.last} {
		ch <- d
	}
}

// Collect sends the current values.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	n := map[string]int{}
	for _, s := range m.status {
		n[s]++
	}
	if m.cfg.Targets > 0 {
		n["pending"] = max(m.cfg.Targets-len(m.status), 0)
	}
	for _, s := range statuses {
		if s == "pending" && m.cfg.Targets <= 0 {
			continue
		}
		gauge(m.targets, float64(n[s]), s)
	}
	for _, p := range phases {
		v := 0.0
		if p == m.curPhase {
			v = 1
		}
		gauge(m.phase, v, string(p))
	}
	gauge(m.budget, float64(m.budgetN))
	gauge(m.budgetMax, float64(m.cfg.MaxFailures))
	gauge(m.budgetRatio, min(float64(m.budgetN)/float64(m.cfg.MaxFailures+1), 1))
	ps := make([]workflow.Phase, 0, len(m.failN))
	for p := range m.failN {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		counter(m.failures, float64(m.failN[p]), string(p))
	}
	counter(m.rollbacks, float64(m.rbOK), "ok")
	counter(m.rollbacks, float64(m.rbErr), "error")
	if m.end != "" {
		gauge(m.endState, 1, m.end)
	}
	if !m.startedAt.IsZero() {
		gauge(m.started, float64(m.startedAt.UnixNano())/1e9)
		gauge(m.last, float64(m.lastAt.UnixNano())/1e9)
	}
	if !m.endedAt.IsZero() {
		gauge(m.ended, float64(m.endedAt.UnixNano())/1e9)
	}
}

// WriteTextfile writes the metrics to path (which must end in ".prom") in
// node_exporter's textfile-collector format, atomically; see
// observe.WriteTextfile for the errors. For batch jobs that end before a
// scrape.
func (m *Metrics) WriteTextfile(path string) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		return err
	}
	return observe.WriteTextfile(path, reg)
}
