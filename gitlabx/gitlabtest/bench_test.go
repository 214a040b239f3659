package gitlabtest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// BenchmarkListIssues measures one page of 100 issues served in-process
// (no socket), so it shows the fake's own cost; bytes are response bytes.
func BenchmarkListIssues(b *testing.B) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	for i := range 500 {
		srv.AddIssue(7, gitlabtest.Issue{Title: fmt.Sprint("issue ", i), Labels: []string{"bug"}})
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v4/projects/ops%2Fapp/issues?labels=bug&per_page=100&page=2", nil)
	req.Header.Set("Private-Token", srv.Token())
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
	srv.ResetRequests()
}

// BenchmarkCreateNote measures note creation, the bots' most common write.
func BenchmarkCreateNote(b *testing.B) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	body := `{"body":"` + strings.Repeat("x", 200) + `"}`
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/v4/projects/7/issues/1/notes", strings.NewReader(body))
		req.Header.Set("Private-Token", srv.Token())
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkListTagsPaged pages through 20,000 tags 100 at a time (semtag's
// worst case); after the first page the sorted order comes from a cache.
func BenchmarkListTagsPaged(b *testing.B) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	c := srv.SetFile(7, "main", "a", []byte("a"))
	for i := range 20000 {
		srv.AddTag(7, gitlabtest.Tag{Name: fmt.Sprintf("v1.%d.%d", i/100, i%100), Commit: c.SHA})
	}
	b.ReportAllocs()
	page := 0
	for b.Loop() {
		page = page%200 + 1
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v4/projects/7/repository/tags?search=%%5Ev1.&order_by=version&per_page=100&page=%d", page), nil)
		req.Header.Set("Private-Token", srv.Token())
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
	srv.ResetRequests()
}

// BenchmarkIssueSearchFullText measures a full-text search over 500 issues
// with 4 KiB descriptions; bytes are the description bytes indexed.
func BenchmarkIssueSearchFullText(b *testing.B) {
	srv := gitlabtest.New(gitlabtest.WithSearchRateLimit(0))
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	desc := strings.Repeat("<p>data race in <code>cache.Get</code> on host web1</p> ", 70)
	for i := range 500 {
		srv.AddIssue(7, gitlabtest.Issue{Title: fmt.Sprint("race ", i), Description: desc + fmt.Sprint(" fp", i)})
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v4/projects/7/issues?search=race+fp499&in=title,description", nil)
	req.Header.Set("Private-Token", srv.Token())
	b.SetBytes(int64(500 * len(desc)))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"iid":500`) {
			b.Fatal(rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
		}
	}
	srv.ResetRequests()
}
