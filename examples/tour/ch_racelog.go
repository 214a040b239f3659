package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/racelog"
)

// racelogChapter is the tour's racelog chapter.
func racelogChapter() chapter {
	return chapter{
		name:    "racelog",
		summary: "find a real data race in logs, in both of its shapes, and file it as one issue that closes itself",
		run:     runRacelog,
	}
}

// racyProgram increments a counter from four goroutines without a lock.
// The race detector prints that one race as "Read at ... Previous write"
// or as "Write at ... Previous write", depending on the scheduling.
const racyProgram = `package main

import "sync"

var counter int

func inc() { counter++ }

func main() {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 1000 {
				inc()
			}
		}()
	}
	close(start)
	wg.Wait()
}
`

// racesOfTheDay runs the racy program on the test hosts until the race
// detector has printed both shapes of the race (each run prints the
// Write/Write shape about half the time), and collects the reports.
func racesOfTheDay(ctx context.Context, bin string) ([]racelog.Race, []racelog.Report, error) {
	var c racelog.Collector
	var firstOfShape []racelog.Report
	for run := 0; run < 60 && len(firstOfShape) < 2; run++ {
		host := fmt.Sprintf("test%d", run%2+1)
		log, err := appLog(ctx, bin, host)
		if err != nil {
			return nil, nil, err
		}
		reps, err := racelog.Parse(ctx, bytes.NewReader(log))
		if err != nil {
			return nil, nil, err
		}
		for _, r := range reps {
			c.Add(r, racelog.Sighting{Host: host, File: "/var/log/app.log"})
			if !slices.ContainsFunc(firstOfShape, func(f racelog.Report) bool { return f.Shape == r.Shape }) {
				firstOfShape = append(firstOfShape, r)
			}
		}
	}
	if len(firstOfShape) < 2 {
		return nil, nil, fmt.Errorf("the race detector printed only the %s shape in 60 runs", firstOfShape[0].Shape)
	}
	return c.Races(), firstOfShape, nil
}

func runRacelog(ctx context.Context, n *narrator) error {
	dir, err := os.MkdirTemp("", "opskit-tour-racelog-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildRacy(ctx, dir)
	if err != nil {
		return err
	}
	n.Say("A tiny program that runs counter++ from four goroutines is built with go build -race (the first build compiles the race runtime, later ones come from the build cache).")

	races, shapes, err := racesOfTheDay(ctx, bin)
	if err != nil {
		return err
	}
	for _, r := range shapes {
		n.Say("One report: %q vs %q (%s): shape %s, variant %s, fingerprint %s.", r.Accesses[0].Kind, r.Accesses[1].Kind, r.Title, r.Shape, r.Variant, r.Fingerprint)
	}
	if len(races) != 1 {
		return fmt.Errorf("racelog.Collect found %d races, want 1", len(races))
	}
	rc := races[0]
	n.Say("racelog learned the syslog prefix %q and stripped it; the cron line in the middle is left out.", shapes[0].Prefix)
	n.Say("The fingerprint is the race: the pair of racing locations (first application frame of each access, function and file), not the report's shape.")
	n.Say("racelog.Collector: %d reports on %s are 1 race, %q, in %d variants.", rc.Occurrences, strings.Join(rc.Hosts, ", "), rc.Title, len(rc.Variants))

	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	reporter := gitlabx.NewReporter(gl.Client(), 7)
	reporter.CloseAfterRuns = 2
	n.Say("A fake GitLab holds ops/app; a gitlabx.IssueReporter files races there, labelled %q, and closes an issue whose race was not seen for %d runs.", gitlabx.DefaultReportLabel, reporter.CloseAfterRuns)

	file := func(day string, races []racelog.Race) (gitlabx.RunResult, error) {
		reps := make([]gitlabx.Report, len(races))
		for i, rc := range races {
			reps[i] = gitlabx.RaceReport(rc)
		}
		return reporter.ReportRun(ctx, day, reps)
	}
	res, err := file("day-1", races)
	if err != nil {
		return err
	}
	is := gl.Issues(7)[0]
	n.Say("Day 1: the daily job files it in %d API calls, no search: %s issue #%d %q.", res.APICalls, res.Reports[0].Action, is.IID, is.Title)
	n.Say("The issue says: %s", strings.ReplaceAll(firstLines(strings.SplitN(is.Description, "\n", 2)[1]), "\n", " / "))
	res, err = file("day-1", races)
	if err != nil {
		return err
	}
	n.Say("Day 1, the job run again by hand: %s (no second issue, no comment; API calls: %d).", res.Reports[0].Action, res.APICalls)

	races, _, err = racesOfTheDay(ctx, bin)
	if err != nil {
		return err
	}
	res, err = file("day-2", races)
	if err != nil {
		return err
	}
	notes := gl.Notes(7, gitlabtest.IssueNoteable, is.IID)
	n.Say("Day 2: the race happens again: %s issue #%d: %s", res.Reports[0].Action, res.Reports[0].IID, strings.ReplaceAll(firstLines(strings.SplitN(notes[len(notes)-1].Body, "\n", 2)[1]), "\n", " / "))

	for _, day := range []string{"day-3", "day-4"} {
		res, err = file(day, nil)
		if err != nil {
			return err
		}
	}
	is, _ = gl.Issue(7, is.IID)
	n.Say("Days 3 and 4: a fix shipped and no race is seen; after the second run issue #%d is %s with labels %v.", is.IID, is.State, is.Labels)

	races, _, err = racesOfTheDay(ctx, bin)
	if err != nil {
		return err
	}
	res, err = file("day-5", races)
	if err != nil {
		return err
	}
	n.Say("Day 5: the fix did not hold; the race is back: %s issue #%d; there is still 1 race issue in the project.", res.Reports[0].Action, res.Reports[0].IID)
	return nil
}

// firstLines returns the first two lines of s, without a code fence.
func firstLines(s string) string {
	lines := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(s), "==================\nWARNING: DATA RACE\n"), "\n", 3)
	return strings.Join(lines[:min(2, len(lines))], "\n")
}

// buildRacy writes racyProgram into dir and builds it with -race.
func buildRacy(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module racy\n\ngo 1.26\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(racyProgram), 0o644); err != nil {
		return "", err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the racelog chapter builds a racy program and needs the go tool on PATH: %w", err)
	}
	bin := filepath.Join(dir, "racy")
	cmd := exec.CommandContext(ctx, gobin, "build", "-race", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=1", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -race (needs a C compiler for cgo): %v: %s", err, out)
	}
	return bin, nil
}

// appLog runs the racy program and returns its output as a syslog-style log
// would hold it, with another program's line interleaved.
func appLog(ctx context.Context, bin, host string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 66 {
		return nil, fmt.Errorf("racy program: want exit status 66 after a race, got %v: %s", err, stderr.Bytes())
	}
	var log bytes.Buffer
	fmt.Fprintf(&log, "Nov 22 04:00:00 %s app[4242]: level=info msg=started\n", host)
	for i, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		fmt.Fprintf(&log, "Nov 22 04:00:01 %s app[4242]: %s\n", host, line)
		if i == 5 {
			fmt.Fprintf(&log, "Nov 22 04:00:01 %s CRON[77]: (root) CMD (run-parts /etc/cron.hourly)\n", host)
		}
	}
	return log.Bytes(), nil
}
