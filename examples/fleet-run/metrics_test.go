package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readTextfile parses a node_exporter textfile and lints it.
func readTextfile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	problems, err := promlint.New(bytes.NewReader(b)).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	require.NoError(t, err)
	return fams
}

func gauge(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetGauge().GetValue()
			}
		}
		if label == "" {
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestRunMetricsFile: -metrics-file writes the run's hosts by result and
// times in node_exporter's textfile format, failed runs included.
func TestRunMetricsFile(t *testing.T) {
	dir, _ := setup(t)
	prom := filepath.Join(t.TempDir(), "fleet-run.prom")
	before := time.Now()
	err := run(t.Context(), []string{"-hosts", filepath.Join(dir, "hosts"), "-user", "ops", "-key", filepath.Join(dir, "id"),
		"-known-hosts", filepath.Join(dir, "known_hosts"), "-metrics-file", prom, "--", "uname", "-a"}, new(bytes.Buffer), new(bytes.Buffer))
	require.ErrorIs(t, err, errFailed, "one host has a changed key")
	fams := readTextfile(t, prom)
	assert.Equal(t, 2.0, gauge(fams, "opskit_fleet_run_hosts", "result", "succeeded"))
	assert.Equal(t, 1.0, gauge(fams, "opskit_fleet_run_hosts", "result", "failed"))
	assert.Equal(t, 0.0, gauge(fams, "opskit_fleet_run_hosts", "result", "not_started"))
	assert.Equal(t, uint64(3), fams["opskit_fleet_run_host_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(), "every host timed")
	assert.Positive(t, gauge(fams, "opskit_fleet_run_duration_seconds", "", ""))
	end := gauge(fams, "opskit_fleet_run_end_timestamp_seconds", "", "")
	assert.GreaterOrEqual(t, end, float64(before.Unix()))
	assert.LessOrEqual(t, end, float64(time.Now().Unix()+1))

	err = run(t.Context(), []string{"-hosts", "f", "-user", "u", "-metrics-file", "x.txt", "--", "true"}, new(bytes.Buffer), new(bytes.Buffer))
	assert.ErrorIs(t, err, errUsage, "the textfile collector reads only *.prom")
}
