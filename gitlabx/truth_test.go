package gitlabx_test

// Tests of issue 15 (GitLab truth): the SDK's readers and writers hold
// under the behaviours gitlabtest copies from GitLab (system notes in note
// lists, the search rate limit, long words not indexed).

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/racelog"
)

// searchesAndLimits returns the recorded requests that carried a search
// and the ones answered 429.
func searchesAndLimits(srv *gitlabtest.Server) (searches, limited int) {
	for _, req := range srv.Requests() {
		if req.Query.Has("search") {
			searches++
		}
		if req.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	return searches, limited
}

// TestTruth15ReporterSkipsSystemNotes: GitLab lists system notes among an
// issue's notes, authored by whoever caused them, which can be the
// reporter's own user. A system note carrying this run's marker is not the
// run's comment; neither is another user's note.
func TestTruth15ReporterSkipsSystemNotes(t *testing.T) {
	srv := newServer(t)
	r := gitlabx.NewReporter(srv.Client(), project)
	res, err := r.Report(t.Context(), raceReport("day1"))
	require.NoError(t, err)
	res, err = r.Report(t.Context(), raceReport("day2")) // a user note, so day 3 reads the notes
	require.NoError(t, err)
	require.Equal(t, gitlabx.ReportCommented, res.Action)

	day3 := "<!-- opskit:fingerprint=b5de30aa6e91be3f --> <!-- opskit:run=day3 -->"
	srv.AddNote(project, gitlabtest.IssueNoteable, res.IID, gitlabtest.Note{
		Body: "changed the description " + day3, AuthorID: srv.BotUser().ID, System: true,
	})
	srv.AddNote(project, gitlabtest.IssueNoteable, res.IID, gitlabtest.Note{Body: day3, AuthorID: srv.Developer().ID})
	res3, err := r.Report(t.Context(), raceReport("day3"))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.ReportCommented, res3.Action, "a system note or another user's note counted as this run's comment")
	var own int
	for _, n := range srv.Notes(project, gitlabtest.IssueNoteable, res.IID) {
		if n.AuthorID == srv.BotUser().ID && !n.System && strings.Contains(n.Body, "opskit:run=day3") {
			own++
		}
	}
	assert.Equal(t, 1, own, "the reporter's own day 3 comments")
}

// TestTruth15VersionCheckSkipsSystemNotes: a system note carrying the
// check's marker, even one attributed to the check's own user (GitLab
// attributes system notes to the user whose action caused them), is not
// the check's note: it is neither taken as "unchanged" nor edited.
func TestTruth15VersionCheckSkipsSystemNotes(t *testing.T) {
	srv, mr := fakeRepo(t, "1.3.0")
	sys := srv.AddNote(proj, gitlabtest.MergeRequestNoteable, mr.IID, gitlabtest.Note{
		Body:     "<!-- opskit:version-check=version -->\n:warning: **Version mismatch** in `VERSION`: source branch `feature` has `1.3.0`, target branch `main` has `1.2.3`.",
		AuthorID: srv.BotUser().ID, System: true,
	})
	// A real system note: a developer puts the marker into the MR's title.
	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	_, _, err := dev.MergeRequests.UpdateMergeRequest(proj, mr.IID, &gitlab.UpdateMergeRequestOptions{
		Title: gitlab.Ptr("Fix login <!-- opskit:version-check=version -->"),
	})
	require.NoError(t, err)

	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	res, err := v.Check(t.Context(), mrRef(mr))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.NoteCreated, res.Note, "a system note was taken as the check's note")
	assert.NotEqual(t, sys.ID, res.NoteID)
	for _, n := range srv.Notes(proj, gitlabtest.MergeRequestNoteable, mr.IID) {
		if n.ID == sys.ID {
			assert.Equal(t, sys.Body, n.Body, "the system note was edited")
		}
	}
	res, err = v.Check(t.Context(), mrRef(mr))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.NoteUnchanged, res.Note)
}

// TestTruth15VersionCheckNeverSearches: the check finds its note among
// the MR's own notes; no request of a check carries a search, so GitLab's
// search rate limit (30 a minute per user) never answers it 429, even for
// 40 merge requests checked in a row.
func TestTruth15VersionCheckNeverSearches(t *testing.T) {
	srv, first := fakeRepo(t, "1.3.0")
	mrs := []gitlabtest.MergeRequest{first}
	for range 39 {
		mrs = append(mrs, srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Title: "more", SourceBranch: "feature", TargetBranch: "main", AuthorID: 42}))
	}
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	for round := range 2 { // created, then unchanged
		for _, mr := range mrs {
			res, err := v.Check(t.Context(), mrRef(mr))
			require.NoError(t, err)
			if round == 0 {
				assert.Equal(t, gitlabx.NoteCreated, res.Note)
			} else {
				assert.Equal(t, gitlabx.NoteUnchanged, res.Note)
			}
		}
	}
	searches, limited := searchesAndLimits(srv)
	assert.Zero(t, searches, "requests with search")
	assert.Zero(t, limited, "429 answers")
	for _, req := range srv.Requests() {
		if strings.HasSuffix(req.Path, "/issues") || strings.HasSuffix(req.Path, "/merge_requests") {
			t.Errorf("the check listed issues or merge requests: %s %s?%s", req.Method, req.Path, req.RawQuery)
		}
	}
}

// TestTruth15FortyReportsUnderSearchLimit: 40 reports in one run, under
// the fake's real search rate limit (GitLab.com's 30 a minute), make no
// search and get no 429: on the first run (40 creates, half of them
// answered 502 after GitLab stored them, so the reporter has to look for
// what it wrote), on the next (40 comments) and on the one after (which
// reads each issue's notes), and when each report is filed on its own.
func TestTruth15FortyReportsUnderSearchLimit(t *testing.T) {
	srv := gitlabtest.NewServer(t, gitlabtest.WithSearchRateLimit(30))
	srv.AddProject(gitlabtest.Project{ID: project, Path: "ops/app"})
	var creates atomic.Int32
	srv.FailAfterApplyWhen(func(r *http.Request) (int, bool) {
		return http.StatusBadGateway, r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issues") && creates.Add(1)%2 == 1
	})
	reps := races(40)
	r := gitlabx.NewReporter(srv.Client(), project)

	for _, run := range []string{"day1", "day2", "day3"} {
		res, err := r.ReportRun(t.Context(), run, reps)
		require.NoError(t, err, run)
		for i, rr := range res.Reports {
			want := gitlabx.ReportCommented
			if run == "day1" {
				want = gitlabx.ReportCreated
			}
			assert.Equal(t, want, rr.Action, "%s report %d", run, i)
		}
	}
	for i := range reps {
		rep := reps[i]
		rep.RunID = "day4"
		res, err := r.Report(t.Context(), rep)
		require.NoError(t, err)
		assert.Equal(t, gitlabx.ReportCommented, res.Action)
	}
	assert.Len(t, srv.Issues(project), 40, "issues: one per race, none duplicated by the lost answers")
	assert.Equal(t, int32(40), creates.Load(), "create requests")
	searches, limited := searchesAndLimits(srv)
	assert.Zero(t, searches, "requests with search")
	assert.Zero(t, limited, "429 answers")

	// The limit is real: 31 searches in a row by the same user get a 429.
	c := srv.Client(gitlab.WithCustomRetryMax(0))
	var got429 bool
	for range 31 {
		_, resp, err := c.Issues.ListProjectIssues(project, &gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("race")})
		if err != nil && resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			got429 = true
		}
	}
	assert.True(t, got429, "the fake's search limit did not apply")
}

// TestTruth15LongFingerprint: GitLab's full-text search drops words of 50
// characters or more, so the reporter keeps markers short (MarkerValue:
// at most 32 characters) and never searches for them. An issue filed
// under a 64-character fingerprint, whether in the old long marker or in
// the short hashed one, is found and reused, not filed again: under the
// fingerprint itself and when the fingerprint is now an alias of a new one.
func TestTruth15LongFingerprint(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 4)
	require.Len(t, long, 64)
	assert.LessOrEqual(t, len(gitlabx.MarkerValue(long)), 32)
	// racelog's fingerprints and variant IDs (the aliases) are kept as
	// they are: short words.
	acc := []racelog.Access{{Kind: "Write", Frames: []racelog.Frame{{Func: "main.inc()", File: "/src/main.go"}}}}
	for _, fp := range []string{racelog.Fingerprint(acc), racelog.Variant(acc)} {
		assert.Equal(t, fp, gitlabx.MarkerValue(fp))
		assert.LessOrEqual(t, len(fp), 32)
	}

	for _, tc := range []struct {
		name   string
		marker string // the marker value the old issue carries
		rep    gitlabx.Report
	}{
		{"long marker, same fingerprint", long, gitlabx.Report{Title: "check failed", Fingerprint: long}},
		{"long marker, fingerprint now an alias", long, gitlabx.Report{Title: "check failed", Fingerprint: "feedface00000001", Aliases: []string{long}}},
		{"hashed marker, fingerprint now an alias", gitlabx.MarkerValue(long), gitlabx.Report{Title: "check failed", Fingerprint: "feedface00000001", Aliases: []string{long}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, gitlabtest.WithSearchRateLimit(30))
			srv.AddProject(gitlabtest.Project{ID: project, Path: "ops/app"})
			old := srv.AddIssue(project, gitlabtest.Issue{
				Title:       "check failed",
				Description: "<!-- opskit:fingerprint=" + tc.marker + " --> <!-- opskit:run=day0 -->\nFirst seen: 1 occurrence.",
				Labels:      []string{gitlabx.DefaultReportLabel},
				AuthorID:    srv.BotUser().ID,
			})
			res, err := gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day1", []gitlabx.Report{tc.rep})
			require.NoError(t, err)
			assert.Equal(t, gitlabx.ReportCommented, res.Reports[0].Action)
			assert.Equal(t, old.IID, res.Reports[0].IID)
			issues := srv.Issues(project)
			require.Len(t, issues, 1, "filed again")
			key := gitlabx.MarkerValue(tc.rep.Fingerprint)
			assert.Contains(t, issues[0].Description, "<!-- opskit:fingerprint="+key+" -->", "today's marker added")

			// The next run finds it by today's short marker alone.
			res, err = gitlabx.NewReporter(srv.Client(), project).ReportRun(t.Context(), "day2",
				[]gitlabx.Report{{Title: tc.rep.Title, Fingerprint: tc.rep.Fingerprint}})
			require.NoError(t, err)
			assert.Equal(t, gitlabx.ReportCommented, res.Reports[0].Action)
			assert.Len(t, srv.Issues(project), 1)
			searches, limited := searchesAndLimits(srv)
			assert.Zero(t, searches)
			assert.Zero(t, limited)
		})
	}
}

// TestTruth15FingerprintSearchable: Report.Fingerprint promises that a
// person can find an issue by its fingerprint with GitLab's full-text
// search (which indexes neither HTML comments nor words of 50 characters
// or more): by the fingerprint itself when it is short, by its marker
// value when it is long.
func TestTruth15FingerprintSearchable(t *testing.T) {
	srv := newServer(t)
	long := strings.Repeat("0123456789abcdef", 4)
	r := gitlabx.NewReporter(srv.Client(), project)
	for _, fp := range []string{"b5de30aa6e91be3f", long} {
		res, err := r.Report(t.Context(), gitlabx.Report{Title: "check failed " + fp[:4], Fingerprint: fp})
		require.NoError(t, err)
		dev := srv.ClientFor(gitlabtest.DeveloperToken)
		found, _, err := dev.Issues.ListProjectIssues(project, &gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr(gitlabx.MarkerValue(fp))})
		require.NoError(t, err)
		require.Len(t, found, 1, "search for %s", gitlabx.MarkerValue(fp))
		assert.Equal(t, res.IID, found[0].IID)
	}
}
