package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opskit/opskit/fleet"
)

// output prints each host's result as it finishes (JSON lines, or pssh's
// -i form with -inline), writes -outdir files, and keeps the progress
// line on a terminal up to date. Calls are serialized by Group.OnResult.
type output struct {
	w        io.Writer // stdout
	progress io.Writer // stderr when it shows progress, else nil
	inline   bool
	outdir   string
	total    int
	start    time.Time

	mu                   sync.Mutex
	done, failed, inBody int
	errs                 []error // -outdir write failures
}

func (o *output) result(l line, r fleet.Result, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done++
	if err != nil {
		o.failed++
	}
	o.clearProgress()
	if o.inline {
		o.printInline(l, err)
	} else {
		enc := json.NewEncoder(o.w)
		enc.SetEscapeHTML(false)
		enc.Encode(l)
	}
	if o.outdir != "" {
		name := fileName(l.Host)
		for ext, b := range map[string][]byte{".stdout": r.Stdout, ".stderr": r.Stderr} {
			if werr := os.WriteFile(filepath.Join(o.outdir, name+ext), b, 0o644); werr != nil {
				o.errs = append(o.errs, werr)
			}
		}
	}
	o.showProgress()
}

// printInline prints one host as parallel-ssh -i does.
func (o *output) printInline(l line, err error) {
	status := "SUCCESS"
	if err != nil {
		status = "FAILURE"
	}
	fmt.Fprintf(o.w, "[%d] %s [%s] %s", o.done, time.Now().Format("15:04:05"), status, l.Host)
	switch {
	case err != nil && l.ExitCode > 0:
		fmt.Fprintf(o.w, " Exited with error code %d", l.ExitCode)
	case err != nil:
		fmt.Fprintf(o.w, " %s", l.Error)
	}
	fmt.Fprintln(o.w)
	if l.Stdout != "" {
		fmt.Fprint(o.w, withNewline(l.Stdout))
	}
	if l.Stderr != "" {
		fmt.Fprint(o.w, "Stderr: ", withNewline(l.Stderr))
	}
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// fileName makes a host name safe as a file name in -outdir.
func fileName(host string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "\x00", "_")
	n := r.Replace(host)
	if n == "" || n[0] == '.' {
		n = "_" + n
	}
	return n
}

// started counts a host that began, for the progress line.
func (o *output) started() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inBody++
	o.showProgress()
}

func (o *output) showProgress() {
	if o.progress == nil {
		return
	}
	inFlight := o.inBody - o.done
	eta := "?"
	if o.done > 0 {
		left := time.Duration(float64(time.Since(o.start)) / float64(o.done) * float64(o.total-o.done))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(o.progress, "\r\x1b[Kfleet-run: %d/%d done, %d failed, %d in flight, ETA %s", o.done, o.total, o.failed, inFlight, eta)
}

func (o *output) clearProgress() {
	if o.progress != nil {
		fmt.Fprint(o.progress, "\r\x1b[K")
	}
}

// summary ends the progress line and prints the totals and the failed hosts.
func (o *output) summary(stderr io.Writer, sum *fleet.Summary, elapsed time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearProgress()
	fmt.Fprintf(stderr, "fleet-run: %d succeeded, %d failed, %d not started in %s\n",
		len(sum.Succeeded), len(sum.Failed), len(sum.NotStarted), elapsed.Round(time.Millisecond))
	if len(sum.Failed) > 0 {
		fmt.Fprintf(stderr, "fleet-run: failed: %s\n", strings.Join(sum.Failed, " "))
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
