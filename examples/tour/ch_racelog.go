package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/racelog"
)

// racelogChapter is the tour's racelog chapter.
func racelogChapter() chapter {
	return chapter{
		name:    "racelog",
		summary: "find a real data race in a log and file it once",
		run:     runRacelog,
	}
}

// racyProgram writes a map from two goroutines without a lock. Both accesses
// are writes, so every run prints the same kind of report.
const racyProgram = `package main

var seen = map[string]int{}

func remember(k string) { seen[k] = len(k) }

func main() {
	done := make(chan bool)
	go func() { remember("a"); done <- true }()
	remember("b")
	<-done
}
`

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
	n.Say("A tiny program that writes a map from two goroutines is built with go build -race (the first build compiles the race runtime, later ones come from the build cache).")

	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	reporter := gitlabx.NewReporter(gl.Client(), 7)
	n.Say("A fake GitLab holds ops/app; a gitlabx.IssueReporter files races there, labelled %q.", gitlabx.DefaultReportLabel)

	var first racelog.Report
	for day := 1; day <= 3; day++ {
		log, err := appLog(ctx, bin)
		if err != nil {
			return err
		}
		reps, err := racelog.Parse(ctx, bytes.NewReader(log))
		if err != nil {
			return err
		}
		if len(reps) != 1 {
			return fmt.Errorf("day %d: found %d race reports in the log, want 1", day, len(reps))
		}
		r := reps[0]
		if day == 1 {
			first = r
			n.Say("Day 1: the test instance runs it; its syslog-style log (with a cron line in the middle) holds %d race report.", len(reps))
			n.Say("racelog learned the prefix %q from the marker line and stripped it.", r.Prefix)
			n.Say("Function (first frame, as printed): %s", r.Function)
			n.Say("Title (first application frame):    %s", r.Title)
			n.Say("Fingerprint (no addresses, goroutine IDs, paths or lines): %s", r.Fingerprint)
		} else if r.Fingerprint != first.Fingerprint {
			return fmt.Errorf("day %d: fingerprint %s differs from day 1's %s", day, r.Fingerprint, first.Fingerprint)
		}
		res, err := reporter.Report(ctx, gitlabx.Report{
			Title:       r.Title,
			Fingerprint: r.Fingerprint,
			Text:        r.Text,
			Occurrences: len(reps),
			Hosts:       []string{"test1"},
			LogFiles:    []string{"/var/log/app.log"},
			RunID:       fmt.Sprintf("day-%d", day),
		})
		if err != nil {
			return err
		}
		switch day {
		case 1:
			n.Say("Day 1: the daily job reports it: %s issue #%d %q.", res.Action, res.IID, gl.Issues(7)[0].Title)
			res, err = reporter.Report(ctx, gitlabx.Report{Title: r.Title, Fingerprint: r.Fingerprint, Text: r.Text, RunID: "day-1"})
			if err != nil {
				return err
			}
			n.Say("Day 1, the job run again by hand: %s (no second issue, no comment).", res.Action)
		case 2:
			n.Say("Day 2: the race happens again with the same fingerprint: %s issue #%d.", res.Action, res.IID)
			notes := gl.Notes(7, gitlabtest.IssueNoteable, res.IID)
			n.Say("The comment says: %s", lastLine(notes[len(notes)-1].Body))
			if err := closeIssue(ctx, gl, res.IID); err != nil {
				return err
			}
			n.Say("A developer closes issue #%d as fixed, but the fix never shipped.", res.IID)
		case 3:
			n.Say("Day 3: the race is back: %s issue #%d; there is still %d issue in the project.", res.Action, res.IID, len(gl.Issues(7)))
		}
	}
	return nil
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
func appLog(ctx context.Context, bin string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 66 {
		return nil, fmt.Errorf("racy program: want exit status 66 after a race, got %v: %s", err, stderr.Bytes())
	}
	var log bytes.Buffer
	log.WriteString("Nov 22 04:00:00 test1 app[4242]: level=info msg=started\n")
	for i, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		fmt.Fprintf(&log, "Nov 22 04:00:01 test1 app[4242]: %s\n", line)
		if i == 5 {
			log.WriteString("Nov 22 04:00:01 test1 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)\n")
		}
	}
	return log.Bytes(), nil
}

func closeIssue(ctx context.Context, gl *gitlabtest.Server, iid int64) error {
	_, _, err := gl.Client().Issues.UpdateIssue(7, iid, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")}, gitlab.WithContext(ctx))
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
