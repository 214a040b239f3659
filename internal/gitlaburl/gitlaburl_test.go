package gitlaburl_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/opskit/opskit/internal/gitlaburl"
)

func TestIssue(t *testing.T) {
	for _, tc := range []struct {
		url     string
		project string
		iid     int64
		ok      bool
	}{
		{"https://gitlab.example.com/acme/exporter/-/issues/321", "acme/exporter", 321, true},
		{"https://gitlab.com/acme/exporter/-/work_items/321", "acme/exporter", 321, true},
		{"https://gitlab.example.com/acme/sub/exporter/-/work_items/7/", "acme/sub/exporter", 7, true},
		{"http://example.com/diaspora/issues/23", "diaspora", 23, true},
		{"https://gitlab.example.com/acme/exporter/-/issues/17#note_1241", "acme/exporter", 17, true},
		{"https://gitlab.example.com/acme/exporter/-/work_items/17?show=abc", "acme/exporter", 17, true},
		{"https://gitlab.example.com/acme/exporter/-/merge_requests/3", "", 0, false},
		{"https://gitlab.example.com/acme/exporter/-/issues/", "", 0, false},
		{"https://gitlab.example.com/acme/exporter/-/issues/0", "", 0, false},
		{"https://gitlab.example.com/acme/exporter/-/issues/99999999999999999999", "", 0, false},
		{"not a url %zz", "", 0, false},
	} {
		project, iid, ok := gitlaburl.Issue(tc.url)
		assert.Equal(t, tc.ok, ok, "Issue(%q) ok", tc.url)
		assert.Equal(t, tc.project, project, "Issue(%q) project", tc.url)
		assert.Equal(t, tc.iid, iid, "Issue(%q) iid", tc.url)
	}
}

func FuzzIssue(f *testing.F) {
	f.Add("https://gitlab.com/a/b/-/work_items/1")
	f.Fuzz(func(t *testing.T, s string) {
		if _, iid, ok := gitlaburl.Issue(s); ok && iid <= 0 {
			t.Errorf("Issue(%q) ok with IID %d", s, iid)
		}
	})
}
