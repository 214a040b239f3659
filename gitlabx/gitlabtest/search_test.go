package gitlabtest_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// TestIssueSearchFullText: search follows GitLab's PostgreSQL full-text
// search (PgFullTextSearchable), not a substring match.
func TestIssueSearchFullText(t *testing.T) {
	fp64 := strings.Repeat("0123456789abcdef", 4)
	big := strings.Repeat("filler ", (1<<20)/7+1) + "needle"
	issues := []gitlabtest.Issue{
		{Title: "Login is broken", Description: "SSO users see a <b>blank</b> page"},                        // #1
		{Title: "data race", Description: "<!-- opskit:fingerprint=" + fp64 + " -->\nrace in cache.Get"},    // #2
		{Title: "data race", Description: "<!-- opskit:fingerprint=short123 -->\nfingerprint 9f86d081884c"}, // #3
		{Title: "huge", Description: big},                           // #4
		{Title: "broken pipe", Description: "the login page works"}, // #5
	}
	for _, tc := range []struct {
		search, in string
		mode       gitlabtest.SearchMode
		want       []int64
	}{
		{search: "broken login", want: []int64{1, 5}},                           // words are ANDed, in any order, over title and description
		{search: "brok", want: []int64{1, 5}},                                   // a prefix matches
		{search: "roken", want: nil},                                            // an infix does not
		{search: "broken login", in: "title", want: []int64{1}},                 // in= restricts the fields
		{search: `"is broken"`, want: []int64{1}},                               // a quoted phrase matches its words in a row
		{search: `"broken is"`, want: nil},                                      //
		{search: "blank", want: []int64{1}},                                     // text between tags is indexed
		{search: "opskit", want: nil},                                           // an HTML comment is a tag token: not indexed
		{search: fp64, want: nil},                                               // a 64-character word is not indexed
		{search: "9f86d081884c", want: []int64{3}},                              // a 12-character one is
		{search: "cache.Get", want: []int64{2}},                                 // "." splits the query into words
		{search: "needle", want: nil},                                           // text past the tsvector limit is not indexed
		{search: "ogin", mode: gitlabtest.SearchSubstring, want: []int64{1, 5}}, // the switch back to substring matching
		{search: "fingerprint=" + fp64, mode: gitlabtest.SearchSubstring, want: []int64{2}},
	} {
		t.Run(tc.search, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, gitlabtest.WithSearchMode(tc.mode))
			srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
			for _, is := range issues {
				srv.AddIssue(7, is)
			}
			opt := &gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr(tc.search), OrderBy: gitlab.Ptr("created_at"), Sort: gitlab.Ptr("asc")}
			if tc.in != "" {
				opt.In = gitlab.Ptr(tc.in)
			}
			got, _, err := srv.Client().Issues.ListProjectIssues(7, opt)
			require.NoError(t, err)
			var iids []int64
			for _, is := range got {
				iids = append(iids, is.IID)
			}
			assert.Equal(t, tc.want, iids, "issues found by search=%q in=%q", tc.search, tc.in)
		})
	}
}

// fakeClock is a wall clock that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSearchRateLimit: like GitLab's search_rate_limit, a user's 31st
// request with a search parameter in one minute answers 429 with GitLab's
// body and rate-limit headers; lists without search do not count, every
// user has a budget of their own, the next minute starts afresh, and 0
// turns the limit off.
func TestSearchRateLimit(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 10, 0, 15, 0, time.UTC)}
	srv := gitlabtest.NewServer(t, gitlabtest.WithWallClock(clock.Now))
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.AddIssue(7, gitlabtest.Issue{Title: "needle"})
	c := srv.Client(gitlab.WithoutRetries())
	search := &gitlab.ListProjectIssuesOptions{Search: gitlab.Ptr("needle")}
	for i := range gitlabtest.DefaultSearchRateLimit {
		_, _, err := c.Issues.ListProjectIssues(7, search)
		require.NoError(t, err, "search %d of %d", i+1, gitlabtest.DefaultSearchRateLimit)
	}
	_, _, err := c.Issues.ListProjectIssues(7, nil)
	require.NoError(t, err, "a list without search does not count")
	_, _, err = c.MergeRequests.ListProjectMergeRequests(7, &gitlab.ListProjectMergeRequestsOptions{Search: gitlab.Ptr("x")})
	var er *gitlab.ErrorResponse
	require.ErrorAs(t, err, &er, "the 31st search (on merge requests) is refused")
	assert.Equal(t, http.StatusTooManyRequests, er.Response.StatusCode)
	h := er.Response.Header
	assert.Equal(t, "30", h.Get("RateLimit-Limit"))
	assert.Equal(t, "31", h.Get("RateLimit-Observed"))
	assert.Equal(t, "0", h.Get("RateLimit-Remaining"))
	assert.Equal(t, "1772359260", h.Get("RateLimit-Reset"), "the end of the minute")
	assert.Equal(t, "Sun, 01 Mar 2026 10:01:00 GMT", h.Get("RateLimit-ResetTime"))
	assert.Equal(t, "45", h.Get("Retry-After"))
	assert.Equal(t, "{message: {error: This endpoint has been requested too many times. Try again later.}}", er.Message,
		`GitLab's body {"message":{"error":"..."}}`)

	_, _, err = srv.ClientFor(gitlabtest.DeveloperToken).Issues.ListProjectIssues(7, search)
	require.NoError(t, err, "another user has a budget of their own")
	clock.Add(45 * time.Second)
	_, _, err = c.Issues.ListProjectIssues(7, search)
	require.NoError(t, err, "the next minute starts afresh")
	assert.Equal(t, 1, srv.SearchRequests(srv.BotUser().ID))

	off := gitlabtest.NewServer(t, gitlabtest.WithSearchRateLimit(0))
	off.AddProject(gitlabtest.Project{ID: 7})
	for i := range 100 {
		_, _, err := off.Client(gitlab.WithoutRetries()).Issues.ListProjectIssues(7, search)
		require.NoError(t, err, "search %d with the limit off", i+1)
	}
}
