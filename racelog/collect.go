package racelog

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"
)

// Sighting says where a report was seen: the host and log file it came
// from, its line there, and a time when the caller knows one (for example
// the time of the run, or the log's date).
type Sighting struct {
	Host string    `json:"host,omitempty"`
	File string    `json:"file,omitempty"`
	Line int64     `json:"line,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

// VariantCount is one variant of a race and how many of its reports had it.
type VariantCount struct {
	// Variant is Report.Variant; Shape is Report.Shape ("Read/Write").
	Variant string `json:"variant"`
	Shape   string `json:"shape"`
	Count   int    `json:"count"`
}

// Race is every report of one fingerprint: what a daily job files as one
// issue.
type Race struct {
	Fingerprint string `json:"fingerprint"`
	// Title names the race independently of which access a report printed
	// first: "Race condition in f()" when both accesses are in f, else
	// "Race condition between f() and g()" (sorted).
	Title string `json:"title"`
	// Report is a representative report: the first one that was not
	// truncated, else the first one.
	Report Report `json:"report"`
	// Occurrences counts the reports.
	Occurrences int `json:"occurrences"`
	// FirstSeen and LastSeen are the earliest and the latest sighting: by
	// Sighting.Time when both have one, else in the order added.
	FirstSeen Sighting `json:"first_seen"`
	LastSeen  Sighting `json:"last_seen"`
	// Variants are the variants seen, in the order first seen.
	Variants []VariantCount `json:"variants"`
	// Hosts and Files list the distinct non-empty Sighting hosts and
	// files, in the order first seen.
	Hosts []string `json:"hosts,omitempty"`
	Files []string `json:"files,omitempty"`
}

// VariantIDs returns the Variant of every VariantCount: the fingerprints an
// older racelog gave this race (see Variant), for finding issues filed
// under them.
func (r Race) VariantIDs() []string {
	out := make([]string, len(r.Variants))
	for i, v := range r.Variants {
		out[i] = v.Variant
	}
	return out
}

// Collector groups reports by fingerprint. The zero value is ready to use;
// it is not safe for concurrent use. Memory grows with the number of
// distinct races (one representative report each, at most
// Config.MaxReportBytes of text), not with the number of reports.
type Collector struct {
	races map[string]*Race
	order []string
}

// Add counts one report seen at where (where.Line is taken from r.Line
// when zero).
func (c *Collector) Add(r Report, where Sighting) {
	if where.Line == 0 {
		where.Line = r.Line
	}
	if c.races == nil {
		c.races = map[string]*Race{}
	}
	rc := c.races[r.Fingerprint]
	if rc == nil {
		rc = &Race{Fingerprint: r.Fingerprint, Title: raceTitle(r), Report: r, FirstSeen: where, LastSeen: where}
		c.races[r.Fingerprint] = rc
		c.order = append(c.order, r.Fingerprint)
	} else {
		if rc.Report.Truncated && !r.Truncated {
			rc.Report = r
		}
		if !where.Time.IsZero() && !rc.FirstSeen.Time.IsZero() && where.Time.Before(rc.FirstSeen.Time) {
			rc.FirstSeen = where
		}
		if where.Time.IsZero() || rc.LastSeen.Time.IsZero() || !where.Time.Before(rc.LastSeen.Time) {
			rc.LastSeen = where
		}
	}
	rc.Occurrences++
	if i := slices.IndexFunc(rc.Variants, func(v VariantCount) bool { return v.Variant == r.Variant }); i >= 0 {
		rc.Variants[i].Count++
	} else {
		rc.Variants = append(rc.Variants, VariantCount{Variant: r.Variant, Shape: r.Shape, Count: 1})
	}
	if where.Host != "" && !slices.Contains(rc.Hosts, where.Host) {
		rc.Hosts = append(rc.Hosts, where.Host)
	}
	if where.File != "" && !slices.Contains(rc.Files, where.File) {
		rc.Files = append(rc.Files, where.File)
	}
}

// Scan reads every report in r with a Scanner configured by cfg and adds
// each one seen at where. It returns the Scanner's error: a read error, or
// the context's when ctx is cancelled (the reports found until then are
// added). The caller closes r.
func (c *Collector) Scan(ctx context.Context, r io.Reader, cfg Config, where Sighting) error {
	s := NewScanner(r, cfg)
	for s.Scan(ctx) {
		c.Add(s.Report(), where)
	}
	return s.Err()
}

// Races returns the races added so far, in the order first seen. The
// caller may keep and change them; later Adds do not touch them.
func (c *Collector) Races() []Race {
	out := make([]Race, 0, len(c.order))
	for _, fp := range c.order {
		rc := *c.races[fp]
		rc.Variants = slices.Clone(rc.Variants)
		rc.Hosts = slices.Clone(rc.Hosts)
		rc.Files = slices.Clone(rc.Files)
		out = append(out, rc)
	}
	return out
}

// Collect groups reports seen at where by fingerprint, in the order first
// seen. Use a Collector to combine several logs or hosts.
func Collect(reports []Report, where Sighting) []Race {
	var c Collector
	for _, r := range reports {
		c.Add(r, where)
	}
	return c.Races()
}

// raceTitle names the race by its pair of locations, order-free.
func raceTitle(r Report) string {
	var fns []string
	for _, a := range r.Accesses {
		if fn := appFunction(a); fn != "" && !slices.Contains(fns, fn) {
			fns = append(fns, fn)
		}
	}
	slices.Sort(fns)
	switch len(fns) {
	case 0:
		return r.Title
	case 1:
		return "Race condition in " + fns[0]
	default:
		return "Race condition between " + strings.Join(fns, " and ")
	}
}

// appFunction is the access's first application frame as printed (the
// innermost frame when none is the application's).
func appFunction(a Access) string {
	for _, f := range a.Frames {
		if !IsStd(f.Func) {
			return f.Func
		}
	}
	if len(a.Frames) > 0 {
		return a.Frames[0].Func
	}
	return ""
}
