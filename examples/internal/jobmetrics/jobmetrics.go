// Package jobmetrics holds the metrics of the batch jobs in examples/
// (fleet-run, race-report), which end before Prometheus could scrape them:
// each builds a registry of one run's figures for observe.WriteTextfile,
// which the jobs' -metrics-file flag writes into node_exporter's textfile
// collector directory.
//
//	took := time.Since(start)
//	err := observe.WriteTextfile("/var/lib/node_exporter/textfile/fleet-run.prom", jobmetrics.FleetRun(sum, took, time.Now()))
//
// Every metric is a gauge of the last run (the file is replaced each run),
// and each job writes when it ended, so an alert can ask whether the job
// still runs: time() - opskit_race_report_end_timestamp_seconds > 2 * 86400.
// The textfile collector refuses two files holding the same series: one
// -metrics-file per job and host.
//
// It is internal to examples/: a user's job copies what it needs.
//
// # Testing
//
// Its tests build the registries from real fleet.Summary and
// gitlabx.RunResult values and read them back with testutil.
package jobmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/gitlabx"
)

// FleetRun returns a registry of one fleet-run: the hosts by result, how
// long the run and each host took, and when it ended. A nil sum (the run
// did not start) counts no hosts.
//
//	opskit_fleet_run_hosts{result}              hosts of the run: succeeded, failed, not_started
//	opskit_fleet_run_duration_seconds           how long the whole run took
//	opskit_fleet_run_host_duration_seconds      histogram of the hosts' times (connect and command)
//	opskit_fleet_run_end_timestamp_seconds      when the run ended (Unix time)
func FleetRun(sum *fleet.Summary, took time.Duration, end time.Time) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	hosts := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "opskit_fleet_run_hosts",
		Help: "Hosts of the last fleet-run by result: succeeded (exit status 0), failed (non-zero, unreachable, refused host key, timed out), not_started (the run was stopped first).",
	}, []string{"result"})
	duration := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "opskit_fleet_run_duration_seconds",
		Help: "How long the last fleet-run took, from the first connection until the last host finished.",
	})
	hostDuration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "opskit_fleet_run_host_duration_seconds",
		Help:    "Time each host of the last fleet-run took, connecting included; hosts not started are left out.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
	})
	endTS := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "opskit_fleet_run_end_timestamp_seconds",
		Help: "When the last fleet-run ended (Unix time).",
	})
	reg.MustRegister(hosts, duration, hostDuration, endTS)
	var ok, failed, notStarted int
	if sum != nil {
		ok, failed, notStarted = len(sum.Succeeded), len(sum.Failed), len(sum.NotStarted)
		skipped := map[string]bool{}
		for _, h := range sum.NotStarted {
			skipped[h] = true
		}
		for _, r := range sum.Results {
			if !skipped[r.Host] {
				hostDuration.Observe(r.Duration.Seconds())
			}
		}
	}
	hosts.WithLabelValues("succeeded").Set(float64(ok))
	hosts.WithLabelValues("failed").Set(float64(failed))
	hosts.WithLabelValues("not_started").Set(float64(notStarted))
	duration.Set(took.Seconds())
	endTS.Set(float64(end.UnixNano()) / 1e9)
	return reg
}

// RaceRun is what one race-report run did.
type RaceRun struct {
	// Reports counts the race reports found in the logs.
	Reports int
	// Races counts the distinct races among them (by fingerprint).
	Races int
	// Filed is what filing did; zero with -dry-run.
	Filed gitlabx.RunResult
}

// The actions of opskit_race_report_issues, gitlabx.ReportAction values.
var raceActions = []gitlabx.ReportAction{gitlabx.ReportCreated, gitlabx.ReportCommented, gitlabx.ReportReopened, gitlabx.ReportUnchanged, gitlabx.ReportClosed}

// RaceReport returns a registry of one race-report run; runErr is the
// error the run ended with (nil for success).
//
//	opskit_race_report_reports                 race reports found in the logs
//	opskit_race_report_races                   distinct races among them
//	opskit_race_report_issues{action}          issues acted on: created, commented, reopened, unchanged, closed
//	opskit_race_report_filing_failures         races that could not be filed
//	opskit_race_report_api_calls               GitLab API requests made, retries included
//	opskit_race_report_success                 1 when the run ended without error, else 0
//	opskit_race_report_end_timestamp_seconds   when the run ended (Unix time)
func RaceReport(r RaceRun, runErr error, end time.Time) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	g := func(name, help string) prometheus.Gauge {
		m := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(m)
		return m
	}
	g("opskit_race_report_reports", "Go race-detector reports found in the logs by the last race-report run.").Set(float64(r.Reports))
	g("opskit_race_report_races", "Distinct races (by fingerprint) among the reports of the last race-report run.").Set(float64(r.Races))
	issues := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "opskit_race_report_issues",
		Help: "GitLab issues the last race-report run acted on, by action: created (a new race), commented (seen again), reopened (back after its issue was closed), unchanged (already commented by this run ID), closed (not seen for -close-after runs).",
	}, []string{"action"})
	reg.MustRegister(issues)
	n := map[gitlabx.ReportAction]int{}
	failed := 0
	for _, rr := range r.Filed.Reports {
		if rr.Action == "" {
			failed++
			continue
		}
		n[rr.Action]++
	}
	n[gitlabx.ReportClosed] += len(r.Filed.Closed)
	for _, a := range raceActions {
		issues.WithLabelValues(string(a)).Set(float64(n[a]))
	}
	g("opskit_race_report_filing_failures", "Races the last race-report run could not file (its error names them).").Set(float64(failed))
	g("opskit_race_report_api_calls", "GitLab API requests the last race-report run made, retries included.").Set(float64(r.Filed.APICalls))
	ok := 0.0
	if runErr == nil {
		ok = 1
	}
	g("opskit_race_report_success", "1 when the last race-report run ended without error, else 0.").Set(ok)
	g("opskit_race_report_end_timestamp_seconds", "When the last race-report run ended (Unix time).").Set(float64(end.UnixNano()) / 1e9)
	return reg
}
