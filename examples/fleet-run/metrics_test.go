package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/promtest"
)

// gauge is the value of the sample of name whose label has value (any
// sample when label is ""), or -1 when there is none.
func gauge(fams []*dto.MetricFamily, name, label, value string) float64 {
	v, ok := promtest.Find(fams, name, promtest.Labels(label, value))
	if label == "" {
		v, ok = promtest.Find(fams, name, nil)
	}
	if !ok {
		return -1
	}
	return v
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
	fams := promtest.ReadTextfile(t, prom)
	assert.Equal(t, 2.0, gauge(fams, "opskit_fleet_run_hosts", "result", "succeeded"))
	assert.Equal(t, 1.0, gauge(fams, "opskit_fleet_run_hosts", "result", "failed"))
	assert.Equal(t, 0.0, gauge(fams, "opskit_fleet_run_hosts", "result", "not_started"))
	assert.Equal(t, 3.0, gauge(fams, "opskit_fleet_run_host_duration_seconds", "", ""), "every host timed")
	assert.Positive(t, gauge(fams, "opskit_fleet_run_duration_seconds", "", ""))
	end := gauge(fams, "opskit_fleet_run_end_timestamp_seconds", "", "")
	assert.GreaterOrEqual(t, end, float64(before.Unix()))
	assert.LessOrEqual(t, end, float64(time.Now().Unix()+1))

	err = run(t.Context(), []string{"-hosts", "f", "-user", "u", "-metrics-file", "x.txt", "--", "true"}, new(bytes.Buffer), new(bytes.Buffer))
	assert.ErrorIs(t, err, errUsage, "the textfile collector reads only *.prom")
}
