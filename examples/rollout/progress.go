package main

import (
	"fmt"
	"io"
	"os"

	"github.com/opskit/opskit/workflow"
)

// progress turns events into the terminal progress line:
// done / failed / in flight / remaining.
type progress struct {
	w                         io.Writer
	tty                       bool
	total                     int
	started, done, failed, in int
	last                      string
}

func (p *progress) event(ev workflow.Event) {
	switch ev.Kind {
	case workflow.EventStart:
		p.started++
		p.in++
	case workflow.EventDone:
		p.done++
		p.in--
	case workflow.EventFail:
		p.failed++
		p.in--
	case workflow.EventInterrupted:
		p.in--
	case workflow.EventSkip:
		p.done++
		p.started++
	case workflow.EventEnd:
		p.flush()
		return
	default:
		return
	}
	p.print()
}

func (p *progress) line() string {
	return fmt.Sprintf("done %d | failed %d | in flight %d | remaining %d", p.done, p.failed, p.in, p.total-p.started)
}

func (p *progress) print() {
	l := p.line()
	if l == p.last {
		return
	}
	p.last = l
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", l)
	} else {
		fmt.Fprintln(p.w, l)
	}
}

func (p *progress) flush() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
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
