package gitlabx_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

const project = 7

func newServer(t *testing.T) *gitlabtest.Server {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: project, Path: "ops/app"})
	return srv
}

func raceReport(runID string) gitlabx.Report {
	return gitlabx.Report{
		Title:       "Race condition in example.com/app/cache.(*Cache).Set()",
		Fingerprint: "b5de30aa6e91be3f",
		Text:        "==================\nWARNING: DATA RACE\nWrite at 0x00c0000a4010 by goroutine 8:\n  example.com/app/cache.(*Cache).Set()\n==================\n",
		Occurrences: 2,
		Hosts:       []string{"web1", "web2"},
		LogFiles:    []string{"/var/log/app.log"},
		RunID:       runID,
	}
}

func TestReporterFilesIssue(t *testing.T) {
	srv := newServer(t)
	r := gitlabx.NewReporter(srv.Client(), project)
	res, err := r.Report(t.Context(), gitlabx.Report{Title: "data race in cache"})
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCreated, res.Action)
	assert.Len(t, res.Fingerprint, 16, "fingerprint derived from the title")
	got := srv.Issues(project)
	require.Len(t, got, 1, "Issues after Report")
	assert.Equal(t, "data race in cache", got[0].Title)
	assert.Equal(t, []string{gitlabx.DefaultReportLabel}, got[0].Labels)
	assert.Equal(t, got[0].IID, res.IID)

	// No fingerprint: the title's hash is used, so the same title comments.
	res, err = r.Report(t.Context(), gitlabx.Report{Title: "data race in cache"})
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCommented, res.Action)
	assert.Len(t, srv.Issues(project), 1)
}

// TestReporterLifecycle walks one fingerprint through the runs of a daily job.
func TestReporterLifecycle(t *testing.T) {
	srv := newServer(t)
	r := gitlabx.NewReporter(srv.Client(), project)
	ctx := t.Context()

	res, err := r.Report(ctx, raceReport("day1"))
	require.NoError(t, err)
	require.Equal(t, gitlabx.ReportCreated, res.Action)
	issues := srv.Issues(project)
	require.Len(t, issues, 1)
	is := issues[0]
	assert.Equal(t, "Race condition in example.com/app/cache.(*Cache).Set()", is.Title)
	assert.Contains(t, is.Description, "<!-- opskit:fingerprint=b5de30aa6e91be3f -->")
	assert.Contains(t, is.Description, "```text\n==================\nWARNING: DATA RACE\n", "report text in a code block")
	assert.Contains(t, is.Description, "First seen: 2 occurrences on `web1`, `web2` in `/var/log/app.log`.")
	assert.Empty(t, srv.Notes(project, gitlabtest.IssueNoteable, is.IID), "a new issue gets no comment")

	// A re-run of day 1 neither comments nor files again.
	res, err = r.Report(ctx, raceReport("day1"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportUnchanged, res.Action)
	assert.Empty(t, srv.Notes(project, gitlabtest.IssueNoteable, is.IID), "a re-run of the filing run comments")

	res, err = r.Report(ctx, raceReport("day2"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCommented, res.Action)
	assert.Equal(t, is.IID, res.IID)
	notes := srv.Notes(project, gitlabtest.IssueNoteable, is.IID)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0].Body, "Seen again: 2 occurrences on `web1`, `web2` in `/var/log/app.log`.")

	// A re-run of day 2 adds nothing.
	res, err = r.Report(ctx, raceReport("day2"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportUnchanged, res.Action)
	assert.Len(t, srv.Notes(project, gitlabtest.IssueNoteable, is.IID), 1)
	assert.Len(t, srv.Issues(project), 1)

	// Another race gets its own issue.
	other := raceReport("day2")
	other.Fingerprint, other.Title = "0123456789abcdef", "Race condition in example.com/app/db.Open()"
	res, err = r.Report(ctx, other)
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCreated, res.Action)
	assert.Len(t, srv.Issues(project), 2)
}

func closeIssue(t *testing.T, srv *gitlabtest.Server, iid int64) {
	t.Helper()
	_, _, err := srv.Client().Issues.UpdateIssue(project, iid, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
}

func TestReporterClosedIssue(t *testing.T) {
	tests := []struct {
		name       string
		policy     gitlabx.ClosedPolicy
		wantAction gitlabx.ReportAction
		wantIssues int
	}{
		{"reopen", gitlabx.ReopenClosed, gitlabx.ReportReopened, 1},
		{"file new", gitlabx.FileNewAfterClosed, gitlabx.ReportCreated, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			r := gitlabx.NewReporter(srv.Client(), project)
			r.OnClosed = tt.policy
			first, err := r.Report(t.Context(), raceReport("day1"))
			require.NoError(t, err)
			closeIssue(t, srv, first.IID)

			// A re-run of day 1 after the fix changes nothing.
			res, err := r.Report(t.Context(), raceReport("day1"))
			require.NoError(t, err)
			assert.Equal(t, gitlabx.ReportUnchanged, res.Action)
			require.Len(t, srv.Issues(project), 1)
			assert.Equal(t, "closed", srv.Issues(project)[0].State, "a re-run reopened the issue")

			res, err = r.Report(t.Context(), raceReport("day2"))
			require.NoError(t, err)
			assert.Equal(t, tt.wantAction, res.Action)
			issues := srv.Issues(project)
			require.Len(t, issues, tt.wantIssues)
			open := 0
			for _, is := range issues {
				if is.State == "opened" {
					open++
					assert.Equal(t, res.IID, is.IID, "the open issue is the one reported")
				}
			}
			assert.Equal(t, 1, open, "exactly one open issue for the race")
			if tt.policy == gitlabx.FileNewAfterClosed {
				assert.Contains(t, issues[1].Description, "came back after #1 was closed")
				assert.Equal(t, "closed", issues[0].State)
			} else {
				assert.Len(t, srv.Notes(project, gitlabtest.IssueNoteable, first.IID), 1)
			}

			// The next day goes to the open issue.
			res, err = r.Report(t.Context(), raceReport("day3"))
			require.NoError(t, err)
			assert.Equal(t, gitlabx.ReportCommented, res.Action)
			assert.Len(t, srv.Issues(project), tt.wantIssues)
		})
	}
}

// TestReporterListsByOwnLabel: the reporter finds its issues by listing
// its own label (Labels[0]) once, never by searching.
func TestReporterListsByOwnLabel(t *testing.T) {
	srv := newServer(t)
	r := gitlabx.NewReporter(srv.Client(), project)
	r.Labels = []string{"race", "bug"}
	_, err := r.Report(t.Context(), raceReport("day1"))
	require.NoError(t, err)
	issues := srv.Issues(project)
	require.Len(t, issues, 1)
	assert.ElementsMatch(t, []string{"bug", "race"}, issues[0].Labels)
	var lookups int
	for _, req := range srv.Requests() {
		assert.False(t, req.Query.Has("search"), "%s %s?%s searches", req.Method, req.Path, req.RawQuery)
		if req.Method == http.MethodGet && strings.HasSuffix(req.Path, "/issues") {
			lookups++
			assert.Equal(t, "race", req.Query.Get("labels"), "lookup lists the reporter's label")
			assert.Equal(t, "all", req.Query.Get("state"))
			assert.Equal(t, "1", req.Query.Get("author_id"), "lookup lists the bot's own issues")
		}
	}
	assert.Equal(t, 1, lookups)

	// Someone changes the other labels: it is still found, no duplicate.
	_, _, err = srv.Client().Issues.UpdateIssue(project, issues[0].IID, &gitlab.UpdateIssueOptions{Labels: &gitlab.LabelOptions{"race", "triaged"}})
	require.NoError(t, err)
	res, err := r.Report(t.Context(), raceReport("day2"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCommented, res.Action)
	assert.Len(t, srv.Issues(project), 1)
}

// TestHardening14ReporterIgnoresPlantedMarker: a project member pastes the
// reporter's hidden markers into an issue and a note of their own. The
// reporter neither adopts nor edits that issue, and a planted run marker
// does not make it skip its comment.
func TestHardening14ReporterIgnoresPlantedMarker(t *testing.T) {
	srv := newServer(t)
	planted := srv.AddIssue(project, gitlabtest.Issue{
		Title:       "Race condition in example.com/app/cache.(*Cache).Set()",
		Description: "<!-- opskit:fingerprint=b5de30aa6e91be3f --> <!-- opskit:run=day0 -->\nFirst seen: 1 occurrence.",
		Labels:      []string{gitlabx.DefaultReportLabel},
		AuthorID:    srv.Developer().ID,
	})
	r := gitlabx.NewReporter(srv.Client(), project)
	res, err := r.Report(t.Context(), raceReport("day1"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCreated, res.Action, "the planted issue was adopted")
	assert.NotEqual(t, planted.IID, res.IID)
	after, ok := srv.Issue(project, planted.IID)
	require.True(t, ok)
	assert.Equal(t, planted.Description, after.Description, "the planted issue was edited")
	assert.Equal(t, "opened", after.State)
	assert.Empty(t, srv.Notes(project, gitlabtest.IssueNoteable, planted.IID), "the planted issue was commented")

	// A planted note with day 2's run marker on the reporter's own issue.
	srv.AddNote(project, gitlabtest.IssueNoteable, res.IID, gitlabtest.Note{
		Body: "<!-- opskit:fingerprint=b5de30aa6e91be3f --> <!-- opskit:run=day2 -->", AuthorID: srv.Developer().ID,
	})
	res2, err := r.Report(t.Context(), raceReport("day2"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCommented, res2.Action, "a planted run marker suppressed the comment")
	assert.Equal(t, res.IID, res2.IID)
}

func TestReporterIgnoresIssuesWithoutMarker(t *testing.T) {
	srv := newServer(t)
	// A person pasted the fingerprint into an issue of their own.
	srv.AddIssue(project, gitlabtest.Issue{Title: "notes", Description: "see b5de30aa6e91be3f", Labels: []string{gitlabx.DefaultReportLabel}, AuthorID: srv.BotUser().ID})
	r := gitlabx.NewReporter(srv.Client(), project)
	res, err := r.Report(t.Context(), raceReport("day1"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCreated, res.Action)
	assert.Len(t, srv.Issues(project), 2)
}

// loseFirst makes the first call to method .../suffix apply and then answer
// 502, as a proxy that timed out after GitLab committed does.
func loseFirst(srv *gitlabtest.Server, method, suffix string) {
	var n atomic.Int32
	srv.FailAfterApplyWhen(func(r *http.Request) (int, bool) {
		return http.StatusBadGateway, r.Method == method && strings.HasSuffix(r.URL.Path, suffix) && n.Add(1) == 1
	})
}

func TestReporterNoDuplicatesUnderRetries(t *testing.T) {
	t.Run("create answered 502 after it was applied", func(t *testing.T) {
		srv := newServer(t)
		loseFirst(srv, http.MethodPost, "/issues")
		// srv.Client keeps client-go's default retries (with a fast back-off).
		r := gitlabx.NewReporter(srv.Client(), project)
		res, err := r.Report(t.Context(), raceReport("day1"))
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCreated, res.Action)
		assert.Len(t, srv.Issues(project), 1, "issues after a lost answer")
	})
	t.Run("comment answered 502 after it was applied", func(t *testing.T) {
		srv := newServer(t)
		first, err := gitlabx.NewReporter(srv.Client(), project).Report(t.Context(), raceReport("day1"))
		require.NoError(t, err)
		loseFirst(srv, http.MethodPost, "/notes")
		r := gitlabx.NewReporter(srv.Client(), project)
		res, err := r.Report(t.Context(), raceReport(""))
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCommented, res.Action)
		assert.Len(t, srv.Notes(project, gitlabtest.IssueNoteable, first.IID), 1, "notes after a lost answer")
	})
	t.Run("create refused with 500 before it was applied", func(t *testing.T) {
		srv := newServer(t)
		var n atomic.Int32
		srv.FailWhen(func(r *http.Request) (int, bool) {
			return http.StatusInternalServerError, r.Method == http.MethodPost && n.Add(1) == 1
		})
		r := gitlabx.NewReporter(srv.Client(), project)
		r.RetryWait = time.Millisecond
		res, err := r.Report(t.Context(), raceReport("day1"))
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCreated, res.Action)
		assert.Len(t, srv.Issues(project), 1)
	})
	t.Run("GitLab down for every write", func(t *testing.T) {
		srv := newServer(t)
		srv.FailWhen(func(r *http.Request) (int, bool) { return http.StatusServiceUnavailable, r.Method == http.MethodPost })
		r := gitlabx.NewReporter(srv.Client(), project)
		r.RetryWait = time.Millisecond
		_, err := r.Report(t.Context(), raceReport("day1"))
		var er *gitlab.ErrorResponse
		require.ErrorAs(t, err, &er)
		assert.Equal(t, http.StatusServiceUnavailable, er.Response.StatusCode)
		assert.Empty(t, srv.Issues(project))
		var posts int
		for _, req := range srv.Requests() {
			if req.Method == http.MethodPost {
				posts++
			}
		}
		assert.Equal(t, 3, posts, "one POST per write attempt, no client-go retries on top")
	})
}

// cancelOnWait cancels when the reporter logs that it waits before a retry.
type cancelOnWait struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnWait) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnWait) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, "waiting before") {
		h.cancel()
	}
	return nil
}

func TestReporterCancelDuringRetryWait(t *testing.T) {
	srv := newServer(t)
	srv.FailWhen(func(r *http.Request) (int, bool) { return http.StatusServiceUnavailable, r.Method == http.MethodPost })
	ctx, cancel := context.WithCancel(t.Context())
	r := gitlabx.NewReporter(srv.Client(), project)
	r.RetryWait = time.Hour // a wait that ignored ctx would hang the test
	r.Logger = slog.New(cancelOnWait{cancel: cancel})
	_, err := r.Report(ctx, raceReport("day1"))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, srv.Issues(project))
}

func TestReporterBadInput(t *testing.T) {
	srv := newServer(t)
	r := gitlabx.NewReporter(srv.Client(), project)
	_, err := r.Report(t.Context(), gitlabx.Report{Title: "  "})
	assert.ErrorIs(t, err, gitlabx.ErrReportTitle)
	_, err = r.Report(t.Context(), gitlabx.Report{Title: "x", Fingerprint: "a b"})
	assert.ErrorIs(t, err, gitlabx.ErrReportFingerprint)

	_, err = gitlabx.NewReporter(srv.Client(), 999).Report(t.Context(), raceReport("x"))
	assert.ErrorIs(t, err, gitlab.ErrNotFound, "unknown project")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = r.Report(ctx, raceReport("x"))
	assert.True(t, errors.Is(err, context.Canceled), "cancelled: %v", err)
	assert.Empty(t, srv.Issues(project))

	// A report text with a code fence of its own stays one code block.
	rep := raceReport("y")
	rep.Text = "a\n```\nb\n"
	_, err = r.Report(t.Context(), rep)
	require.NoError(t, err)
	assert.Contains(t, srv.Issues(project)[0].Description, "````text\na\n```\nb\n````")
}

func TestReporterByProjectPath(t *testing.T) {
	srv := newServer(t)
	res, err := gitlabx.NewReporter(srv.Client(), "ops/app").Report(t.Context(), raceReport("day1"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCreated, res.Action)
	assert.Len(t, srv.Issues(project), 1)
}
