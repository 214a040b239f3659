package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/racelog"
)

const testdata = "../../racelog/testdata/"

func runArgs(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func TestFlags(t *testing.T) {
	_, stderr, err := runArgs(t, "", "-h")
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, stderr, "Usage: race-report")
	bad := [][]string{
		{"-bogus", "x.log"},
		{"-dry-run"},
		{"x.log"}, // filing needs -gitlab-url and -project
		{"-dry-run", "-on-closed", "sometimes", "x.log"},
	}
	for _, args := range bad {
		_, _, err := runArgs(t, "", args...)
		assert.ErrorIs(t, err, errUsage, "run(%q) should exit 2", args)
	}
	_, _, err = runArgs(t, "", "-dry-run", "no-such.log")
	require.Error(t, err)
	assert.NotErrorIs(t, err, errUsage)
}

// TestDryRunJSON checks the contract: one JSON object per report with the
// documented fields, from files, .gz files and stdin.
func TestDryRunJSON(t *testing.T) {
	stdin, err := os.ReadFile(testdata + "cri.log")
	require.NoError(t, err)
	out, _, err := runArgs(t, string(stdin), "-dry-run", "-json", testdata+"plain.log.gz", "-", testdata+"truncated.log")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2+1+3, "one line per report:\n%s", out)
	var truncated int
	for i, l := range lines {
		var obj struct {
			Title       string `json:"title"`
			Function    string `json:"function"`
			Fingerprint string `json:"fingerprint"`
			Accesses    []struct {
				Kind      string `json:"kind"`
				Addr      string `json:"addr"`
				Goroutine string `json:"goroutine"`
				Frames    []struct {
					Func string `json:"func"`
					File string `json:"file"`
					Line int    `json:"line"`
				} `json:"frames"`
			} `json:"accesses"`
			Truncated *bool  `json:"truncated"`
			Text      string `json:"text"`
			Log       string `json:"log"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &obj), "line %d is one JSON object", i)
		assert.True(t, strings.HasPrefix(obj.Title, "Race condition in "), "line %d title %q", i, obj.Title)
		assert.NotEmpty(t, obj.Function)
		assert.Len(t, obj.Fingerprint, 16)
		require.NotEmpty(t, obj.Accesses)
		a := obj.Accesses[0]
		assert.NotEmpty(t, a.Kind)
		assert.True(t, strings.HasPrefix(a.Addr, "0x"))
		assert.NotEmpty(t, a.Goroutine)
		require.NotEmpty(t, a.Frames)
		assert.NotEmpty(t, a.Frames[0].Func)
		assert.NotEmpty(t, a.Frames[0].File)
		assert.Positive(t, a.Frames[0].Line)
		require.NotNil(t, obj.Truncated, "truncated is always present")
		if *obj.Truncated {
			truncated++
		}
		assert.Contains(t, obj.Text, "WARNING: DATA RACE")
		assert.NotEmpty(t, obj.Log)
	}
	assert.Equal(t, 2, truncated, "truncated.log has two cut reports")
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &first))
	assert.Equal(t, "-", first["log"], "the third report came from stdin")
}

func TestFileThroughGitLab(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(srv.Token()+"\n"), 0o600))
	common := []string{"-gitlab-url", srv.URL(), "-project", "ops/app", "-host", "test1", "-token-file", tokenFile}

	args := append(append([]string{}, common...), "-run-id", "day1", testdata+"plain.log", testdata+"syslog.log")
	out, stderr, err := runArgs(t, "", args...)
	require.NoError(t, err, "stderr: %s", stderr)
	assert.Equal(t, 2, strings.Count(out, "created #"), "two races, two issues:\n%s", out)
	assert.Contains(t, out, "(2 occurrences)", "each race is in both logs")
	assert.NotContains(t, stderr+out, srv.Token(), "the token never shows")
	issues := srv.Issues(7)
	require.Len(t, issues, 2)
	assert.Contains(t, issues[0].Description, "First seen: 2 occurrences on `test1` in `"+testdata+"plain.log`, `"+testdata+"syslog.log`.")

	// The same run again adds nothing; the next day comments once per race.
	_, _, err = runArgs(t, "", args...)
	require.NoError(t, err)
	for _, is := range srv.Issues(7) {
		assert.Empty(t, srv.Notes(7, gitlabtest.IssueNoteable, is.IID), "a re-run comments on issue %d", is.IID)
	}
	t.Setenv("RACE_TOKEN", srv.Token())
	args = []string{"-gitlab-url", srv.URL(), "-project", "7", "-token-env", "RACE_TOKEN", "-json", "-run-id", "day2", testdata + "plain.log.gz"}
	out, _, err = runArgs(t, "", args...)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(out, `"action":"commented"`), "JSON per filed race:\n%s", out)
	assert.Len(t, srv.Issues(7), 2)
	for _, is := range srv.Issues(7) {
		assert.Len(t, srv.Notes(7, gitlabtest.IssueNoteable, is.IID), 1)
	}

	// No token anywhere: an error naming where to put it, nothing filed.
	t.Setenv("GITLAB_TOKEN", "")
	_, _, err = runArgs(t, "", "-gitlab-url", srv.URL(), "-project", "7", testdata+"plain.log")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GITLAB_TOKEN")
	assert.False(t, errors.Is(err, errUsage))
}

func TestCustomMarkersAndClosedPolicy(t *testing.T) {
	out, _, err := runArgs(t, "", "-dry-run", "-start-marker", "###### RACE BEGIN", "-end-marker", "###### RACE END", testdata+"custom.log")
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(out, "Race condition in example.com/app/a.F()"), "custom markers:\n%s", out)
	out, _, err = runArgs(t, "", "-dry-run", testdata+"custom.log")
	require.NoError(t, err)
	assert.Empty(t, out, "with the default markers custom.log has no complete report")

	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	t.Setenv("GITLAB_TOKEN", srv.Token())
	base := []string{"-gitlab-url", srv.URL(), "-project", "7", "-on-closed", "new", "-labels", "bug, race"}
	_, _, err = runArgs(t, "", append(base, "-run-id", "d1", testdata+"old.log")...)
	require.NoError(t, err)
	issues := srv.Issues(7)
	require.Len(t, issues, 1)
	assert.ElementsMatch(t, []string{"bug", "race"}, issues[0].Labels)
	_, _, err = srv.Client().Issues.UpdateIssue(7, issues[0].IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	out, _, err = runArgs(t, "", append(base, "-run-id", "d2", testdata+"old.log")...)
	require.NoError(t, err)
	assert.Contains(t, out, "created #2")
	assert.Len(t, srv.Issues(7), 2, "-on-closed new files a second issue")
}

// TestOneRaceTwoShapes: counter++ printed as Read/Write and as Write/Write
// (real race-detector output) is one race: one issue listing two variants.
func TestOneRaceTwoShapes(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	t.Setenv("GITLAB_TOKEN", srv.Token())
	out, _, err := runArgs(t, "", "-dry-run", testdata+"counter.log")
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(out, "Race condition in main.inc()"), "two reports:\n%s", out)

	out, stderr, err := runArgs(t, "", "-gitlab-url", srv.URL(), "-project", "7", "-host", "test1", "-run-id", "d1", testdata+"counter.log")
	require.NoError(t, err, "stderr: %s", stderr)
	assert.Equal(t, "created #1 Race condition in main.inc() (2 occurrences)\n", out)
	issues := srv.Issues(7)
	require.Len(t, issues, 1)
	assert.Equal(t, "Race condition in main.inc()", issues[0].Title)
	assert.Regexp(t, "\nVariants: Read/Write 1 `[0-9a-f]{16}`, Write/Write 1 `[0-9a-f]{16}`.\n", issues[0].Description)
	for _, req := range srv.Requests() {
		assert.False(t, req.Query.Has("search"), "searched: %s?%s", req.Path, req.RawQuery)
	}
}

// TestCloseAfter: with -close-after 2 a race gone for two runs is closed,
// and reopened when it comes back.
func TestCloseAfter(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	t.Setenv("GITLAB_TOKEN", srv.Token())
	file := func(runID, log string) string {
		t.Helper()
		out, stderr, err := runArgs(t, "", "-gitlab-url", srv.URL(), "-project", "7", "-close-after", "2", "-run-id", runID, log)
		require.NoError(t, err, "stderr: %s", stderr)
		return out
	}
	file("d1", testdata+"old.log")
	file("d2", testdata+"counter.log")
	assert.NotContains(t, file("d2", testdata+"counter.log"), "closed", "a re-run counted as a run")
	out := file("d3", testdata+"counter.log")
	assert.Contains(t, out, "closed #1: not seen for 2 runs\n")
	is, ok := srv.Issue(7, 1)
	require.True(t, ok)
	assert.Equal(t, "closed", is.State)
	assert.Contains(t, is.Labels, "fixed?")
	assert.Contains(t, file("d4", testdata+"old.log"), "reopened #1")
}

// TestOldIssueReused: an issue that race-report filed under racelog's old
// fingerprint (today's variant) gets the comment; no second issue.
func TestOldIssueReused(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	t.Setenv("GITLAB_TOKEN", srv.Token())
	f, err := os.Open(testdata + "old.log")
	require.NoError(t, err)
	defer f.Close()
	reps, err := racelog.Parse(t.Context(), f)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.NotEqual(t, reps[0].Variant, reps[0].Fingerprint)
	old := srv.AddIssue(7, gitlabtest.Issue{
		Title:       reps[0].Title,
		Description: "<!-- opskit:fingerprint=" + reps[0].Variant + " --> <!-- opskit:run=d0 -->\nFirst seen: 1 occurrence.",
		Labels:      []string{"Race condition"},
		AuthorID:    srv.BotUser().ID,
	})
	out, stderr, err := runArgs(t, "", "-gitlab-url", srv.URL(), "-project", "7", "-run-id", "d1", testdata+"old.log")
	require.NoError(t, err, "stderr: %s", stderr)
	assert.Contains(t, out, fmt.Sprintf("commented #%d", old.IID))
	assert.Len(t, srv.Issues(7), 1)
}
