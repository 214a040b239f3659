package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsFile: -metrics-file leaves the rollout's outcome in
// node_exporter's textfile format.
func TestMetricsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollout.prom")
	var out, errb bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-demo", "-demo-corrupt", "4", "-metrics-file", path}, &out, &errb), errb.String())
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err)
	got := map[string]float64{}
	for _, m := range fams["opskit_workflow_targets"].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	assert.Equal(t, map[string]float64{"pending": 0, "running": 0, "succeeded": 7, "failed": 1, "interrupted": 0, "skipped": 0}, got)
	assert.Equal(t, 1.0, fams["opskit_workflow_budget_failures"].GetMetric()[0].GetGauge().GetValue())
	require.Len(t, fams["opskit_workflow_end_state"].GetMetric(), 1)
	assert.Equal(t, "ESSuccess", fams["opskit_workflow_end_state"].GetMetric()[0].GetLabel()[0].GetValue())

	err = run(t.Context(), []string{"-demo", "-metrics-file", filepath.Join(t.TempDir(), "rollout.txt")}, &out, &errb)
	assert.ErrorContains(t, err, "*.prom", "a file the textfile collector would not read")
}
