// Command pull-all fast-forwards every git repository directly under the
// given parent directories, in parallel, the platform team's oldest
// script (parallel -j64 --keep-order over git pull --ff-only):
//
//	pull-all [-j 64] [-continue] [-timeout 2m] [-color auto|always|never] DIR...
//
// Each repository runs `git pull --ff-only` through fleet.Local and
// fleet.Group, -j at a time. Output comes in input order (parents as
// given, repositories by name), one line per repository, whatever order
// they finish in. A repository that cannot fast-forward cleanly (tracked
// changes in its working tree, a branch diverged from its upstream, no
// upstream or no remote) is a failure: it is printed in red (on a
// terminal) with git's message, no further repository starts (those
// already running finish and are printed), and pull-all exits 1. With
// -continue every repository is pulled and the failures are listed at
// the end. Git never prompts (GIT_TERMINAL_PROMPT=0).
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/fleet"
)

func main() {
	cli.Main("pull-all", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
}

var (
	errUsage  = cli.ErrUsage                                            // the run tests compare with errUsage
	errFailed = cli.Silent(errors.New("some repositories failed"))      // main exits 1; run printed them
	errDirty  = errors.New("working tree has uncommitted changes")      // a failure of its own: pull may succeed over it
	errNotRun = errors.New("not started: stopped at the first failure") // never printed as a failure
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("pull-all", stderr, "Usage: pull-all [flags] DIR...\n\n"+
		"Runs git pull --ff-only in every git repository directly under each DIR, in parallel,\n"+
		"printing one line per repository in input order. Stops at the first repository that\n"+
		"cannot fast-forward cleanly and exits 1 (-continue goes on and lists them all).\n\nFlags:\n")
	jobs := fs.Int("j", 64, "repositories pulled at once")
	cont := fs.Bool("continue", false, "pull every repository even after a failure, and list the failures at the end")
	timeout := fs.Duration("timeout", 2*time.Minute, "per-repository `limit`")
	color := fs.String("color", "auto", "color failures red: auto (when stdout is a terminal), always or never")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return cli.Usagef(fs, "give at least one parent directory")
	case *jobs < 1:
		return cli.Usagef(fs, "-j must be at least 1")
	case *color != "auto" && *color != "always" && *color != "never":
		return cli.Usagef(fs, "-color must be auto, always or never")
	}
	repos, err := findRepos(fs.Args())
	if err != nil {
		return err
	}
	red := *color == "always" || (*color == "auto" && isTerminal(stdout))

	p := &printer{w: stdout, red: red, done: make([]*outcome, len(repos))}
	local := &fleet.Local{Env: append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")}
	var stop atomic.Bool
	g := fleet.Group{Concurrency: *jobs, HostTimeout: *timeout}
	index := make(map[string]int, len(repos))
	for i, r := range repos {
		index[r] = i
	}
	g.OnResult = func(res fleet.Result, err error) {
		if err != nil && !errors.Is(err, errNotRun) && !*cont {
			stop.Store(true)
		}
		p.record(index[res.Host], &outcome{repo: res.Host, res: res, err: err})
	}
	_, _ = g.Do(ctx, repos, func(ctx context.Context, repo string) (fleet.Result, error) {
		if stop.Load() {
			return fleet.Result{ExitCode: -1}, errNotRun
		}
		return pull(ctx, local, repo)
	})
	p.flush()

	var failed []string
	notRun := 0
	for i, o := range p.done {
		switch {
		case o == nil || errors.Is(o.err, errNotRun):
			notRun++
		case o.err != nil:
			failed = append(failed, repos[i])
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) == 0 {
		return nil
	}
	if notRun > 0 {
		fmt.Fprintf(stdout, "stopped at the first failure: %d of %d repositories not pulled (-continue pulls them all)\n", notRun, len(repos))
	}
	if *cont {
		fmt.Fprintf(stdout, "%d of %d repositories failed:\n", len(failed), len(repos))
		for _, f := range failed {
			fmt.Fprintf(stdout, "  %s\n", p.paint(f))
		}
	}
	return errFailed
}

// findRepos lists the git repositories directly under each parent, parents
// in the order given, repositories by name; a child is a repository when
// it holds .git (a directory, or a file for a worktree or submodule).
func findRepos(parents []string) ([]string, error) {
	var repos []string
	seen := map[string]bool{}
	for _, parent := range parents {
		entries, err := os.ReadDir(parent)
		if err != nil {
			return nil, err
		}
		var here []string
		for _, e := range entries {
			dir := filepath.Join(parent, e.Name())
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
				continue
			}
			if !seen[dir] {
				seen[dir] = true
				here = append(here, dir)
			}
		}
		slices.SortFunc(here, cmp.Compare)
		repos = append(repos, here...)
	}
	return repos, nil
}

// pull refuses a working tree with tracked changes (git would fast-forward
// over them when they do not touch the incoming files), then runs
// git pull --ff-only, which fails on a diverged branch and without an
// upstream.
func pull(ctx context.Context, l *fleet.Local, repo string) (fleet.Result, error) {
	res, err := l.Run(ctx, fleet.Command{Host: repo, Args: []string{"git", "-C", repo, "status", "--porcelain", "--untracked-files=no"}})
	if err != nil {
		return res, err
	}
	if len(res.Stdout) > 0 {
		res.Stderr = res.Stdout
		res.Stdout = nil
		res.ExitCode = 1
		return res, errDirty
	}
	return l.Run(ctx, fleet.Command{Host: repo, Args: []string{"git", "-C", repo, "pull", "--ff-only"}})
}

// outcome is one repository's result.
type outcome struct {
	repo string
	res  fleet.Result
	err  error
}

// printer prints outcomes in input order as soon as every earlier one is in.
type printer struct {
	w    io.Writer
	red  bool
	mu   sync.Mutex
	done []*outcome
	next int
}

func (p *printer) record(i int, o *outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[i] = o
	for p.next < len(p.done) && p.done[p.next] != nil {
		p.print(p.done[p.next])
		p.next++
	}
}

// flush prints what is left after a stop: outcomes past a repository that
// never started.
func (p *printer) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; p.next < len(p.done); p.next++ {
		if o := p.done[p.next]; o != nil {
			p.print(o)
		}
	}
}

func (p *printer) print(o *outcome) {
	switch {
	case errors.Is(o.err, errNotRun):
		return
	case o.err == nil:
		fmt.Fprintf(p.w, "ok    %s  %s\n", o.repo, summary(o.res.Stdout))
		return
	}
	reason := o.err.Error()
	var ee *fleet.ExitError
	if errors.As(o.err, &ee) {
		reason = firstLine(o.res.Stderr, ee.Error())
	}
	if errors.Is(o.err, errDirty) {
		reason = errDirty.Error()
	}
	fmt.Fprintf(p.w, "%s  %s  %s\n", p.paint("FAIL"), p.paint(o.repo), reason)
	for _, l := range strings.Split(strings.TrimRight(string(o.res.Stderr), "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(p.w, "      %s\n", l)
		}
	}
}

func (p *printer) paint(s string) string {
	if !p.red {
		return s
	}
	return "\x1b[31m" + s + "\x1b[0m"
}

// summary says what git pull did: "Already up to date.", or "updated
// OLD..NEW" with git's diffstat total ("1 file changed, 1 insertion(+)").
func summary(out []byte) string {
	var updated, stat string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "Already up to date"):
			return l
		case strings.HasPrefix(l, "Updating "):
			updated = "updated " + strings.TrimPrefix(l, "Updating ")
		case strings.Contains(l, " changed"):
			stat = l
		}
	}
	if updated == "" {
		return strings.TrimSpace(string(out))
	}
	if stat != "" {
		return updated + " (" + stat + ")"
	}
	return updated
}

// firstLine is the first line of git's message that says what is wrong
// (fatal:, error: or hint-free text), or def.
func firstLine(stderr []byte, def string) string {
	var first string
	for _, l := range strings.Split(string(stderr), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "hint:") {
			continue
		}
		if strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			return l
		}
		if first == "" {
			first = l
		}
	}
	return cmp.Or(first, def)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
