package racelog_test

import (
	"context"
	"fmt"
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
	// b5de30aa6e91be3f
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
