package grafana_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/examples/internal/jobmetrics"
	"github.com/opskit/opskit/examples/internal/telemetry"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agentmetrics"
	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/observe"
	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/workflow/workflowmetrics"
)

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	ID            *int    `json:"id"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registered returns the names of every metric family the code registers:
// the descriptors of each package's collectors on a registry of its own.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	reg := telemetry.NewRegistry() // go_*, process_*
	_, err := freshdesk.NewMetrics(reg)
	require.NoError(t, err)
	_, err = gitlabx.NewMetrics(reg)
	require.NoError(t, err)
	_, err = observe.NewClientMetrics(reg, "gitlab")
	require.NoError(t, err)
	_, err = release.NewMetrics(reg)
	require.NoError(t, err)
	a, err := agent.New(agent.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(t.Context()) })
	reg.MustRegister(agentmetrics.New(a))
	reg.MustRegister(workflowmetrics.New(workflowmetrics.Config{}))
	gatherers := prometheus.Gatherers{reg,
		jobmetrics.FleetRun(nil, 0, time.Now()),
		jobmetrics.RaceReport(jobmetrics.RaceRun{Filed: gitlabx.RunResult{}}, nil, time.Now())}
	names := map[string]bool{}
	ch := make(chan *prometheus.Desc, 1000)
	reg.Describe(ch)
	close(ch)
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		require.NotNil(t, m, "descriptor %s", d)
		names[m[1]] = true
	}
	fams, err := gatherers.Gather()
	require.NoError(t, err)
	for _, mf := range fams {
		names[mf.GetName()] = true
	}
	return names
}

var (
	strLit    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers  = regexp.MustCompile(`\{[^}]*\}`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	grouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident     = regexp.MustCompile(`[A-Za-z_:][\w:]*`)
	operators = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true}
)

// metricNames returns the metric names a PromQL expression selects.
func metricNames(expr string) []string {
	s := strLit.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range ident.FindAllStringIndex(s, -1) {
		name := s[m[0]:m[1]]
		if m[0] > 0 && strings.ContainsAny(s[m[0]-1:m[0]], "0123456789.$_") {
			continue // inside a number (1e9) or a variable ($__rate_interval)
		}
		if strings.HasPrefix(strings.TrimLeft(s[m[1]:], " "), "(") || operators[name] {
			continue // a function or an aggregation, or an operator
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	assert.Equal(t, []string{"opskit_a_total", "opskit_b_total"},
		metricNames(`sum by (client) (rate(opskit_a_total{code=~"5..|error"}[$__rate_interval])) / sum without (x) (rate(opskit_b_total[5m]))`))
	assert.Equal(t, []string{"node_load1"}, metricNames(`node_load1 > 1e9 and on(instance) vector(1)`))
	assert.Equal(t, []string{"opskit_x_bucket"}, metricNames(`histogram_quantile(0.95, sum by (le) (rate(opskit_x_bucket[5m])))`))
}

// TestDashboard parses opskit.json as Grafana imports it and checks that
// every query names only metrics the code registers, and that every
// opskit_* metric has a panel.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("opskit.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	assert.NotEmpty(t, d.UID)
	assert.NotEmpty(t, d.Title)
	assert.Nil(t, d.ID, "no database id: import creates one")
	assert.GreaterOrEqual(t, d.SchemaVersion, 36)
	require.Len(t, d.Templating.List, 1)
	assert.Equal(t, "datasource", d.Templating.List[0].Type)
	assert.Equal(t, "prometheus", d.Templating.List[0].Query)
	for _, placeholder := range []string{"TODO", "TBD", "XXX", "${DS_"} {
		assert.NotContains(t, string(raw), placeholder)
	}

	known := registered(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	type rect struct{ x, y, w, h int }
	var rects []rect
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q fits the 24-column grid: %+v", p.Title, g)
		for _, r := range rects {
			overlap := g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H
			assert.False(t, overlap, "panel %q overlaps another at %+v", p.Title, g)
		}
		rects = append(rects, rect{g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		assert.NotEmpty(t, p.Description, "panel %q says what it shows", p.Title)
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q uses the datasource variable", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.RefID)
			names := metricNames(tg.Expr)
			assert.NotEmpty(t, names, "panel %q: %s selects no metric", p.Title, tg.Expr)
			for _, n := range names {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && known[b] {
						base = b
					}
				}
				assert.True(t, known[base], "panel %q: %s is not a metric the code registers", p.Title, n)
				used[base] = true
			}
		}
	}
	var missing []string
	for n := range known {
		if strings.HasPrefix(n, "opskit_") && !used[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	assert.Empty(t, missing, "opskit metrics without a panel")
}

// alertExprs returns the expr of each rule in a Prometheus rules file: a
// one-line "expr: ..." or a block "expr: |" and its more indented lines.
func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(string(raw), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "expr:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest != "|" {
			out = append(out, rest)
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		var block []string
		for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent {
			i++
			block = append(block, strings.TrimSpace(lines[i]))
		}
		out = append(out, strings.Join(block, " "))
	}
	return out
}

// TestAlerts: every alerting rule names only metrics the code registers.
func TestAlerts(t *testing.T) {
	known := registered(t)
	exprs := alertExprs(t, "alerts.yml")
	require.Len(t, exprs, 17)
	for _, e := range exprs {
		names := metricNames(e)
		assert.NotEmpty(t, names, "%s selects no metric", e)
		for _, n := range names {
			assert.True(t, known[n], "%s: %s is not a metric the code registers", e, n)
		}
	}
}
