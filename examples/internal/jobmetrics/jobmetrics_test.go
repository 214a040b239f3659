package jobmetrics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/examples/internal/jobmetrics"
	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/gitlabx"
)

func TestFleetRun(t *testing.T) {
	sum := &fleet.Summary{
		Results:    []fleet.Result{{Host: "a", Duration: time.Second}, {Host: "b", Duration: 3 * time.Second}, {Host: "c", ExitCode: -1}},
		Succeeded:  []string{"a"},
		Failed:     []string{"b"},
		NotStarted: []string{"c"},
	}
	reg := jobmetrics.FleetRun(sum, 4*time.Second, time.Unix(1700000000, 0))
	n, err := testutil.GatherAndCount(reg, "opskit_fleet_run_hosts")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "one series per result")
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range fams {
		if mf.GetName() == "opskit_fleet_run_host_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			assert.Equal(t, uint64(2), h.GetSampleCount(), "the host not started is not timed")
			assert.Equal(t, 4.0, h.GetSampleSum())
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
	_, err = jobmetrics.FleetRun(nil, 0, time.Now()).Gather()
	assert.NoError(t, err, "a run that did not start")
}

func TestRaceReport(t *testing.T) {
	run := jobmetrics.RaceRun{Reports: 5, Races: 3, Filed: gitlabx.RunResult{
		Reports: []gitlabx.ReportResult{{Action: gitlabx.ReportCreated}, {Action: gitlabx.ReportReopened}, {}},
		Closed:  []gitlabx.ReportResult{{Action: gitlabx.ReportClosed}},
	}}
	reg := jobmetrics.RaceReport(run, errors.New("gitlabx: 500"), time.Unix(1700000000, 0))
	got := map[string]float64{}
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += "/" + l.GetValue()
			}
			got[k] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, map[string]float64{
		"opskit_race_report_reports": 5, "opskit_race_report_races": 3,
		"opskit_race_report_issues/created": 1, "opskit_race_report_issues/commented": 0, "opskit_race_report_issues/reopened": 1,
		"opskit_race_report_issues/unchanged": 0, "opskit_race_report_issues/closed": 1,
		"opskit_race_report_filing_failures": 1, "opskit_race_report_api_calls": 0,
		"opskit_race_report_success": 0, "opskit_race_report_end_timestamp_seconds": 1700000000,
	}, got)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}
