package gitlabtest

import (
	"slices"
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int // sign
	}{
		{"v1.2.0", "v1.10.0", -1},
		{"v1.10.0", "v1.9.9", 1},
		{"v1.0.0", "v1.0.0", 0},
		{"v01.0", "v1.0", 0},
		{"v2", "v10", -1},
		{"tools/v1", "v1", -1},
		{"v1.0", "v1.0.1", -1},
	} {
		got := compareVersions(tc.a, tc.b)
		if sign(got) != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d; want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// FuzzCompareVersions checks that version order is antisymmetric, so
// order_by=version sorts consistently.
func FuzzCompareVersions(f *testing.F) {
	f.Add("v1.2.3", "v1.10.0")
	f.Add("0001", "1")
	f.Add("a9b", "a10b")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := sign(compareVersions(a, b)), sign(compareVersions(b, a)); x != -y {
			t.Fatalf("compareVersions(%q,%q)=%d but reversed=%d", a, b, x, y)
		}
	})
}

func TestClosesIssues(t *testing.T) {
	for _, tc := range []struct {
		desc string
		want []int64
	}{
		{"Closes #1", []int64{1}},
		{"closes #1, #2 and #3", []int64{1, 2, 3}},
		{"Fixes: #4\nResolves issue #5", []int64{4, 5}},
		{"Implemented #6 and fixed #7", []int64{6, 7}},
		{"Related to #8", nil},
		{"see #9; closes#10", nil},
		{"Closing #11 #12", []int64{11, 12}},
	} {
		got := closesIssues(mainProject(), &MergeRequest{Description: tc.desc, TargetBranch: "main"})
		if !slices.Equal(got, tc.want) {
			t.Errorf("closesIssues(%q) = %v; want %v", tc.desc, got, tc.want)
		}
	}
}

// FuzzClosesIssues: any description parses without panicking and yields
// distinct positive IIDs.
func FuzzClosesIssues(f *testing.F) {
	f.Add("Closes #1, #2 and #3")
	f.Add("fixes issues #99999999999999999999")
	f.Fuzz(func(t *testing.T, desc string) {
		got := closesIssues(mainProject(), &MergeRequest{Description: desc, TargetBranch: "main"})
		seen := map[int64]bool{}
		for _, n := range got {
			if seen[n] {
				t.Fatalf("duplicate %d in %v", n, got)
			}
			seen[n] = true
		}
	})
}

func TestMatchSearch(t *testing.T) {
	for _, tc := range []struct {
		name, q string
		want    bool
	}{
		{"v1.2.3", "^v1", true},
		{"tools/v1.2.3", "^v1", false},
		{"v1.2.3", ".3$", true},
		{"v1.2.3", "^v1.2.3$", true},
		{"v1.2.3", "^V1", true},
		{"v1.2.3", "2.3", true},
		{"v1.2.3", "^2", false},
	} {
		if got := matchSearch(tc.name, tc.q); got != tc.want {
			t.Errorf("matchSearch(%q, %q) = %v; want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func mainProject() *project {
	return &project{Project: Project{DefaultBranch: "main"}, branches: map[string]string{}, commits: map[string]*commitObj{}}
}

// FuzzFTSIndex: any text indexes without panicking into lower-case
// alphanumeric words shorter than 50 characters, and any query parses.
func FuzzFTSIndex(f *testing.F) {
	f.Add("<!-- opskit:x=1 --> Login <b>broken</b> <!-- open", `"is broken" cache.Get`)
	f.Add(strings.Repeat("a", 60)+" b", "http://x.y/z")
	f.Fuzz(func(t *testing.T, text, query string) {
		for _, w := range ftsIndex(text) {
			if w == "" || len(w) >= 50 || strings.ToLower(w) != w || strings.ContainsFunc(w, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
			}) {
				t.Fatalf("ftsIndex(%q) gave word %q", text, w)
			}
		}
		parseFTSQuery(query).match([][]string{ftsIndex(text)})
	})
}
