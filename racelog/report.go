package racelog

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Frame is one stack frame of a race report, as the race detector printed it.
type Frame struct {
	// Func is the function exactly as printed, with its trailing "()",
	// for example "restorepoint/foo.(*Bar).Baz()".
	Func string `json:"func"`
	// File is the source file as printed (it may carry a GOPATH, module
	// cache or build-machine prefix; see Fingerprint).
	File string `json:"file"`
	// Line is the source line, 0 when the report did not print one.
	Line int `json:"line"`
	// PC is the "+0x..." offset as printed, or empty.
	PC string `json:"pc,omitempty"`
}

// Access is one memory access of a race: the current one ("Read", "Write")
// or the one it raced with ("Previous read", "Previous write").
type Access struct {
	// Kind is the access as printed before " at": "Read", "Write",
	// "Previous read", "Previous write" (and "Atomic ..." variants).
	Kind string `json:"kind"`
	// Addr is the address as printed ("0x00c000012345"); empty in old
	// reports that printed "Read by goroutine 7:".
	Addr string `json:"addr"`
	// Goroutine is the goroutine number as printed, or "main".
	Goroutine string `json:"goroutine"`
	// Frames is the stack, innermost first. It is empty when the race
	// detector printed "[failed to restore the stack]".
	Frames []Frame `json:"frames"`
	// StackUnavailable is true when the race detector printed
	// "[failed to restore the stack]" for this access.
	StackUnavailable bool `json:"stack_unavailable,omitempty"`
}

// Previous reports whether a is the earlier access ("Previous read/write").
func (a Access) Previous() bool { return strings.HasPrefix(a.Kind, "Previous") }

// Write reports whether a is a write.
func (a Access) Write() bool { return strings.HasSuffix(strings.ToLower(a.Kind), "write") }

// Goroutine is a "Goroutine N (running|finished) created at:" section.
type Goroutine struct {
	ID     string  `json:"id"`
	State  string  `json:"state"` // "running" or "finished"
	Frames []Frame `json:"frames"`
}

// Report is one race-detector report found in a log.
type Report struct {
	// Title is "Race condition in <fn>", where <fn> is the first frame of
	// the first access that belongs to the application; standard-library
	// and runtime frames are skipped. See [TitleFunction].
	Title string `json:"title"`
	// Function is the first frame of the first access exactly as printed.
	Function string `json:"function"`
	// Fingerprint identifies the race across days, machines and builds:
	// the pair of code locations that race. See [Fingerprint] for what
	// takes part.
	Fingerprint string `json:"fingerprint"`
	// Variant tells apart the reports of one race: it adds the access
	// kinds and the runtime frames to the pair of locations (see
	// [Variant]). It is what Fingerprint was before opskit made the
	// fingerprint the race, so an issue filed under an older fingerprint
	// can be found by it.
	Variant string `json:"variant"`
	// Shape names the access kinds of the report, order-free and without
	// "Previous": "Read/Write", "Write/Write", "Atomic write/Read".
	Shape string `json:"shape"`
	// Accesses are the racing accesses in the order printed.
	Accesses []Access `json:"accesses"`
	// Goroutines are the "created at" sections.
	Goroutines []Goroutine `json:"goroutines,omitempty"`
	// Location is the "Heap block ..." or "Global var ..." line, if any.
	Location string `json:"location,omitempty"`
	// Truncated is true when the report did not end with the end marker:
	// the log ended, another report or a "Found N data race(s)" line came
	// first, or the report hit the line or byte cap.
	Truncated bool `json:"truncated"`
	// Text is the report as the race detector printed it, from the opening
	// "==================" to the closing one, with the log prefix and CR
	// stripped and interleaved foreign log lines left out.
	Text string `json:"text"`
	// Line is the 1-based line number of the start marker in the input.
	Line int64 `json:"line"`
	// Offset is the byte offset of the start marker's line in the input
	// (after decompression).
	Offset int64 `json:"offset"`
	// Prefix is the per-line prefix learned from the start marker line, as
	// printed there (for example "Jan  2 03:04:05 web1 app[42]: ").
	Prefix string `json:"prefix,omitempty"`
	// Test is the test name from a go test -json envelope, if any.
	Test string `json:"test,omitempty"`
}

// finish fills in Function, Title and Fingerprint.
func (r *Report) finish() {
	r.Function = firstFunction(r.Accesses)
	fn := TitleFunction(r.Accesses)
	switch {
	case fn != "":
		r.Title = "Race condition in " + fn
	case r.Function != "":
		r.Title = "Race condition in " + r.Function
	default:
		r.Title = "Race condition (stack unavailable)"
	}
	r.Fingerprint = Fingerprint(r.Accesses)
	r.Variant = Variant(r.Accesses)
	r.Shape = Shape(r.Accesses)
}

func firstFunction(acc []Access) string {
	for _, a := range acc {
		if len(a.Frames) > 0 {
			return a.Frames[0].Func
		}
	}
	return ""
}

// TitleFunction returns the first frame of the first access that belongs to
// the application, skipping standard-library and runtime frames such as
// runtime.mapassign_faststr() or sync/atomic.AddInt64(): those would lump
// unrelated map races together. If the first access has no application
// frame, the next accesses are tried; "" means none has one.
func TitleFunction(acc []Access) string {
	for _, a := range acc {
		for _, f := range a.Frames {
			if !IsStd(f.Func) {
				return f.Func
			}
		}
	}
	return ""
}

// stdRoots are the top-level directories of the Go standard library.
var stdRoots = map[string]bool{
	"archive": true, "arena": true, "bufio": true, "builtin": true, "bytes": true,
	"cmp": true, "compress": true, "container": true, "context": true, "crypto": true,
	"database": true, "debug": true, "embed": true, "encoding": true, "errors": true,
	"expvar": true, "flag": true, "fmt": true, "go": true, "hash": true, "html": true,
	"image": true, "index": true, "internal": true, "io": true, "iter": true, "log": true,
	"maps": true, "math": true, "mime": true, "net": true, "os": true, "path": true,
	"plugin": true, "reflect": true, "regexp": true, "runtime": true, "slices": true,
	"sort": true, "strconv": true, "strings": true, "structs": true, "sync": true,
	"syscall": true, "testing": true, "text": true, "time": true, "unicode": true,
	"unique": true, "unsafe": true, "weak": true, "vendor": true, "cmd": true,
}

// IsStd reports whether the function (as printed in a frame) belongs to the
// Go standard library or runtime. "main" and import paths whose first
// element is not a standard-library directory belong to the application.
func IsStd(fn string) bool {
	pkg := PackagePath(fn)
	root, _, _ := strings.Cut(pkg, "/")
	return stdRoots[root]
}

// PackagePath returns the import path of the package a printed function
// belongs to: "restorepoint/foo" for "restorepoint/foo.(*Bar).Baz()".
func PackagePath(fn string) string {
	end := len(fn)
	if i := strings.IndexAny(fn, "[("); i >= 0 {
		end = i
	}
	slash := strings.LastIndexByte(fn[:end], '/') + 1
	dot := strings.IndexByte(fn[slash:end], '.')
	if dot < 0 {
		return fn[:end]
	}
	return fn[:slash+dot]
}

// Fingerprint returns a stable identifier of a race: 16 hex digits.
//
// A race is a pair of code locations: for each access, its first
// application frame (see [TitleFunction]; the innermost frame when the stack
// has none), as function and file name. The pair is sorted, so the order in
// which the report prints the accesses takes no part, and the access kinds
// take no part either: a counter++ racing with itself is reported as "Read
// at ... Previous write" by one run and "Write at ... Previous write" by the
// next, and a map read racing with a write is reported once through
// runtime.mapaccess1 and once through the map header, yet each is one
// race, fixed by one change, and gets one issue. The finer signature,
// which tells those reports apart, is [Variant].
//
// Addresses, goroutine IDs, PC offsets, callers below the application
// frame, directories and line numbers take no part, so the fingerprint is
// the same on another day, machine or build (GOPATH, module cache,
// -trimpath and strip_path_prefix only change directories), and an
// unrelated edit above the racing code, which moves its line numbers, does
// not file the same race again after every release. Generic
// instantiations ("[...]") and vendor/ prefixes are removed from function
// names.
//
// The price is that two races between the same pair of functions (on two
// different fields, say) share one issue; its comments list the variants
// seen. Two races of one function with two different partners are two
// races. Accesses whose stack could not be restored contribute nothing.
func Fingerprint(acc []Access) string {
	locs := make([]string, 0, len(acc))
	for _, a := range acc {
		locs = append(locs, location(a))
	}
	slices.Sort(locs)
	sum := sha256.Sum256([]byte("race\n" + strings.Join(locs, "\n--\n")))
	return hex.EncodeToString(sum[:8])
}

// location is the access's first application frame as "func file".
func location(a Access) string {
	if len(a.Frames) == 0 {
		return ""
	}
	f := a.Frames[0]
	for _, fr := range a.Frames {
		if !IsStd(fr.Func) {
			f = fr
			break
		}
	}
	file := f.File
	if i := strings.LastIndexAny(file, `/\`); i >= 0 {
		file = file[i+1:]
	}
	return normalizeFunc(f.Func) + " " + file
}

// Variant returns the finer signature of a race report: 16 hex digits.
//
// Each access contributes its kind, reduced to read or write, and the
// function names of its frames from the innermost one down to and
// including the first application frame; the accesses are sorted. So the
// same race reported from either side has one variant, while a Read/Write
// report and a Write/Write report of one race (one [Fingerprint]) have two.
// Addresses, goroutine IDs, PC offsets, file paths and line numbers take no
// part. This was the fingerprint of racelog before the fingerprint became
// the pair of locations; issue reporters look variants up to find issues
// filed under it.
func Variant(acc []Access) string {
	sigs := make([]string, 0, len(acc))
	for _, a := range acc {
		sigs = append(sigs, accessSignature(a))
	}
	slices.Sort(sigs)
	sigs = slices.Compact(sigs)
	sum := sha256.Sum256([]byte(strings.Join(sigs, "\n--\n")))
	return hex.EncodeToString(sum[:8])
}

// Shape names the access kinds of a report, sorted and without "Previous":
// "Read/Write" for both "Read at ... Previous write" and "Write at ...
// Previous read", "Write/Write" for two writes.
func Shape(acc []Access) string {
	kinds := make([]string, 0, len(acc))
	for _, a := range acc {
		k := strings.TrimSpace(strings.TrimPrefix(a.Kind, "Previous"))
		if k == "" {
			continue
		}
		k = strings.ToUpper(k[:1]) + strings.ToLower(k[1:])
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return strings.Join(kinds, "/")
}

func accessSignature(a Access) string {
	var b strings.Builder
	if a.Write() {
		b.WriteString("write")
	} else {
		b.WriteString("read")
	}
	for _, f := range a.Frames {
		b.WriteByte('\n')
		b.WriteString(normalizeFunc(f.Func))
		if !IsStd(f.Func) {
			break
		}
	}
	return b.String()
}

// normalizeFunc strips what varies between builds from a printed function.
func normalizeFunc(fn string) string {
	fn = strings.TrimSuffix(fn, "()")
	if i := strings.LastIndex(fn, "/vendor/"); i >= 0 {
		fn = fn[i+len("/vendor/"):]
	}
	// Drop generic instantiations: pkg.F[go.shape.int] -> pkg.F[...]
	if strings.IndexByte(fn, '[') >= 0 {
		var b strings.Builder
		depth := 0
		for i := 0; i < len(fn); i++ {
			switch c := fn[i]; {
			case c == '[':
				if depth == 0 {
					b.WriteString("[...]")
				}
				depth++
			case c == ']':
				if depth > 0 {
					depth--
				}
			case depth == 0:
				b.WriteByte(c)
			}
		}
		fn = b.String()
	}
	return fn
}
