package gitlabx_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/racelog"
)

// fileRaces is the daily job of the README's racelog section: the lines
// between the markers are the README's snippet, which
// TestReadmeRacelogSnippet keeps identical.
func fileRaces(ctx context.Context, client *gitlab.Client, logs []string, host, today string) (gitlabx.RunResult, error) {
	// README racelog begin
	var races racelog.Collector // groups reports by fingerprint: one race, whatever its shape
	for _, path := range logs {
		f, err := os.Open(path) // plain or gzip
		if err != nil {
			return gitlabx.RunResult{}, err
		}
		err = races.Scan(ctx, f, racelog.Config{}, racelog.Sighting{Host: host, File: path})
		f.Close()
		if err != nil {
			return gitlabx.RunResult{}, err
		}
	}
	var reports []gitlabx.Report
	for _, rc := range races.Races() { // occurrences, first/last seen, variants, hosts, files
		reports = append(reports, gitlabx.RaceReport(rc))
	}
	// The reporter lists its label once per run and never searches;
	// optionally it closes what a week of daily runs did not see.
	reporter := gitlabx.NewReporter(client, "ops/app")
	reporter.CloseAfterRuns = 7
	return reporter.ReportRun(ctx, today, reports)
	// README racelog end
}

// The README's daily job on real race-detector output: counter++ printed
// as Read/Write and as Write/Write is one race, filed as one issue with two
// variants.
func ExampleRaceReport() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})

	res, err := fileRaces(context.Background(), srv.Client(), []string{"../racelog/testdata/counter.log"}, "test1", "2026-11-22")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range res.Reports {
		is, _ := srv.Issue(7, r.IID)
		fmt.Println(r.Action, is.Title)
		lines := strings.Split(is.Description, "\n")
		fmt.Println(lines[1])
		fmt.Println(lines[2])
	}
	// Output:
	// created Race condition in main.inc()
	// First seen: 2 occurrences on `test1` in `../racelog/testdata/counter.log`.
	// Variants: Read/Write 1 `f78cd46c74e701ee`, Write/Write 1 `94fc0c6b0dae2e46`.
}

// TestReadmeRacelogSnippet: the README's racelog snippet is fileRaces'
// body, so it compiles and ExampleRaceReport runs it.
func TestReadmeRacelogSnippet(t *testing.T) {
	src, err := os.ReadFile("readme_racelog_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "\t// README racelog begin\n")
	body, _, _ = strings.Cut(body, "\t// README racelog end\n")
	var want strings.Builder
	for line := range strings.Lines(body) {
		want.WriteString(strings.TrimPrefix(line, "\t"))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n### racelog\n")
	_, block, _ := strings.Cut(section, "```go\n")
	block, _, _ = strings.Cut(block, "```\n")
	// The snippet returns what the job returns; the README shows its result.
	got := strings.Replace(block, "res, err := reporter.ReportRun(", "return reporter.ReportRun(", 1)
	got = strings.ReplaceAll(got, "return err\n", "return gitlabx.RunResult{}, err\n")
	if got != want.String() {
		t.Errorf("README's racelog snippet differs from fileRaces in readme_racelog_test.go\nREADME:\n%s\nfileRaces:\n%s", block, want.String())
	}
}
