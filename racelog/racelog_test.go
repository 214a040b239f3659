package racelog_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/racelog"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

func scanAll(t testing.TB, r io.Reader, cfg racelog.Config) []racelog.Report {
	t.Helper()
	s := racelog.NewScanner(r, cfg)
	var out []racelog.Report
	for s.Scan(t.Context()) {
		out = append(out, s.Report())
	}
	require.NoError(t, s.Err())
	return out
}

// TestGolden parses every testdata/*.log (and .log.gz) and compares the
// result with testdata/<name>.golden. Regenerate with go test ./racelog -update.
func TestGolden(t *testing.T) {
	configs := map[string]racelog.Config{
		"custom.log": {StartMarker: "###### RACE BEGIN", EndMarker: "###### RACE END"},
	}
	files, err := filepath.Glob("testdata/*.log")
	require.NoError(t, err)
	gz, err := filepath.Glob("testdata/*.log.gz")
	require.NoError(t, err)
	files = append(files, gz...)
	require.NotEmpty(t, files)
	for _, in := range files {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(in)
			require.NoError(t, err)
			defer f.Close()
			reps := scanAll(t, f, configs[name])
			got, err := json.MarshalIndent(reps, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			golden := strings.TrimSuffix(in, ".gz") + ".golden"
			if strings.HasSuffix(in, ".gz") {
				golden = strings.TrimSuffix(in, ".gz") + ".gz.golden"
			}
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "missing golden file; run go test ./racelog -update")
			assert.Equal(t, string(want), string(got), "parse of %s differs from %s", in, golden)
		})
	}
}

// TestLogNoise checks that prefixes, interleaved lines, CRLF and
// compression do not change what is found: every variant of the same real
// output gives the same reports as the plain log.
func TestLogNoise(t *testing.T) {
	read := func(name string) []racelog.Report {
		f, err := os.Open(filepath.Join("testdata", name))
		require.NoError(t, err)
		defer f.Close()
		return scanAll(t, f, racelog.Config{})
	}
	plainTwo := read("plain.log")
	require.Len(t, plainTwo, 2)
	readFirst := func() []racelog.Report {
		// crlf.log holds the read-first run verbatim.
		reps := read("crlf.log")
		require.Len(t, reps, 1)
		return reps
	}()
	tests := []struct {
		name   string
		want   []racelog.Report
		prefix string
	}{
		{"plain.log.gz", plainTwo, ""},
		{"unindented.log", plainTwo, ""},
		{"syslog.log", plainTwo, "Nov 22 01:02:03 web1 app[4242]: "},
		{"cri.log", readFirst, "2026-11-22T01:02:03.123455678Z stderr F "},
		{"compose.log", readFirst, "app-1  | "},
		{"docker.log", readFirst, ""},
		{"journald.log", readFirst, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := read(tt.name)
			require.Len(t, got, len(tt.want))
			for i := range got {
				if tt.name != "unindented.log" { // its text is as the shipper left it
					assert.Equal(t, tt.want[i].Text, got[i].Text, "text of report %d", i)
				}
				assert.Equal(t, tt.want[i].Accesses, got[i].Accesses, "accesses of report %d", i)
				assert.Equal(t, tt.want[i].Goroutines, got[i].Goroutines, "goroutines of report %d", i)
				assert.Equal(t, tt.want[i].Fingerprint, got[i].Fingerprint)
				assert.Equal(t, tt.want[i].Title, got[i].Title)
				assert.False(t, got[i].Truncated)
			}
			if tt.prefix != "" {
				assert.Equal(t, tt.prefix, got[0].Prefix, "learned prefix")
			}
		})
	}
	assert.Equal(t, plainTwo[0].Fingerprint, readFirst[0].Fingerprint, "write-first and read-first reports of one race")
}

// TestBadInput has one case per kind of damaged input the parser must
// survive.
func TestBadInput(t *testing.T) {
	report := "==================\nWARNING: DATA RACE\nRead at 0x01 by goroutine 2:\n  example.com/a.F()\n      /a.go:1 +0x1\n\nPrevious write at 0x01 by main goroutine:\n  example.com/a.G()\n      /a.go:2 +0x1\n==================\n"
	tests := []struct {
		name      string
		in        string
		cfg       racelog.Config
		reports   int
		truncated []bool
		check     func(t *testing.T, reps []racelog.Report)
	}{
		{name: "empty", in: "", reports: 0},
		{name: "no newline at the end", in: strings.TrimSuffix(report, "\n"), reports: 1, truncated: []bool{false}},
		{name: "marker inside a sentence is not a report", in: "msg=\"WARNING: DATA RACE\" level=info\nlog says WARNING: DATA RACE seen yesterday\n", reports: 0},
		{name: "marker without accesses or end", in: "WARNING: DATA RACE\nhello\n", reports: 0},
		{name: "end marker never comes", in: strings.TrimSuffix(report, "==================\n"), reports: 1, truncated: []bool{true}},
		{name: "next report before the end", in: strings.TrimSuffix(report, "==================\n") + strings.TrimPrefix(report, "==================\n"), reports: 2, truncated: []bool{true, false}},
		{name: "Found N data race(s) before the end", in: strings.TrimSuffix(report, "==================\n") + "Found 1 data race(s)\n" + report, reports: 2, truncated: []bool{true, false}},
		{
			name: "overlong line inside a report is capped", in: strings.Replace(report, "  example.com/a.F()\n", "  example.com/a.F()"+strings.Repeat("x", 10000)+"\n", 1),
			cfg: racelog.Config{MaxLineBytes: 100}, reports: 1, truncated: []bool{false},
			check: func(t *testing.T, reps []racelog.Report) {
				assert.Len(t, reps[0].Accesses[0].Frames[0].Func, 98, "func cut at MaxLineBytes (after the two-space indent)")
			},
		},
		{
			name: "overlong line before the marker", in: strings.Repeat("y", 5000) + "WARNING: DATA RACE\n" + report,
			cfg: racelog.Config{MaxLineBytes: 100}, reports: 1, truncated: []bool{false},
		},
		{
			name: "report over the line cap", in: strings.Replace(report, "\nPrevious", strings.Repeat("\n  example.com/a.H()\n      /a.go:3 +0x1", 50)+"\n\nPrevious", 1),
			cfg: racelog.Config{MaxReportLines: 20}, reports: 1, truncated: []bool{true},
			check: func(t *testing.T, reps []racelog.Report) {
				assert.Equal(t, 20, strings.Count(reps[0].Text, "\n"), "text lines kept")
			},
		},
		{
			name: "report over the byte cap", in: strings.Replace(report, "\nPrevious", strings.Repeat("\n  example.com/a.H()\n      /a.go:3 +0x1", 50)+"\n\nPrevious", 1),
			cfg: racelog.Config{MaxReportBytes: 300}, reports: 1, truncated: []bool{true},
			check: func(t *testing.T, reps []racelog.Report) {
				assert.LessOrEqual(t, len(reps[0].Text), 300)
			},
		},
		{
			name: "endless foreign lines inside a report", in: strings.TrimSuffix(report, "==================\n") + strings.Repeat("other[1]: noise\n", 100) + report,
			cfg: racelog.Config{MaxReportLines: 30}, reports: 2, truncated: []bool{true, false},
		},
		{name: "binary garbage", in: "\x00\xff\x1f\x8b\x00WARNING: DATA RACE\x00\n\xfe" + report, reports: 1, truncated: []bool{false}},
		{name: "NUL bytes and a lone CR", in: "\r\r\x00\n" + strings.ReplaceAll(report, "\n", "\r\n"), reports: 1, truncated: []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reps := scanAll(t, strings.NewReader(tt.in), tt.cfg)
			require.Len(t, reps, tt.reports)
			for i, want := range tt.truncated {
				assert.Equal(t, want, reps[i].Truncated, "Truncated of report %d:\n%s", i, reps[i].Text)
			}
			if tt.check != nil {
				tt.check(t, reps)
			}
		})
	}
}

func TestBadGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(bytes.Repeat([]byte("line\n"), 1000))
	require.NoError(t, zw.Close())
	cut := buf.Bytes()[:buf.Len()/2]
	_, err := racelog.Parse(t.Context(), bytes.NewReader(cut))
	require.Error(t, err, "a cut gzip stream must be an error")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.True(t, strings.HasPrefix(err.Error(), "racelog: "), "error %q", err)

	_, err = racelog.Parse(t.Context(), strings.NewReader("\x1f\x8bnot gzip at all"))
	require.Error(t, err, "bad gzip header")
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadErrorAndCancel(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := racelog.Parse(t.Context(), io.MultiReader(strings.NewReader("ok\n"), errReader{boom}))
	assert.ErrorIs(t, err, boom)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = racelog.Parse(ctx, strings.NewReader("WARNING: DATA RACE\n"))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestLineAndOffset(t *testing.T) {
	in := "one\ntwo\n==================\nWARNING: DATA RACE\nRead at 0x01 by goroutine 2:\n  a.F()\n      /a.go:1 +0x1\n==================\n"
	reps := scanAll(t, strings.NewReader(in), racelog.Config{})
	require.Len(t, reps, 1)
	assert.Equal(t, int64(4), reps[0].Line)
	assert.Equal(t, int64(strings.Index(in, "WARNING")), reps[0].Offset)
}

func TestTitleAndFingerprintRules(t *testing.T) {
	acc := func(kind string, funcs ...string) racelog.Access {
		a := racelog.Access{Kind: kind}
		for i, f := range funcs {
			a.Frames = append(a.Frames, racelog.Frame{Func: f, File: "/x/y.go", Line: i + 1})
		}
		return a
	}
	base := []racelog.Access{
		acc("Write", "runtime.mapassign_faststr()", "restorepoint/foo.(*Bar).Baz()", "main.main()"),
		acc("Previous read", "runtime.mapaccess1_faststr()", "restorepoint/foo.(*Bar).Get()", "main.main.func1()"),
	}
	assert.Equal(t, "restorepoint/foo.(*Bar).Baz()", racelog.TitleFunction(base))
	swapped := []racelog.Access{
		acc("Read", "runtime.mapaccess1_faststr()", "restorepoint/foo.(*Bar).Get()", "main.other()"),
		acc("Previous write", "runtime.mapassign_faststr()", "restorepoint/foo.(*Bar).Baz()", "main.main()"),
	}
	assert.Equal(t, racelog.Fingerprint(base), racelog.Fingerprint(swapped), "either side, other callers")
	otherLines := []racelog.Access{base[0], base[1]}
	otherLines[0].Frames = append([]racelog.Frame(nil), base[0].Frames...)
	otherLines[0].Frames[1].Line = 999
	otherLines[0].Frames[1].File = "/root/go/pkg/mod/restorepoint@v1.2.3/x/y.go"
	assert.Equal(t, racelog.Fingerprint(base), racelog.Fingerprint(otherLines), "lines and directories take no part")

	// The access kinds and the runtime frames are the report's shape:
	// they tell variants apart, not races.
	sameRace := map[string][]racelog.Access{
		"read vs write": {acc("Read", "runtime.mapassign_faststr()", "restorepoint/foo.(*Bar).Baz()"), base[1]},
		"other runtime": {acc("Write", "runtime.mapdelete_faststr()", "restorepoint/foo.(*Bar).Baz()"), base[1]},
		"no runtime":    {acc("Write", "restorepoint/foo.(*Bar).Baz()"), acc("Previous write", "restorepoint/foo.(*Bar).Get()")},
	}
	for name, a := range sameRace {
		assert.Equal(t, racelog.Fingerprint(base), racelog.Fingerprint(a), name)
		assert.NotEqual(t, racelog.Variant(base), racelog.Variant(a), "variant of %s", name)
	}
	assert.Equal(t, racelog.Variant(base), racelog.Variant(swapped), "variant: either side, other callers")
	otherFile := []racelog.Access{base[0], acc("Previous read", "runtime.mapaccess1_faststr()", "restorepoint/foo.(*Bar).Get()")}
	otherFile[1].Frames[1].File = "/x/other.go"
	differs := map[string][]racelog.Access{
		"other function":      {acc("Write", "runtime.mapassign_faststr()", "restorepoint/foo.(*Bar).Qux()"), base[1]},
		"other file":          otherFile,
		"same function twice": {base[0], acc("Previous write", "restorepoint/foo.(*Bar).Baz()")},
	}
	for name, a := range differs {
		assert.NotEqual(t, racelog.Fingerprint(base), racelog.Fingerprint(a), name)
	}
	assert.Equal(t, "Read/Write", racelog.Shape(base))
	assert.Equal(t, "Read/Write", racelog.Shape(swapped))
	assert.Equal(t, "Write/Write", racelog.Shape(sameRace["no runtime"]))
	assert.Equal(t, "Atomic write/Read", racelog.Shape([]racelog.Access{acc("Read"), acc("Previous atomic write")}))
	generic := []racelog.Access{acc("Write", "example.com/x.Map[go.shape.int,go.shape.string].Put()"), acc("Previous write", "example.com/x.Map[go.shape.int,go.shape.string].Put()")}
	generic2 := []racelog.Access{acc("Write", "example.com/x.Map[...].Put()"), acc("Previous write", "example.com/x.Map[...].Put()")}
	assert.Equal(t, racelog.Fingerprint(generic), racelog.Fingerprint(generic2), "generic shapes are ignored")
	vendored := []racelog.Access{acc("Write", "app/vendor/restorepoint/foo.(*Bar).Baz()"), base[1]}
	plain := []racelog.Access{acc("Write", "restorepoint/foo.(*Bar).Baz()"), base[1]}
	assert.Equal(t, racelog.Fingerprint(plain), racelog.Fingerprint(vendored), "vendor/ prefix is ignored")

	stdTests := map[string]bool{
		"runtime.mapassign_faststr()":        true,
		"sync/atomic.AddInt64()":             true,
		"internal/runtime/maps.(*Map).Put()": true,
		"net/http.(*conn).serve()":           true,
		"main.main()":                        false,
		"restorepoint/foo.(*Bar).Baz()":      false,
		"github.com/x/y.F[...]()":            false,
		"example.com/racy.TestRace()":        false,
	}
	for fn, want := range stdTests {
		assert.Equal(t, want, racelog.IsStd(fn), "IsStd(%q)", fn)
	}
}

// cancelAfter returns its parts one per Read and cancels when it hands out
// the last but one.
type cancelAfter struct {
	parts  []string
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts = c.parts[1:]
	if len(c.parts) == 1 {
		c.cancel()
	}
	return n, nil
}

func TestCancelMidReport(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	in := &cancelAfter{cancel: cancel, parts: []string{
		"==================\nWARNING: DATA RACE\nRead at 0x01 by goroutine 2:\n  a.F()\n",
		"      /a.go:1 +0x1\n", // read inside the report; the context is cancelled here
		"==================\n",
	}}
	reps, err := racelog.Parse(ctx, in)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, reps, "a report cut by cancellation is not returned")
}
