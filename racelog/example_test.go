package racelog_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/opskit/opskit/racelog"
)

// A report in a syslog-style log, with another program's line in the middle.
const exampleLog = `Nov 22 01:02:03 web1 app[42]: level=info msg=serving
Nov 22 01:02:04 web1 app[42]: ==================
Nov 22 01:02:04 web1 app[42]: WARNING: DATA RACE
Nov 22 01:02:04 web1 app[42]: Write at 0x00c0000a4010 by goroutine 8:
Nov 22 01:02:04 web1 app[42]:   runtime.mapassign_faststr()
Nov 22 01:02:04 web1 app[42]:       /usr/local/go/src/internal/runtime/maps/runtime_faststr.go:263 +0x0
Nov 22 01:02:04 web1 app[42]:   example.com/app/cache.(*Cache).Set()
Nov 22 01:02:04 web1 app[42]:       /src/app/cache/cache.go:21 +0x91
Nov 22 01:02:04 web1 CRON[7]: (root) CMD (run-parts /etc/cron.hourly)
Nov 22 01:02:04 web1 app[42]: 
Nov 22 01:02:05 web1 app[42]: Previous read at 0x00c0000a4010 by main goroutine:
Nov 22 01:02:05 web1 app[42]:   runtime.mapaccess1_faststr()
Nov 22 01:02:05 web1 app[42]:       /usr/local/go/src/internal/runtime/maps/runtime_faststr.go:13 +0x0
Nov 22 01:02:05 web1 app[42]:   example.com/app/cache.(*Cache).Get()
Nov 22 01:02:05 web1 app[42]:       /src/app/cache/cache.go:17 +0x44
Nov 22 01:02:05 web1 app[42]: ==================
`

func ExampleScanner() {
	s := racelog.NewScanner(strings.NewReader(exampleLog), racelog.Config{})
	for s.Scan(context.Background()) {
		r := s.Report()
		fmt.Println(r.Title)
		fmt.Println(r.Function)
		fmt.Printf("line %d, prefix %q\n", r.Line, r.Prefix)
		for _, a := range r.Accesses {
			fmt.Printf("%s by goroutine %s in %s\n", a.Kind, a.Goroutine, a.Frames[1].Func)
		}
		fmt.Println(r.Fingerprint)
	}
	if err := s.Err(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Race condition in example.com/app/cache.(*Cache).Set()
	// runtime.mapassign_faststr()
	// line 3, prefix "Nov 22 01:02:04 web1 app[42]: "
	// Write by goroutine 8 in example.com/app/cache.(*Cache).Set()
	// Previous read by goroutine main in example.com/app/cache.(*Cache).Get()
	// d3111b06d87ca7e7
}

func ExampleParse() {
	reps, err := racelog.Parse(context.Background(), strings.NewReader(exampleLog))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(reps), reps[0].Truncated)
	fmt.Print(reps[0].Text)
	// Output:
	// 1 false
	// ==================
	// WARNING: DATA RACE
	// Write at 0x00c0000a4010 by goroutine 8:
	//   runtime.mapassign_faststr()
	//       /usr/local/go/src/internal/runtime/maps/runtime_faststr.go:263 +0x0
	//   example.com/app/cache.(*Cache).Set()
	//       /src/app/cache/cache.go:21 +0x91
	//
	// Previous read at 0x00c0000a4010 by main goroutine:
	//   runtime.mapaccess1_faststr()
	//       /usr/local/go/src/internal/runtime/maps/runtime_faststr.go:13 +0x0
	//   example.com/app/cache.(*Cache).Get()
	//       /src/app/cache/cache.go:17 +0x44
	// ==================
}

// The same race seen from either side, from other callers and another
// build has one fingerprint; line numbers and paths take no part.
func ExampleFingerprint() {
	frame := func(fn, file string, line int) racelog.Frame { return racelog.Frame{Func: fn, File: file, Line: line} }
	writeFirst := []racelog.Access{
		{Kind: "Write", Frames: []racelog.Frame{frame("example.com/app/cache.(*Cache).Inc()", "/src/app/cache/cache.go", 15), frame("main.main.func1()", "/src/app/main.go", 20)}},
		{Kind: "Previous read", Frames: []racelog.Frame{frame("example.com/app/cache.(*Cache).Get()", "/src/app/cache/cache.go", 18), frame("main.main()", "/src/app/main.go", 22)}},
	}
	readFirst := []racelog.Access{
		{Kind: "Read", Frames: []racelog.Frame{frame("example.com/app/cache.(*Cache).Get()", "example.com/app/cache/cache.go", 19), frame("main.serve()", "example.com/app/main.go", 40)}},
		{Kind: "Previous write", Frames: []racelog.Frame{frame("example.com/app/cache.(*Cache).Inc()", "example.com/app/cache/cache.go", 16), frame("main.main.func1()", "example.com/app/main.go", 21)}},
	}
	fmt.Println(racelog.Fingerprint(writeFirst) == racelog.Fingerprint(readFirst))
	fmt.Println(racelog.TitleFunction(writeFirst), racelog.TitleFunction(readFirst))
	// Output:
	// true
	// example.com/app/cache.(*Cache).Inc() example.com/app/cache.(*Cache).Get()
}

// Real race-detector output of counter++ from four goroutines: the race is
// printed as Read/Write and as Write/Write, and is one race.
func ExampleCollector() {
	f, err := os.Open("testdata/counter.log")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	var races racelog.Collector
	if err := races.Scan(context.Background(), f, racelog.Config{}, racelog.Sighting{Host: "test1", File: "app.log"}); err != nil {
		fmt.Println(err)
		return
	}
	for _, rc := range races.Races() {
		fmt.Println(rc.Title, rc.Fingerprint, rc.Occurrences, rc.Hosts, rc.Files)
		fmt.Println("first seen at line", rc.FirstSeen.Line, "last seen at line", rc.LastSeen.Line)
		for _, v := range rc.Variants {
			fmt.Println(v.Shape, v.Variant, v.Count)
		}
	}
	// Output:
	// Race condition in main.inc() 5bdb6b29419ac6f5 2 [test1] [app.log]
	// first seen at line 2 last seen at line 24
	// Read/Write f78cd46c74e701ee 1
	// Write/Write 94fc0c6b0dae2e46 1
}
