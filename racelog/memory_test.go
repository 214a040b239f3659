package racelog_test

import (
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/racelog"
)

// repeatReader yields head, then body repeated until n bytes, then tail.
type repeatReader struct {
	head, body, tail string
	n, done          int
	pos              int
	stage            int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	w := 0
	for w < len(p) {
		var src string
		switch r.stage {
		case 0:
			src = r.head
		case 1:
			if r.done >= r.n {
				r.stage, r.pos = 2, 0
				continue
			}
			src = r.body
		case 2:
			src = r.tail
		default:
			if w == 0 {
				return 0, io.EOF
			}
			return w, nil
		}
		c := copy(p[w:], src[r.pos:])
		w += c
		r.pos += c
		if r.stage == 1 {
			r.done += c
		}
		if r.pos == len(src) {
			r.pos = 0
			if r.stage != 1 {
				r.stage++
			}
		}
	}
	return w, nil
}

// TestBoundedMemory feeds pathological streams of 64 MiB and checks that the
// scanner allocates a small, fixed amount whatever the input size.
func TestBoundedMemory(t *testing.T) {
	size := 64 << 20
	if raceEnabled {
		size = 8 << 20 // the race detector slows the per-line work tenfold
	}
	next := "==================\nWARNING: DATA RACE\nWrite at 0x2 by goroutine 3:\n  example.com/b.G()\n      /b.go:2 +0x1\n==================\n"
	tests := []struct {
		name      string
		r         *repeatReader
		reports   int
		truncated bool
	}{
		{"report that never ends", &repeatReader{head: "WARNING: DATA RACE\nRead at 0x1 by goroutine 1:\n", body: "  example.com/a.F()\n      /a.go:1 +0x1\n", tail: next, n: size}, 2, true},
		{"one line without a newline", &repeatReader{head: "x", body: "WARNING: DATA RACE ", tail: "\n" + next, n: size}, 1, false},
		{"foreign lines inside a report", &repeatReader{head: "app: WARNING: DATA RACE\napp: Read at 0x1 by goroutine 1:\n", body: "other: noise\n", tail: next, n: size}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s := racelog.NewScanner(tt.r, racelog.Config{})
			var reps []racelog.Report
			for s.Scan(t.Context()) {
				reps = append(reps, s.Report())
			}
			runtime.ReadMemStats(&after)
			require.NoError(t, s.Err())
			require.Len(t, reps, tt.reports)
			assert.Equal(t, tt.truncated, reps[0].Truncated)
			assert.Equal(t, "Race condition in example.com/b.G()", reps[len(reps)-1].Title, "the report after the flood is found")
			alloc := after.TotalAlloc - before.TotalAlloc
			assert.Less(t, alloc, uint64(16<<20), "allocated %d bytes scanning %d", alloc, size)
			t.Logf("allocated %d bytes", alloc)
		})
	}
}

// TestGoTestJSONInterleaved checks that in go test -json output only the
// test that printed the marker contributes lines to the report.
func TestGoTestJSONInterleaved(t *testing.T) {
	ev := func(test, out string) string {
		b, _ := json.Marshal(map[string]string{"Action": "output", "Package": "example.com/p", "Test": test, "Output": out})
		return string(b) + "\n"
	}
	in := ev("TestA", "==================\n") + ev("TestA", "WARNING: DATA RACE\n") +
		ev("TestA", "Write at 0x01 by goroutine 7:\n") +
		ev("TestB", "    b_test.go:9: log line from a parallel test\n") +
		ev("TestA", "  example.com/p.F()\n") + ev("TestA", "      /p/p.go:3 +0x1") + ev("TestA", "c\n") +
		`{"Action":"pass","Package":"example.com/p","Test":"TestB"}` + "\n" +
		ev("TestA", "\nPrevious read at 0x01 by goroutine 8:\n  example.com/p.G()\n      /p/p.go:9 +0x1\n") +
		ev("TestA", "==================\n")
	reps := scanAll(t, strings.NewReader(in), racelog.Config{})
	require.Len(t, reps, 1)
	r := reps[0]
	assert.Equal(t, "TestA", r.Test)
	assert.False(t, r.Truncated)
	assert.NotContains(t, r.Text, "parallel test")
	require.Len(t, r.Accesses, 2)
	assert.Equal(t, racelog.Frame{Func: "example.com/p.F()", File: "/p/p.go", Line: 3, PC: "+0x1c"}, r.Accesses[0].Frames[0], "a line split over two envelopes")
	assert.Equal(t, "example.com/p.G()", r.Accesses[1].Frames[0].Func)
}

// TestLargeLineCap checks that a large MaxLineBytes costs memory only when
// long lines come, and that such lines are then kept whole.
func TestLargeLineCap(t *testing.T) {
	cfg := racelog.Config{MaxLineBytes: 1 << 30}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	reps := scanAll(t, strings.NewReader("hello\n"), cfg)
	runtime.ReadMemStats(&after)
	assert.Empty(t, reps)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "a 1 GiB line cap must not be allocated up front")

	long := "example.com/a.F" + strings.Repeat("x", 300<<10) + "()"
	in := "WARNING: DATA RACE\nRead at 0x1 by goroutine 1:\n  " + long + "\n      /a.go:1 +0x1\n==================\n"
	reps = scanAll(t, strings.NewReader(in), cfg)
	require.Len(t, reps, 1)
	assert.Equal(t, long, reps[0].Function, "a 300 KiB frame under a 1 GiB cap is kept whole")
	assert.False(t, reps[0].Truncated)
}
