package gitlabtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// FuzzServeHTTP throws arbitrary authenticated requests at the fake: it
// must never panic or answer 5xx, and every error body must be JSON.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range []struct{ method, target, ctype, body string }{
		{"GET", "/api/v4/projects/7/issues?labels=a,b&iids[]=1&page=2&per_page=0", "", ""},
		{"POST", "/api/v4/projects/ops%2Fapp/issues", "application/json", `{"title":"t","labels":["a","b"]}`},
		{"PUT", "/api/v4/projects/7/issues/1", "application/json", `{"add_labels":"x","remove_labels":"y","state_event":"close"}`},
		{"PUT", "/api/v4/projects/7/issues/1", "application/x-www-form-urlencoded", `labels=&title=`},
		{"POST", "/api/v4/projects/7/issues/1/notes", "application/json", `{"body":null}`},
		{"GET", "/api/v4/projects/7/repository/commits?ref_name=..main&since=garbage", "", ""},
		{"GET", "/api/v4/projects/7/repository/files/a%2Fb/raw?ref=main", "", ""},
		{"POST", "/api/v4/projects/7/repository/tags", "application/json", `{"tag_name":"v1","ref":"main"}`},
		{"GET", "/api/v4/projects/7/repository/tags?order_by=version&search=^v1$", "", ""},
		{"POST", "/api/v4/projects/7/uploads", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc\r\n--x--\r\n"},
		{"GET", "/api/v4/projects/7/repository/compare?from=main&to=main", "", ""},
	} {
		f.Add(s.method, s.target, s.ctype, []byte(s.body))
	}
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.SetFile(7, "main", "a/b", []byte("x"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "t"})
	f.Fuzz(func(t *testing.T, method, target, ctype string, body []byte) {
		req, err := http.NewRequest(method, "http://127.0.0.1"+target, bytes.NewReader(body))
		if err != nil || len(target) == 0 || target[0] != '/' {
			return
		}
		req.Header.Set("Private-Token", srv.Token())
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s answered %d with a non-JSON body %q", method, target, rec.Code, rec.Body)
		}
	})
}
