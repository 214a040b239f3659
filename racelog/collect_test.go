package racelog_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/racelog"
)

func TestCollector(t *testing.T) {
	rep := func(fp, variant, shape string, truncated bool, line int64) racelog.Report {
		return racelog.Report{
			Title: "Race condition in a.F()", Fingerprint: fp, Variant: variant, Shape: shape, Truncated: truncated, Line: line,
			Accesses: []racelog.Access{
				{Kind: "Write", Frames: []racelog.Frame{{Func: "a.F()"}}},
				{Kind: "Previous read", Frames: []racelog.Frame{{Func: "runtime.mapaccess1()"}, {Func: "a.G()"}}},
			},
		}
	}
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	var c racelog.Collector
	assert.Empty(t, c.Races(), "a zero Collector has no races")
	c.Add(rep("f1", "v1", "Read/Write", true, 10), racelog.Sighting{Host: "web1", File: "a.log", Time: day(2)})
	c.Add(rep("f2", "v3", "Write/Write", false, 11), racelog.Sighting{Host: "web1", File: "a.log", Time: day(2)})
	c.Add(rep("f1", "v2", "Write/Write", false, 20), racelog.Sighting{Host: "web2", File: "b.log", Time: day(1)})
	c.Add(rep("f1", "v1", "Read/Write", false, 30), racelog.Sighting{Host: "web1", File: "b.log", Time: day(3)})
	races := c.Races()
	require.Len(t, races, 2)
	r := races[0]
	assert.Equal(t, "f1", r.Fingerprint)
	assert.Equal(t, "Race condition between a.F() and a.G()", r.Title, "order-free title naming both locations")
	assert.Equal(t, 3, r.Occurrences)
	assert.Equal(t, int64(20), r.Report.Line, "the representative is the first complete report")
	assert.Equal(t, racelog.Sighting{Host: "web2", File: "b.log", Line: 20, Time: day(1)}, r.FirstSeen, "earliest by time")
	assert.Equal(t, racelog.Sighting{Host: "web1", File: "b.log", Line: 30, Time: day(3)}, r.LastSeen, "latest by time")
	assert.Equal(t, []racelog.VariantCount{{Variant: "v1", Shape: "Read/Write", Count: 2}, {Variant: "v2", Shape: "Write/Write", Count: 1}}, r.Variants)
	assert.Equal(t, []string{"v1", "v2"}, r.VariantIDs())
	assert.Equal(t, []string{"web1", "web2"}, r.Hosts)
	assert.Equal(t, []string{"a.log", "b.log"}, r.Files)
	assert.Equal(t, 1, races[1].Occurrences)

	// The returned races are the caller's.
	races[0].Hosts[0] = "changed"
	races[0].Variants[0].Count = 99
	again := c.Races()
	assert.Equal(t, "web1", again[0].Hosts[0])
	assert.Equal(t, 2, again[0].Variants[0].Count)

	// Without times, first and last follow the order added.
	got := racelog.Collect([]racelog.Report{rep("f", "v", "Read/Write", false, 1), rep("f", "v", "Read/Write", false, 2)}, racelog.Sighting{File: "x.log"})
	require.Len(t, got, 1)
	assert.Equal(t, int64(1), got[0].FirstSeen.Line)
	assert.Equal(t, int64(2), got[0].LastSeen.Line)
	assert.Empty(t, got[0].Hosts)
}
