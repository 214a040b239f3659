package promtest_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opskit/opskit/internal/promtest"
)

func TestFindAndValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"code", "method"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "d_seconds", Help: "d"})
	reg.MustRegister(c, h)
	c.WithLabelValues("200", "GET").Add(2)
	c.WithLabelValues("404", "GET").Inc()
	h.Observe(1)
	h.Observe(2)
	for _, tc := range []struct {
		name string
		want map[string]string
		v    float64
		ok   bool
	}{
		{"x_total", promtest.Labels("code", "404"), 1, true},
		{"x_total", promtest.Labels("code", "200", "method", "GET"), 2, true},
		{"x_total", promtest.Labels("code", "500"), 0, false},
		{"d_seconds", nil, 2, true},
		{"nope", nil, 0, false},
	} {
		v, ok := promtest.Lookup(t, reg, tc.name, tc.want)
		if v != tc.v || ok != tc.ok {
			t.Errorf("Lookup(%s, %v) = %v, %v; want %v, %v", tc.name, tc.want, v, ok, tc.v, tc.ok)
		}
	}
	if v := promtest.Value(t, reg, "x_total", promtest.Labels("code", "200")); v != 2 {
		t.Errorf("Value = %v; want 2", v)
	}
}

func TestReadTextfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "job.prom")
	text := "# HELP job_hosts Hosts by result.\n# TYPE job_hosts gauge\njob_hosts{result=\"ok\"} 3\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	fams := promtest.ReadTextfile(t, p)
	if v, ok := promtest.Find(fams, "job_hosts", promtest.Labels("result", "ok")); !ok || v != 3 {
		t.Errorf("Find = %v, %v; want 3, true", v, ok)
	}
	if got := promtest.Parse(t, strings.NewReader(text)); len(got) != 1 {
		t.Errorf("Parse gave %d families; want 1", len(got))
	}
}

func TestScrapeAndSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "up_now", Help: "u"})
	reg.MustRegister(g)
	g.Set(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	fams := promtest.Scrape(t, srv.URL)
	if v := promtest.Sample(fams, "up_now"); v != 7 {
		t.Errorf("Sample(up_now) = %v; want 7", v)
	}
	if v := promtest.Sample(fams, "absent"); v != -1 {
		t.Errorf("Sample(absent) = %v; want -1", v)
	}
}
