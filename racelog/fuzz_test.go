package racelog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/opskit/opskit/racelog"
)

// FuzzScanner feeds arbitrary logs to the scanner with small caps: it must
// not panic, and every report must respect the caps (bounded memory).
func FuzzScanner(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("WARNING: DATA RACE\nRead at 0x1 by goroutine 1:\n  a()\n"))
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := racelog.Config{MaxLineBytes: 256, MaxReportLines: 64, MaxReportBytes: 2048}
		s := racelog.NewScanner(bytes.NewReader(in), cfg)
		n := 0
		for s.Scan(t.Context()) {
			r := s.Report()
			n++
			if len(r.Text) > cfg.MaxReportBytes {
				t.Fatalf("report text %d bytes > cap %d", len(r.Text), cfg.MaxReportBytes)
			}
			if lines := bytes.Count([]byte(r.Text), []byte("\n")); lines > cfg.MaxReportLines {
				t.Fatalf("report text %d lines > cap %d", lines, cfg.MaxReportLines)
			}
			frames := 0
			for _, a := range r.Accesses {
				frames += len(a.Frames)
			}
			if frames > cfg.MaxReportLines {
				t.Fatalf("%d frames kept > line cap %d", frames, cfg.MaxReportLines)
			}
			if r.Title == "" || len(r.Fingerprint) != 16 {
				t.Fatalf("report without title or fingerprint: %+v", r)
			}
			if n > len(in) {
				t.Fatalf("more reports (%d) than input bytes", n)
			}
		}
	})
}
