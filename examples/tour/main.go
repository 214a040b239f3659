// Command tour runs every opskit package end to end against the in-process
// fakes that opskit ships, narrating what happens. It needs no network but
// loopback and no setup, and its narration is deterministic.
//
// Usage:
//
//	go run ./examples/tour [-chapter NAME] [-list]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
)

func main() {
	cli.Main("tour", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

// chapter is one package's part of the tour.
type chapter struct {
	name    string // package path below the module, e.g. "release"
	summary string
	// run narrates the chapter on n. A nil run means the chapter has not
	// been written yet; the tour says so and goes on.
	run func(ctx context.Context, n *narrator) error
}

// chapters lists the tour in the order a newcomer should meet the packages.
// Each chapter lives in its own file, ch_<name>.go.
func chapters() []chapter {
	return []chapter{
		releaseChapter(),
		gitlabxChapter(),
		racelogChapter(),
		semtagChapter(),
		freshdeskChapter(),
		fleetChapter(),
		agentChapter(),
		workflowChapter(),
	}
}

// narrator prints the tour. Chapters call Say for each step.
type narrator struct {
	w       io.Writer
	chapter string
}

// Say prints one narrated step, indented under the chapter heading.
func (n *narrator) Say(format string, args ...any) {
	fmt.Fprintf(n.w, "  %s\n", fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("tour", stderr, "Usage: tour [flags]\n\nRuns every opskit package end to end against in-process fakes.\n\nFlags:\n")
	only := fs.String("chapter", "", "run only the chapter with this `name` (see -list)")
	list := fs.Bool("list", false, "list the chapters and exit")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	all := chapters()
	if *list {
		for _, c := range all {
			fmt.Fprintf(stdout, "%-10s %s\n", c.name, c.summary)
		}
		return nil
	}
	if *only != "" {
		var sel []chapter
		for _, c := range all {
			if c.name == *only {
				sel = append(sel, c)
			}
		}
		if len(sel) == 0 {
			names := make([]string, len(all))
			for i, c := range all {
				names[i] = c.name
			}
			fmt.Fprintf(stderr, "tour: no chapter %q; chapters: %s\n", *only, strings.Join(names, ", "))
			return errUsage
		}
		all = sel
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	fmt.Fprintln(stdout, "opskit tour: every package end to end, on in-process fakes and loopback only.")
	var failed []string
	for i, c := range all {
		fmt.Fprintf(stdout, "\n%d. %s: %s\n", i+1, c.name, c.summary)
		if c.run == nil {
			fmt.Fprintln(stdout, "  (this chapter is not written yet)")
			continue
		}
		if err := c.run(ctx, &narrator{w: stdout, chapter: c.name}); err != nil {
			fmt.Fprintf(stdout, "  FAILED: %v\n", err)
			failed = append(failed, c.name)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("chapters failed: %s", strings.Join(failed, ", "))
	}
	fmt.Fprintln(stdout, "\nThe tour is over: every chapter ran.")
	return nil
}
