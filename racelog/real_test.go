package racelog_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
	dir := racyModule(t, t.TempDir())
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
