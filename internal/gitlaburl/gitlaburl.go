// Package gitlaburl parses the web URLs GitLab gives issues and merge
// requests, in every form GitLab has used: "/group/app/-/issues/12",
// "/group/app/-/work_items/12" (GitLab.com since 2026 returns this as an
// issue's web_url) and the old "/group/app/issues/12" without "/-/".
//
// # Testing
//
// go test ./internal/gitlaburl; FuzzIssue checks that no input panics.
package gitlaburl

import (
	"net/url"
	"regexp"
	"strconv"
)

var issuePath = regexp.MustCompile(`^/(.+?)(?:/-)?/(?:issues|work_items)/([0-9]+)/?$`)

// Issue returns the project path ("group/app") and the IID of the issue
// that rawURL links to. A query string and a fragment (such as
// "#note_42") are ignored. ok is false when rawURL is not an issue URL.
func Issue(rawURL string) (project string, iid int64, ok bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, false
	}
	m := issuePath.FindStringSubmatch(u.Path)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return m[1], n, true
}
