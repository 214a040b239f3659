// Command race-report finds Go race-detector reports in logs and files one
// GitLab issue per race: a new issue the first time, a comment on it when
// the race comes back. It is meant to run daily from cron or a systemd timer.
//
// Usage:
//
//	race-report [-dry-run] [-json] [GitLab flags] LOG...
//
// A LOG of "-" is standard input; gzip-compressed logs are recognised by
// their content (app.log.1.gz works as it is).
//
// With -dry-run nothing is filed: each report is printed, with -json as one
// JSON object per report (title, function, fingerprint, accesses, truncated,
// text, and the log it came from).
//
// Without -dry-run the reports are grouped by fingerprint (racelog.Collector:
// one race, whatever shapes its reports take) and each race is filed through
// gitlabx.IssueReporter.ReportRun in the project named by -project on
// -gitlab-url, with the variants seen and their counts. The reporter lists
// its own labelled issues once per run and never searches. The token is
// read from -token-file, or else from the environment variable named by
// -token-env (GITLAB_TOKEN); it is never a flag value. A re-run on the same
// day, host and logs adds no second comment (see -run-id). With
// -close-after N, an issue whose race was not seen in N consecutive runs is
// closed and labelled "fixed?"; it is reopened if the race comes back.
//
// With -metrics-file F.prom the run's figures (reports, races, issues by
// action, success, end time) are written to F in node_exporter's textfile
// format, whether the run succeeded or not.
package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/jobmetrics"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/observe"
	"github.com/opskit/opskit/racelog"
)

func main() {
	cli.Main("race-report", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	})
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

// config is what the flags say.
type config struct {
	dryRun, jsonOut, confidential bool
	closeAfter                    int
	quarantine                    string
	rate                          float64
	gitlabURL, project            string
	tokenFile, tokenEnv           string
	labels                        string
	onClosed                      string
	host, runID                   string
	startMarker, endMarker        string
	metricsFile                   string
	logs                          []string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := cli.NewFlagSet("race-report", stderr, "Usage: race-report [-dry-run] [-json] [GitLab flags] LOG...\n\n"+
		"Finds Go race-detector reports in LOGs (\"-\" is stdin, .gz is read compressed)\n"+
		"and files one GitLab issue per race, or comments on the one already filed.\n"+
		"The token comes from -token-file or $GITLAB_TOKEN, never from a flag value.\n\nFlags:\n")
	host, _ := os.Hostname()
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the reports; file nothing")
	fs.BoolVar(&c.jsonOut, "json", false, "print JSON: one object per report (with -dry-run) or per filed race")
	fs.StringVar(&c.gitlabURL, "gitlab-url", os.Getenv("GITLAB_URL"), "GitLab base `URL` (default $GITLAB_URL)")
	fs.StringVar(&c.project, "project", os.Getenv("GITLAB_PROJECT"), "GitLab project `ID or path` (group/name) to file issues in (default $GITLAB_PROJECT)")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the GitLab token (api scope) from `FILE`")
	fs.StringVar(&c.tokenEnv, "token-env", "GITLAB_TOKEN", "else read the GitLab token from this environment `variable`")
	fs.StringVar(&c.labels, "labels", gitlabx.DefaultReportLabel, "comma-separated `labels` for new issues; they also narrow the lookup")
	fs.StringVar(&c.onClosed, "on-closed", "reopen", "`mode` when the race's issue is closed: reopen it, or file a new one")
	fs.BoolVar(&c.confidential, "confidential", false, "file new issues as confidential")
	fs.IntVar(&c.closeAfter, "close-after", 0, "close an issue whose race was not seen in `N` consecutive runs (0: never)")
	fs.StringVar(&c.quarantine, "quarantine-label", "", "put this `label` on open race issues, remove it when closing")
	fs.Float64Var(&c.rate, "rate", 0, "at most this many GitLab API `requests` per second (0: no cap)")
	fs.StringVar(&c.host, "host", host, "host `name` the logs come from, listed in issues and comments")
	fs.StringVar(&c.runID, "run-id", "", "`ID` of this run; a comment with the same ID is not added twice (default: UTC date, host and log paths)")
	fs.StringVar(&c.startMarker, "start-marker", racelog.DefaultStartMarker, "line that starts a report")
	fs.StringVar(&c.endMarker, "end-marker", racelog.DefaultEndMarker, "line that ends a report")
	fs.StringVar(&c.metricsFile, "metrics-file", "", "write the run's metrics to this `file` (*.prom) for node_exporter's textfile collector")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	c.logs = fs.Args()
	if len(c.logs) == 0 {
		return c, cli.Usagef(fs, "name at least one LOG (\"-\" for stdin)")
	}
	if c.closeAfter < 0 || c.rate < 0 {
		return c, cli.Usagef(fs, "-close-after and -rate must not be negative")
	}
	if c.metricsFile != "" && !strings.HasSuffix(c.metricsFile, ".prom") {
		return c, cli.Usagef(fs, "-metrics-file must end in .prom")
	}
	if c.onClosed != "reopen" && c.onClosed != "new" {
		return c, cli.Usagef(fs, "-on-closed %q: want reopen or new", c.onClosed)
	}
	if !c.dryRun && (c.gitlabURL == "" || c.project == "") {
		return c, cli.Usagef(fs, "need -gitlab-url and -project (or -dry-run)")
	}
	return c, nil
}

// found is one report and the log it came from.
type found struct {
	racelog.Report
	Log string `json:"log"`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var stats jobmetrics.RaceRun
	if c.metricsFile != "" {
		defer func() {
			err = errors.Join(err, observe.WriteTextfile(c.metricsFile, jobmetrics.RaceReport(stats, err, time.Now())))
		}()
	}
	var token opskit.Secret
	if !c.dryRun {
		if token, err = readToken(c); err != nil {
			return err
		}
	}
	var races racelog.Collector
	enc := json.NewEncoder(stdout)
	for _, name := range c.logs {
		err := scan(ctx, name, stdin, c, func(r racelog.Report) error {
			stats.Reports++
			races.Add(r, racelog.Sighting{Host: c.host, File: name})
			if c.dryRun {
				if c.jsonOut {
					return enc.Encode(found{Report: r, Log: name})
				}
				_, err := fmt.Fprintf(stdout, "%s:%d: %s %s%s\n", name, r.Line, r.Fingerprint, r.Title, truncatedNote(r))
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	stats.Races = len(races.Races())
	if c.dryRun {
		return nil
	}
	client, err := gitlab.NewClient(token.Reveal(), gitlab.WithBaseURL(c.gitlabURL))
	if err != nil {
		return fmt.Errorf("gitlab client: %w", err)
	}
	return file(ctx, client, c, races.Races(), &stats.Filed, stdout, stderr)
}

func truncatedNote(r racelog.Report) string {
	if r.Truncated {
		return " (truncated)"
	}
	return ""
}

func readToken(c config) (opskit.Secret, error) {
	tok, err := opskit.SecretFromFileOrEnv(c.tokenFile, c.tokenEnv)
	if err != nil && c.tokenFile == "" {
		return "", fmt.Errorf("no GitLab token: set $%s or -token-file: %w", c.tokenEnv, err)
	}
	return tok, err
}

// scan calls fn for each report in the log called name ("-" is stdin).
func scan(ctx context.Context, name string, stdin io.Reader, c config, fn func(racelog.Report) error) error {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	s := racelog.NewScanner(r, racelog.Config{StartMarker: c.startMarker, EndMarker: c.endMarker})
	for s.Scan(ctx) {
		if err := fn(s.Report()); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// filed is what -json prints per race when filing.
type filed struct {
	Fingerprint string `json:"fingerprint"`
	Title       string `json:"title"`
	Occurrences int    `json:"occurrences"`
	Action      string `json:"action"`
	IID         int64  `json:"iid,omitempty"`
	URL         string `json:"url,omitempty"`
}

func file(ctx context.Context, client *gitlab.Client, c config, races []racelog.Race, ran *gitlabx.RunResult, stdout, stderr io.Writer) error {
	var project any = c.project
	if id, err := strconv.ParseInt(c.project, 10, 64); err == nil {
		project = id
	}
	rep := gitlabx.NewReporter(client, project)
	rep.Labels = splitList(c.labels)
	rep.Confidential = c.confidential
	rep.CloseAfterRuns = c.closeAfter
	rep.QuarantineLabel = c.quarantine
	rep.RequestsPerSecond = c.rate
	rep.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	if c.onClosed == "new" {
		rep.OnClosed = gitlabx.FileNewAfterClosed
	}
	reports := make([]gitlabx.Report, len(races))
	for i, rc := range races {
		reports[i] = gitlabx.RaceReport(rc)
	}
	res, runErr := rep.ReportRun(ctx, cmp.Or(c.runID, defaultRunID(c)), reports)
	*ran = res
	enc := json.NewEncoder(stdout)
	for i, r := range res.Reports {
		if r.Action == "" {
			continue // failed: in runErr
		}
		rc := races[i]
		var err error
		if c.jsonOut {
			err = enc.Encode(filed{r.Fingerprint, rc.Title, rc.Occurrences, string(r.Action), r.IID, r.WebURL})
		} else {
			_, err = fmt.Fprintf(stdout, "%s #%d %s (%d occurrences)\n", r.Action, r.IID, rc.Title, rc.Occurrences)
		}
		if err != nil {
			return err
		}
	}
	for _, r := range res.Closed {
		var err error
		if c.jsonOut {
			err = enc.Encode(filed{Fingerprint: r.Fingerprint, Action: string(r.Action), IID: r.IID, URL: r.WebURL})
		} else {
			_, err = fmt.Fprintf(stdout, "%s #%d: not seen for %d runs\n", r.Action, r.IID, c.closeAfter)
		}
		if err != nil {
			return err
		}
	}
	rep.Logger.Info("run filed", "races", len(races), "api_calls", res.APICalls)
	return runErr
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// defaultRunID names a run by UTC day, host and log paths, so that a re-run
// of the daily job adds no second comment.
func defaultRunID(c config) string {
	h := sha256.New()
	fmt.Fprintln(h, c.host)
	for _, l := range c.logs {
		if abs, err := filepath.Abs(l); err == nil && l != "-" {
			l = abs
		}
		fmt.Fprintln(h, l)
	}
	return time.Now().UTC().Format("2006-01-02") + "-" + hex.EncodeToString(h.Sum(nil)[:6])
}
