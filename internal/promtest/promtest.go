// Package promtest reads metric values out of Prometheus registries, scrapes
// and textfiles in this module's tests, so each package's metric tests do
// not carry their own copy of the lookup.
//
// # Testing
//
// go test ./internal/promtest.
package promtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Labels turns label, value pairs into the map Find takes; an odd last
// argument is ignored.
func Labels(pairs ...string) map[string]string {
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// Find returns the value of the first sample of name in fams whose labels
// include want (nil matches any): a counter's, gauge's or untyped value, or
// a histogram's or summary's sample count. ok is false when there is none.
func Find(fams []*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return sampleValue(m), true
		}
	}
	return 0, false
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	}
	return 0
}

// Sample is Find's value, or -1 when there is no such sample: for
// assertions that print the value either way.
func Sample(fams []*dto.MetricFamily, name string, want ...string) float64 {
	v, ok := Find(fams, name, Labels(want...))
	if !ok {
		return -1
	}
	return v
}

// Scrape GETs a /metrics url and parses the answer, failing t unless it is
// 200 in the text format.
func Scrape(t testing.TB, url string) []*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	return Parse(t, resp.Body)
}

// Gather gathers g, failing t on an error.
func Gather(t testing.TB, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return fams
}

// Lookup gathers g and returns Find's result.
func Lookup(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	return Find(Gather(t, g), name, want)
}

// Value gathers g and returns Find's value; it fails t when there is no
// such sample.
func Value(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := Lookup(t, g, name, want)
	if !ok {
		t.Fatalf("no %s%v gathered", name, want)
	}
	return v
}

// Parse parses Prometheus' text exposition format (a /metrics answer or a
// node_exporter textfile), families sorted by name, failing t on an error.
func Parse(t testing.TB, r io.Reader) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	fams := make([]*dto.MetricFamily, 0, len(m))
	for _, mf := range m {
		fams = append(fams, mf)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	return fams
}

// ReadTextfile reads and parses a node_exporter textfile, and fails t when
// promlint finds a problem in it.
func ReadTextfile(t testing.TB, path string) []*dto.MetricFamily {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(b)).Lint()
	if err != nil {
		t.Fatalf("promlint %s: %v", path, err)
	}
	for _, p := range problems {
		t.Errorf("promlint %s: %s: %s", path, p.Metric, p.Text)
	}
	return Parse(t, bytes.NewReader(b))
}
