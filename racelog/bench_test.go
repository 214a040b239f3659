package racelog_test

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"github.com/opskit/opskit/racelog"
)

// benchLog returns about size bytes of ordinary log lines with the real
// report of testdata/plain.log every ~1 MiB.
func benchLog(b *testing.B, size int) []byte {
	b.Helper()
	rep, err := os.ReadFile("testdata/plain.log")
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	for i := 0; buf.Len() < size; i++ {
		buf.WriteString(`2026-11-22T01:02:03.123456Z INFO http: request served method=GET path=/api/v1/items/`)
		buf.WriteString(strconv.Itoa(i))
		buf.WriteString(" status=200 duration=1.2ms Warn=false\n")
		if i%10000 == 9999 {
			buf.Write(rep)
		}
	}
	return buf.Bytes()
}

func BenchmarkScanner(b *testing.B) {
	log := benchLog(b, 64<<20)
	want := bytes.Count(log, []byte("WARNING: DATA RACE"))
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		s := racelog.NewScanner(bytes.NewReader(log), racelog.Config{})
		n := 0
		for s.Scan(b.Context()) {
			n++
		}
		if s.Err() != nil || n != want {
			b.Fatalf("found %d reports, err %v; want %d", n, s.Err(), want)
		}
	}
}
