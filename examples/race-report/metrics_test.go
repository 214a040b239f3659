package main

import (
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/promtest"
)

// textfile parses a node_exporter textfile, lints it, and returns each
// gauge's value by name, with the label value after a "/" for
// opskit_race_report_issues ("opskit_race_report_issues/created").
func textfile(t *testing.T, path string) map[string]float64 {
	t.Helper()
	fams := promtest.ReadTextfile(t, path)
	out := map[string]float64{}
	for _, mf := range fams {
		name := mf.GetName()
		require.Equal(t, dto.MetricType_GAUGE, mf.GetType(), name)
		for _, m := range mf.GetMetric() {
			k := name
			for _, l := range m.GetLabel() {
				k += "/" + l.GetValue()
			}
			out[k] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestMetricsFile: -metrics-file records what each run found and did, in
// dry runs, filing runs and failed runs.
func TestMetricsFile(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	t.Setenv("GITLAB_TOKEN", srv.Token())
	prom := filepath.Join(t.TempDir(), "race-report.prom")
	gl := []string{"-gitlab-url", srv.URL(), "-project", "7", "-metrics-file", prom}

	_, _, err := runArgs(t, "", "-dry-run", "-metrics-file", prom, testdata+"plain.log", testdata+"syslog.log")
	require.NoError(t, err)
	m := textfile(t, prom)
	assert.Equal(t, 4.0, m["opskit_race_report_reports"], "two reports in each log")
	assert.Equal(t, 2.0, m["opskit_race_report_races"], "the same two races in both")
	assert.Equal(t, 0.0, m["opskit_race_report_issues/created"], "a dry run files nothing")
	assert.Equal(t, 1.0, m["opskit_race_report_success"])

	before := time.Now()
	_, _, err = runArgs(t, "", append(gl, "-run-id", "d1", testdata+"plain.log", testdata+"syslog.log")...)
	require.NoError(t, err)
	m = textfile(t, prom)
	assert.Equal(t, 2.0, m["opskit_race_report_issues/created"])
	assert.Equal(t, 0.0, m["opskit_race_report_issues/commented"])
	assert.Positive(t, m["opskit_race_report_api_calls"])
	assert.GreaterOrEqual(t, m["opskit_race_report_end_timestamp_seconds"], float64(before.Unix()))

	_, _, err = runArgs(t, "", append(gl, "-run-id", "d1", testdata+"plain.log")...)
	require.NoError(t, err)
	assert.Equal(t, 2.0, textfile(t, prom)["opskit_race_report_issues/unchanged"], "a re-run of the same day")

	_, _, err = runArgs(t, "", append(gl, "-run-id", "d2", testdata+"plain.log")...)
	require.NoError(t, err)
	m = textfile(t, prom)
	assert.Equal(t, 2.0, m["opskit_race_report_issues/commented"], "the next day")
	assert.Equal(t, 0.0, m["opskit_race_report_issues/created"])
	assert.Equal(t, 0.0, m["opskit_race_report_filing_failures"])

	t.Setenv("GITLAB_TOKEN", "")
	_, _, err = runArgs(t, "", append(gl, testdata+"plain.log")...)
	require.Error(t, err)
	assert.Equal(t, 0.0, textfile(t, prom)["opskit_race_report_success"], "a failed run says so")

	_, _, err = runArgs(t, "", "-dry-run", "-metrics-file", "x.txt", testdata+"plain.log")
	assert.ErrorIs(t, err, errUsage, "the textfile collector reads only *.prom")
}
