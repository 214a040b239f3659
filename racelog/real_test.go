package racelog_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/testenv"
	"github.com/opskit/opskit/racelog"
)

// racyModule copies testdata/racy (files end in .txt so that the go tool
// leaves them alone here) into dir and returns dir.
func racyModule(t testing.TB, dir string) string {
	t.Helper()
	err := filepath.WalkDir("testdata/racy", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata/racy", p)
		dst := filepath.Join(dir, strings.TrimSuffix(rel, ".txt"))
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	require.NoError(t, err)
	return dir
}

// goCmd runs the go tool in dir with a clean module environment.
func goCmd(t testing.TB, dir string, args ...string) *exec.Cmd {
	t.Helper()
	gobin := testenv.Tool(t, "go")
	testenv.Tool(t, "gcc") // -race needs cgo
	cmd := exec.CommandContext(t.Context(), gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=1", "GOTOOLCHAIN=local")
	return cmd
}

// buildRacy builds the racy program with -race (plus extra build flags)
// into a fresh temporary directory and returns the binary.
func buildRacy(t testing.TB, extra ...string) string {
	t.Helper()
	return buildRacyIn(t, racyModule(t, t.TempDir()), extra...)
}

// buildRacyShifted builds the racy program after an edit above the racing
// code: every line of its sources moves down by three.
func buildRacyShifted(t testing.TB) string {
	t.Helper()
	dir := racyModule(t, t.TempDir())
	for _, f := range []string{"main.go", "cache/cache.go"} {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, append([]byte("// An edit\n// above the\n// racing code.\n"), b...), 0o644))
	}
	return buildRacyIn(t, dir)
}

func buildRacyIn(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "racy")
	args := append([]string{"build", "-race", "-o", bin}, extra...)
	args = append(args, ".")
	out, err := goCmd(t, dir, args...).CombinedOutput()
	require.NoError(t, err, "go build -race: %s", out)
	return bin
}

// runRacy runs a racy binary and returns what it printed (stdout and
// stderr, as a log collector would see them).
func runRacy(t testing.TB, bin, mode string, env ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, mode)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "racy %s should exit non-zero (66) after a race; output:\n%s", mode, out)
	require.Equal(t, 66, ee.ExitCode(), "racy %s exit code; output:\n%s", mode, out)
	return out
}

func parse(t testing.TB, b []byte) []racelog.Report {
	t.Helper()
	reps, err := racelog.Parse(t.Context(), bytes.NewReader(b))
	require.NoError(t, err)
	return reps
}

func TestRealRaces(t *testing.T) {
	bin := buildRacy(t)
	const mod = "example.com/racy/cache"
	tests := []struct {
		mode      string
		titles    []string
		functions []string
		kinds     [][]string
	}{
		{
			mode:      "write-first",
			titles:    []string{"Race condition in " + mod + ".(*Cache).Get()"},
			functions: []string{mod + ".(*Cache).Get()"},
			kinds:     [][]string{{"Read", "Previous write"}},
		},
		{
			mode:      "read-first",
			titles:    []string{"Race condition in " + mod + ".(*Cache).Inc()"},
			functions: []string{mod + ".(*Cache).Inc()"},
			kinds:     [][]string{{"Write", "Previous read"}},
		},
		{
			mode:      "map",
			titles:    []string{"Race condition in " + mod + ".(*Cache).Set()"},
			functions: []string{"runtime.mapassign_faststr()"},
			kinds:     [][]string{{"Write", "Previous write"}},
		},
		{
			mode:      "two",
			titles:    []string{"Race condition in " + mod + ".(*Cache).Get()", "Race condition in " + mod + ".(*Cache).Set()"},
			functions: []string{mod + ".(*Cache).Get()", "runtime.mapassign_faststr()"},
			kinds:     [][]string{{"Read", "Previous write"}, {"Write", "Previous write"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			out := runRacy(t, bin, tt.mode)
			reps := parse(t, out)
			require.Len(t, reps, len(tt.titles), "reports in:\n%s", out)
			for i, r := range reps {
				assert.Equal(t, tt.titles[i], r.Title, "Title of report %d", i)
				assert.Equal(t, tt.functions[i], r.Function, "Function of report %d", i)
				var kinds []string
				for _, a := range r.Accesses {
					kinds = append(kinds, a.Kind)
					assert.NotEmpty(t, a.Frames, "frames of %s", a.Kind)
					assert.True(t, strings.HasPrefix(a.Addr, "0x"), "address %q", a.Addr)
					assert.NotEmpty(t, a.Goroutine)
				}
				assert.Equal(t, tt.kinds[i], kinds, "access kinds of report %d", i)
				assert.NotEmpty(t, r.Goroutines, "created-at sections of report %d", i)
				assert.False(t, r.Truncated, "report %d truncated", i)
				assert.True(t, strings.HasPrefix(r.Text, "==================\nWARNING: DATA RACE\n"), "text starts with the markers:\n%s", r.Text)
				assert.True(t, strings.HasSuffix(r.Text, "==================\n"), "text ends with the marker:\n%s", r.Text)
				assert.Contains(t, string(out), strings.TrimSuffix(r.Text, "\n"), "text is verbatim")
				assert.Len(t, r.Fingerprint, 16)
			}
			if len(reps) == 2 {
				assert.NotEqual(t, reps[0].Fingerprint, reps[1].Fingerprint, "different races, same fingerprint")
			}
		})
	}
}

// TestRealFingerprintStable checks that the same race keeps its
// fingerprint across sides, builds, paths and runs.
func TestRealFingerprintStable(t *testing.T) {
	plain := buildRacy(t)
	trimmed := buildRacy(t, "-trimpath")
	first := parse(t, runRacy(t, plain, "write-first"))
	require.Len(t, first, 1)
	want := first[0].Fingerprint
	other := parse(t, runRacy(t, plain, "map"))
	require.Len(t, other, 1)
	require.NotEqual(t, want, other[0].Fingerprint, "a map race and a field race share a fingerprint")

	tests := []struct {
		name string
		bin  string
		mode string
		env  []string
	}{
		{"same build again", plain, "write-first", nil},
		{"reported from the other side", plain, "read-first", nil},
		{"-trimpath build", trimmed, "write-first", nil},
		{"strip_path_prefix", plain, "read-first", []string{"GORACE=strip_path_prefix=/tmp"}},
		{"lines shifted by an edit above", buildRacyShifted(t), "write-first", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reps := parse(t, runRacy(t, tt.bin, tt.mode, tt.env...))
			require.Len(t, reps, 1)
			assert.Equal(t, want, reps[0].Fingerprint, "fingerprint of %s %s; report:\n%s", tt.name, tt.mode, reps[0].Text)
		})
	}
}

// TestRealGoTestJSON parses what go test -race -json prints for a racy test.
func TestRealGoTestJSON(t *testing.T) {
	dir := racyModule(t, t.TempDir())
	out, err := goCmd(t, dir, "test", "-race", "-json", "-count=1", ".").Output()
	require.Error(t, err, "a racy test must fail")
	reps := parse(t, out)
	require.Len(t, reps, 1, "reports in:\n%s", out)
	r := reps[0]
	assert.Equal(t, "TestRace", r.Test)
	assert.Equal(t, "Race condition in example.com/racy/cache.(*Cache).Get()", r.Title)
	assert.False(t, r.Truncated, "truncated:\n%s", r.Text)
	assert.Len(t, r.Accesses, 2)
	assert.True(t, strings.HasPrefix(r.Text, "==================\nWARNING: DATA RACE\n"), "text:\n%s", r.Text)

	bin := buildRacy(t)
	plain := parse(t, runRacy(t, bin, "write-first"))
	require.Len(t, plain, 1)
	assert.Equal(t, plain[0].Fingerprint, r.Fingerprint, "go test -json and a plain run see the same race")
}

// shapes returns the distinct shapes of reps, sorted.
func shapes(reps []racelog.Report) []string {
	var out []string
	for _, r := range reps {
		if !slices.Contains(out, r.Shape) {
			out = append(out, r.Shape)
		}
	}
	slices.Sort(out)
	return out
}

// TestRealFingerprintIsTheRace checks that the reports of one race, in
// whatever shape the race detector prints them, share one fingerprint (and
// so one issue), while different races keep different ones.
func TestRealFingerprintIsTheRace(t *testing.T) {
	bin := buildRacy(t)

	t.Run("counter++ from 4 goroutines", func(t *testing.T) {
		// Which shapes one run prints depends on the scheduling; run until
		// both Read/Write and Write/Write were printed (each run prints
		// Write/Write about half the time).
		var all []racelog.Report
		for i := 0; i < 60 && len(shapes(all)) < 2; i++ {
			all = append(all, parse(t, runRacy(t, bin, "counter"))...)
		}
		require.Equal(t, []string{"Read/Write", "Write/Write"}, shapes(all), "shapes printed in 60 runs")
		races := racelog.Collect(all, racelog.Sighting{Host: "test1"})
		require.Len(t, races, 1, "races among %d reports of counter++", len(all))
		rc := races[0]
		assert.Equal(t, "Race condition in main.inc()", rc.Title)
		assert.Equal(t, len(all), rc.Occurrences)
		require.Len(t, rc.Variants, 2, "variants: %+v", rc.Variants)
		assert.NotEqual(t, rc.Variants[0].Variant, rc.Variants[1].Variant)
		assert.Equal(t, len(all), rc.Variants[0].Count+rc.Variants[1].Count)
	})

	t.Run("map get/put", func(t *testing.T) {
		reps := parse(t, runRacy(t, bin, "map-get-put"))
		// One report through runtime.mapaccess1_faststr, one through the
		// map header: the same pair of locations, (*Cache).Lookup and
		// (*Cache).Set.
		require.Len(t, reps, 2)
		assert.Equal(t, reps[0].Fingerprint, reps[1].Fingerprint, "one racing pair, two fingerprints")
		assert.NotEqual(t, reps[0].Variant, reps[1].Variant, "the two reports are different variants")
		races := racelog.Collect(reps, racelog.Sighting{})
		require.Len(t, races, 1)
		assert.Equal(t, "Race condition between example.com/racy/cache.(*Cache).Lookup() and example.com/racy/cache.(*Cache).Set()", races[0].Title)
		assert.Equal(t, 2, races[0].Occurrences)

		// Set racing with Set is another pair, and another race.
		set := parse(t, runRacy(t, bin, "map"))
		require.Len(t, set, 1)
		assert.NotEqual(t, reps[0].Fingerprint, set[0].Fingerprint)
	})

	t.Run("two races in one function", func(t *testing.T) {
		reps := parse(t, runRacy(t, bin, "two-in-one"))
		require.Len(t, reps, 2)
		assert.NotEqual(t, reps[0].Fingerprint, reps[1].Fingerprint, "Reset races with Get and with Lookup")
		races := racelog.Collect(reps, racelog.Sighting{})
		require.Len(t, races, 2)
		assert.Equal(t, "Race condition between example.com/racy/cache.(*Cache).Get() and example.com/racy/cache.(*Cache).Reset()", races[0].Title)
		assert.Equal(t, "Race condition between example.com/racy/cache.(*Cache).Lookup() and example.com/racy/cache.(*Cache).Reset()", races[1].Title)
	})
}
