package gitlabx_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// races returns n distinct reports, as a run of race-report files them.
func races(n int) []gitlabx.Report {
	out := make([]gitlabx.Report, n)
	for i := range out {
		out[i] = gitlabx.Report{
			Title:       fmt.Sprintf("Race condition in example.com/app/pkg%d.F()", i),
			Fingerprint: fmt.Sprintf("%016x", 0xabc0000+i),
			Text:        "==================\nWARNING: DATA RACE\n==================\n",
			Occurrences: 2,
			Variants:    []gitlabx.ReportVariant{{Name: "Read/Write", Count: 1}, {Name: "Write/Write", Count: 1}},
			Hosts:       []string{"test1"},
		}
	}
	return out
}

// searchLimited makes every issue search answer 429, as GitLab.com does
// beyond about 30 searches a minute, and counts them.
func searchLimited(srv *gitlabtest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.FailWhen(func(r *http.Request) (int, bool) {
		if r.URL.Query().Has("search") {
			n.Add(1)
			return http.StatusTooManyRequests, true
		}
		return 0, false
	})
	return &n
}

// requestCounts sums the requests since the last reset by method.
func requestCounts(srv *gitlabtest.Server) (total, writes int, statuses []int) {
	for _, req := range srv.Requests() {
		total++
		if req.Method != http.MethodGet {
			writes++
		}
		if req.Status >= 400 && !slices.Contains(statuses, req.Status) {
			statuses = append(statuses, req.Status)
		}
	}
	srv.ResetRequests()
	return total, writes, statuses
}

// TestReporterSixtyRacesBoundedCalls files 60 distinct races in one run
// without a single search, then runs again.
func TestReporterSixtyRacesBoundedCalls(t *testing.T) {
	srv := newServer(t)
	searches := searchLimited(srv)
	reps := races(60)

	res, err := gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day1", reps)
	require.NoError(t, err)
	total, writes, statuses := requestCounts(srv)
	assert.Len(t, srv.Issues(project), 60)
	for i, rr := range res.Reports {
		assert.Equal(t, gitlabx.ReportCreated, rr.Action, "report %d", i)
	}
	assert.Zero(t, searches.Load(), "searches")
	assert.Empty(t, statuses, "error answers")
	assert.Equal(t, 60, writes, "writes: one create per race")
	assert.Equal(t, 62, total, "requests: GET /user, one page of issues, 60 creates")
	assert.Equal(t, total, res.APICalls)
	t.Logf("run 1 (60 new races): %d API calls", total)

	// The same run again (a new process): nothing is written.
	res, err = gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day1", reps)
	require.NoError(t, err)
	total, writes, _ = requestCounts(srv)
	assert.Zero(t, writes, "a re-run wrote")
	assert.Equal(t, 2, total, "re-run: GET /user, one page of issues")
	for _, rr := range res.Reports {
		assert.Equal(t, gitlabx.ReportUnchanged, rr.Action)
	}
	t.Logf("re-run of run 1: %d API calls", total)

	// The next day: one comment per race, no new issue.
	res, err = gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day2", reps)
	require.NoError(t, err)
	total, writes, statuses = requestCounts(srv)
	assert.Len(t, srv.Issues(project), 60)
	assert.Equal(t, 60, writes, "one comment per race")
	assert.Equal(t, 62, total, "GET /user, one page, 60 comments (no notes to look through yet)")
	assert.Empty(t, statuses)
	t.Logf("run 2 (60 known races): %d API calls", total)

	// Day 3: the notes are read to see whether this run commented.
	res, err = gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day3", reps)
	require.NoError(t, err)
	total, writes, _ = requestCounts(srv)
	assert.Equal(t, 60, writes)
	assert.Equal(t, 122, total, "GET /user, one page, per race: notes, comment")
	assert.Zero(t, searches.Load(), "searches")
	t.Logf("run 3 (60 known, commented races): %d API calls", total)
	for _, is := range srv.Issues(project) {
		assert.Len(t, srv.Notes(project, gitlabtest.IssueNoteable, is.IID), 2, "notes of #%d", is.IID)
	}
}

// TestReporterManyPages: 250 issues take three pages, listed once a run.
func TestReporterManyPages(t *testing.T) {
	srv := newServer(t)
	reps := races(250)
	r := gitlabx.NewReporter(srv.Client(), project)
	_, err := r.ReportRun(t.Context(), "day1", reps)
	require.NoError(t, err)
	srv.ResetRequests()
	res, err := gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day1", reps)
	require.NoError(t, err)
	total, writes, _ := requestCounts(srv)
	assert.Zero(t, writes)
	assert.Equal(t, 4, total, "GET /user and three pages")
	assert.Equal(t, 4, res.APICalls)
}

// TestReporterAutoClose: a race not seen for CloseAfterRuns runs is closed
// with a comment and the fixed? label; its return reopens it.
func TestReporterAutoClose(t *testing.T) {
	srv := newServer(t)
	all := races(3)
	run := func(id string, reps []gitlabx.Report) gitlabx.RunResult {
		t.Helper()
		r := gitlabx.NewReporter(srv.Client(), project)
		r.CloseAfterRuns = 2
		r.QuarantineLabel = "quarantine"
		res, err := r.ReportRun(t.Context(), id, reps)
		require.NoError(t, err, "run %s", id)
		return res
	}
	issueOf := func(i int) gitlabtest.Issue {
		t.Helper()
		for _, is := range srv.Issues(project) {
			if is.Title == all[i].Title {
				return is
			}
		}
		t.Fatalf("no issue for report %d", i)
		return gitlabtest.Issue{}
	}

	res := run("day1", all)
	assert.Empty(t, res.Closed)
	gone := issueOf(2)
	assert.Contains(t, gone.Labels, "quarantine", "an open issue is quarantined")

	res = run("day2", all[:2]) // race 2 not seen: 1 run
	assert.Empty(t, res.Closed, "closed after 1 run")
	res = run("day2", all[:2]) // a re-run counts no further run
	assert.Empty(t, res.Closed, "a re-run counted as a run")
	assert.Equal(t, "opened", issueOf(2).State)

	res = run("day3", all[:2]) // race 2 not seen: 2 runs
	require.Len(t, res.Closed, 1)
	assert.Equal(t, gone.IID, res.Closed[0].IID)
	assert.Equal(t, gitlabx.ReportClosed, res.Closed[0].Action)
	closed := issueOf(2)
	assert.Equal(t, "closed", closed.State)
	assert.Contains(t, closed.Labels, gitlabx.DefaultFixedLabel)
	assert.NotContains(t, closed.Labels, "quarantine")
	notes := srv.Notes(project, gitlabtest.IssueNoteable, gone.IID)
	require.NotEmpty(t, notes)
	assert.Contains(t, notes[len(notes)-1].Body, "Not seen in the last 2 runs")
	for i := range 2 {
		assert.Equal(t, "opened", issueOf(i).State, "race %d is still seen", i)
	}

	srv.ResetRequests()
	res = run("day3", all[:2]) // re-run of day 3: nothing more
	assert.Empty(t, res.Closed)
	_, writes, _ := requestCounts(srv)
	assert.Zero(t, writes, "a re-run of the closing run wrote")

	res = run("day4", all) // it came back
	assert.Equal(t, gitlabx.ReportReopened, res.Reports[2].Action)
	back := issueOf(2)
	assert.Equal(t, "opened", back.State)
	assert.NotContains(t, back.Labels, gitlabx.DefaultFixedLabel)
	assert.Contains(t, back.Labels, "quarantine")
	assert.Len(t, srv.Issues(project), 4, "three races and the ledger")

	// Off by default: nothing is closed and no ledger is written.
	srv2 := newServer(t)
	r := gitlabx.NewReporter(srv2.Client(), project)
	for _, day := range []string{"d1", "d2", "d3", "d4", "d5"} {
		reps := all
		if day != "d1" {
			reps = nil
		}
		res, err := r.ReportRun(t.Context(), day, reps)
		require.NoError(t, err)
		assert.Empty(t, res.Closed)
	}
	assert.Len(t, srv2.Issues(project), 3)
	for _, is := range srv2.Issues(project) {
		assert.Equal(t, "opened", is.State)
	}
}

// TestReporterOldFingerprintReused: an issue filed under a fingerprint of
// an older racelog (today's variant) or under a long fingerprint is found
// and reused, and carries today's marker from then on.
func TestReporterOldFingerprintReused(t *testing.T) {
	t.Run("variant alias", func(t *testing.T) {
		srv := newServer(t)
		old := srv.AddIssue(project, gitlabtest.Issue{
			Title:       "Race condition in main.inc()",
			Description: "<!-- opskit:fingerprint=b5de30aa6e91be3f --> <!-- opskit:run=day0 -->\nFirst seen: 1 occurrence.",
			Labels:      []string{gitlabx.DefaultReportLabel},
			AuthorID:    srv.BotUser().ID,
		})
		rep := gitlabx.Report{Title: "Race condition in main.inc()", Fingerprint: "1111222233334444", Aliases: []string{"b5de30aa6e91be3f", "5555666677778888"}}
		res, err := gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day1", []gitlabx.Report{rep})
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCommented, res.Reports[0].Action)
		assert.Equal(t, old.IID, res.Reports[0].IID)
		require.Len(t, srv.Issues(project), 1, "the old issue was not reused")
		assert.Contains(t, srv.Issues(project)[0].Description, "<!-- opskit:fingerprint=1111222233334444 -->")

		// Seen later only in another variant: found by today's marker.
		rep.Aliases = []string{"5555666677778888"}
		res, err = gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day2", []gitlabx.Report{rep})
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCommented, res.Reports[0].Action)
		assert.Len(t, srv.Issues(project), 1)
	})
	t.Run("fingerprint of 64 characters", func(t *testing.T) {
		srv := newServer(t)
		long := strings.Repeat("0123456789abcdef", 4)
		old := srv.AddIssue(project, gitlabtest.Issue{
			Title:       "check failed",
			Description: "<!-- opskit:fingerprint=" + long + " -->\nFirst seen: 1 occurrence.",
			Labels:      []string{gitlabx.DefaultReportLabel},
			AuthorID:    srv.BotUser().ID,
		})
		rep := gitlabx.Report{Title: "check failed", Fingerprint: long}
		res, err := gitlabx.NewReporter(srv.Client(), project).Report(t.Context(), rep)
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCommented, res.Action)
		assert.Equal(t, old.IID, res.IID)
		desc := srv.Issues(project)[0].Description
		short := gitlabx.MarkerValue(long)
		assert.Contains(t, desc, "<!-- opskit:fingerprint="+short+" -->")
		assert.LessOrEqual(t, len(short), 32)
	})
}

func TestMarkerValue(t *testing.T) {
	assert.Equal(t, "b5de30aa6e91be3f", gitlabx.MarkerValue("b5de30aa6e91be3f"))
	for _, fp := range []string{strings.Repeat("a", 33), "with-dash", "ümlaut", "a/b"} {
		v := gitlabx.MarkerValue(fp)
		assert.Len(t, v, 25, "MarkerValue(%q) = %q", fp, v)
		assert.Regexp(t, "^h[0-9a-f]{24}$", v)
	}
	assert.NotEqual(t, gitlabx.MarkerValue("with-dash"), gitlabx.MarkerValue("with_dash"))
}

func TestReporterTitleCut(t *testing.T) {
	srv := newServer(t)
	title := strings.Repeat("é", 300)
	res, err := gitlabx.NewReporter(srv.Client(), project).Report(t.Context(), gitlabx.Report{Title: title})
	require.NoError(t, err)
	is, ok := srv.Issue(project, res.IID)
	require.True(t, ok)
	assert.Equal(t, strings.Repeat("é", 255), is.Title, "title cut to GitLab's 255 characters")
}

// TestReporterHonours429: a 429 on the list is waited out as Retry-After
// says and the list is asked again; nothing is duplicated.
func TestReporterHonours429(t *testing.T) {
	srv := newServer(t)
	srv.SetRetryAfter(0)
	var n atomic.Int32
	srv.FailWhen(func(r *http.Request) (int, bool) {
		return http.StatusTooManyRequests, r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/issues") && n.Add(1) == 1
	})
	r := gitlabx.NewReporter(srv.Client(), project)
	r.RetryWait = time.Hour // the 429's Retry-After: 0 takes its place
	res, err := r.ReportRun(t.Context(), "day1", races(2))
	require.NoError(t, err)
	assert.Equal(t, int32(2), n.Load(), "list attempts")
	assert.Len(t, srv.Issues(project), 2)
	assert.Equal(t, 5, res.APICalls, "GET /user, 429, list, 2 creates")
}

// TestReporterSixtyRacesWithAutoClose: the ledger costs one request a run
// (two on the first), nothing on a re-run.
func TestReporterSixtyRacesWithAutoClose(t *testing.T) {
	srv := newServer(t)
	searches := searchLimited(srv)
	reps := races(60)
	run := func(id string, reps []gitlabx.Report) (int, int) {
		t.Helper()
		r := gitlabx.NewReporter(srv.Client(), project)
		r.CloseAfterRuns = 3
		res, err := r.ReportRun(t.Context(), id, reps)
		require.NoError(t, err)
		total, writes, statuses := requestCounts(srv)
		assert.Empty(t, statuses, "run %s: error answers", id)
		assert.Equal(t, total, res.APICalls)
		t.Logf("CloseAfterRuns 3, run %s with %d races: %d API calls, %d writes, %d closed", id, len(reps), total, writes, len(res.Closed))
		return total, writes
	}
	total, writes := run("day1", reps)
	assert.Equal(t, 64, total, "GET /user, one page, 60 creates, ledger create and close")
	assert.Equal(t, 62, writes)
	total, writes = run("day1", reps)
	assert.Equal(t, 2, total, "re-run: GET /user, one page")
	assert.Zero(t, writes)
	total, _ = run("day2", reps)
	assert.Equal(t, 63, total, "GET /user, one page, 60 comments, ledger update")
	run("day3", nil)
	run("day4", nil)
	total, writes = run("day5", nil)
	assert.Equal(t, 3+2*60, total, "GET /user, one page, per race a comment and a close, ledger update")
	assert.Equal(t, 121, writes)
	for _, is := range srv.Issues(project) {
		assert.Equal(t, "closed", is.State, "#%d %s", is.IID, is.Title)
	}
	assert.Zero(t, searches.Load())
}
