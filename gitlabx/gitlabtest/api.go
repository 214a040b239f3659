package gitlabtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiRequest is one authenticated call below /api/v4.
type apiRequest struct {
	r    *http.Request
	body []byte
	user User
	segs []string
	vals url.Values
}

// params merges the query string with a JSON or form body, the way Grape
// does: body values win over the query.
func (a *apiRequest) params() url.Values {
	if a.vals != nil {
		return a.vals
	}
	v := url.Values{}
	for k, xs := range a.r.URL.Query() {
		v[k] = append([]string(nil), xs...)
	}
	ct, _, _ := mime.ParseMediaType(a.r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var m map[string]any
		if json.Unmarshal(a.body, &m) == nil {
			for k, x := range m {
				v.Del(k)
				switch x := x.(type) {
				case []any:
					for _, e := range x {
						v.Add(k, jsonScalar(e))
					}
				case nil:
					v.Set(k, "")
				default:
					v.Set(k, jsonScalar(x))
				}
			}
		}
	case "application/x-www-form-urlencoded":
		if f, err := url.ParseQuery(string(a.body)); err == nil {
			for k, xs := range f {
				v[k] = xs
			}
		}
	}
	a.vals = v
	return v
}

func jsonScalar(x any) string {
	switch x := x.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func (a *apiRequest) has(key string) bool {
	_, ok := a.params()[key]
	return ok
}

func (a *apiRequest) get(key string) string { return a.params().Get(key) }

func (a *apiRequest) boolParam(key string) bool {
	b, _ := strconv.ParseBool(a.get(key))
	return b
}

// list returns a comma-separated or repeated parameter as a slice; it also
// accepts the "key[]" spelling.
func (a *apiRequest) list(key string) []string {
	var out []string
	for _, k := range []string{key, key + "[]"} {
		for _, x := range a.params()[k] {
			for _, e := range strings.Split(x, ",") {
				if e = strings.TrimSpace(e); e != "" {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

func (a *apiRequest) timeParam(key string) (time.Time, bool, error) {
	x := a.get(key)
	if x == "" {
		return time.Time{}, false, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, x); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%s is invalid", key)
}

// maxCounted is the size above which GitLab stops counting: it omits
// X-Total, X-Total-Pages and the rel="last" link.
const maxCounted = 10000

// paginateCounted writes GitLab's offset-pagination headers for n items
// and returns the slice bounds of the requested page. counted=false omits
// the total headers, as GitLab does above maxCounted rows and always for
// repository commits.
func (s *Server) paginateCounted(w http.ResponseWriter, a *apiRequest, n int, counted bool) (lo, hi int) {
	page, _ := strconv.Atoi(a.get("page"))
	if page < 1 {
		page = 1
	}
	page = min(page, 1<<30) // keeps (page-1)*per_page from overflowing
	per, _ := strconv.Atoi(a.get("per_page"))
	if per < 1 {
		per = 20
	}
	if per > 100 {
		per = 100
	}
	pages := (n + per - 1) / per
	if pages < 1 {
		pages = 1
	}
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	if counted {
		h.Set("X-Total", strconv.Itoa(n))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
	}
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	link := func(p int, rel string) string {
		q := a.r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf("<%s%s?%s>; rel=%q", s.URL(), a.r.URL.EscapedPath(), q.Encode(), rel)
	}
	var links []string
	// Like Kaminari (which GitLab uses), a page past the end has neither a
	// previous nor a next page.
	if page > 1 && page <= pages {
		h.Set("X-Prev-Page", strconv.Itoa(page-1))
		links = append(links, link(page-1, "prev"))
	}
	if page < pages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(1, "first"))
	if counted {
		links = append(links, link(pages, "last"))
	}
	h.Set("Link", strings.Join(links, ", "))
	lo = min((page-1)*per, n)
	hi = min(lo+per, n)
	return lo, hi
}

func writeList[T any](s *Server, w http.ResponseWriter, a *apiRequest, items []T, render func(T) any) {
	writeListCounted(s, w, a, items, len(items) <= maxCounted, render)
}

func writeListCounted[T any](s *Server, w http.ResponseWriter, a *apiRequest, items []T, counted bool, render func(T) any) {
	lo, hi := s.paginateCounted(w, a, len(items), counted)
	out := make([]any, 0, hi-lo)
	for _, it := range items[lo:hi] {
		if r := render(it); r != nil {
			out = append(out, r)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func (s *Server) userJSON(id int64) map[string]any {
	u, ok := s.st.users[id]
	if !ok {
		u = User{ID: id, Username: fmt.Sprintf("user%d", id), Name: fmt.Sprintf("user%d", id)}
	}
	return map[string]any{
		"id":         u.ID,
		"username":   u.Username,
		"name":       u.Name,
		"state":      "active",
		"locked":     false,
		"avatar_url": "",
		"web_url":    s.URL() + "/" + u.Username,
	}
}

// currentUserJSON is GET /user: the public fields plus what a user sees of
// themselves.
func (s *Server) currentUserJSON(u User) map[string]any {
	m := s.userJSON(u.ID)
	created := ts(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for k, v := range map[string]any{
		"email": u.Email, "commit_email": u.Email, "public_email": nil, "bot": u.Bot,
		"created_at": created, "confirmed_at": created, "last_sign_in_at": nil, "current_sign_in_at": nil,
		"last_activity_on": nil, "bio": "", "location": "", "skype": "", "linkedin": "", "twitter": "",
		"discord": "", "website_url": "", "organization": "", "job_title": "", "pronouns": nil,
		"work_information": nil, "followers": 0, "following": 0, "local_time": nil, "is_followed": false,
		"theme_id": 1, "color_scheme_id": 1, "projects_limit": 100000, "can_create_group": !u.Bot,
		"can_create_project": !u.Bot, "two_factor_enabled": false, "external": false,
		"private_profile": false, "is_admin": false, "note": nil, "namespace_id": u.ID, "identities": []any{},
		"created_by": nil, "highest_role": 30, "sign_in_count": 0, "current_sign_in_ip": nil,
		"last_sign_in_ip": nil, "email_reset_offered_at": nil,
	} {
		m[k] = v
	}
	return m
}

func (s *Server) projectJSON(p *project) map[string]any {
	ns := "group"
	if i := strings.LastIndex(p.Path, "/"); i >= 0 {
		ns = p.Path[:i]
	}
	return map[string]any{
		"id":                          p.ID,
		"name":                        p.Name,
		"name_with_namespace":         strings.ReplaceAll(ns, "/", " / ") + " / " + p.Name,
		"path":                        p.Path[strings.LastIndex(p.Path, "/")+1:],
		"path_with_namespace":         p.Path,
		"description":                 "",
		"default_branch":              p.DefaultBranch,
		"autoclose_referenced_issues": !p.AutocloseDisabled,
		"visibility":                  p.Visibility,
		"web_url":                     s.URL() + "/" + p.Path,
		"http_url_to_repo":            s.URL() + "/" + p.Path + ".git",
		"ssh_url_to_repo":             "git@127.0.0.1:" + p.Path + ".git",
		"namespace": map[string]any{
			"id": 1, "name": ns, "path": ns[strings.LastIndex(ns, "/")+1:], "kind": "group", "full_path": ns,
		},
		"archived":         false,
		"issues_enabled":   true,
		"created_at":       ts(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		"last_activity_at": ts(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
}

func (s *Server) issueJSON(p *project, is *Issue) map[string]any {
	labels := append([]string{}, is.Labels...)
	ref := fmt.Sprintf("#%d", is.IID)
	var closedBy any
	if is.State == "closed" && is.ClosedByID != 0 {
		closedBy = s.userJSON(is.ClosedByID)
	}
	return map[string]any{
		"id":                     is.ID,
		"iid":                    is.IID,
		"project_id":             p.ID,
		"title":                  is.Title,
		"description":            is.Description,
		"state":                  is.State,
		"created_at":             ts(is.CreatedAt),
		"updated_at":             ts(is.UpdatedAt),
		"closed_at":              ts(is.ClosedAt),
		"closed_by":              closedBy,
		"labels":                 labels,
		"milestone":              nil,
		"assignees":              []any{},
		"assignee":               nil,
		"author":                 s.userJSON(is.AuthorID),
		"type":                   "ISSUE",
		"issue_type":             "issue",
		"user_notes_count":       s.countNotes(p, IssueNoteable, is.IID),
		"merge_requests_count":   0,
		"upvotes":                0,
		"downvotes":              0,
		"due_date":               nil,
		"confidential":           is.Confidential,
		"discussion_locked":      nil,
		"web_url":                s.issueWebURL(p, is.IID),
		"references":             map[string]any{"short": ref, "relative": ref, "full": p.Path + ref},
		"time_stats":             timeStats(),
		"task_completion_status": map[string]any{"count": 0, "completed_count": 0},
		"_links": map[string]any{
			"self":    fmt.Sprintf("%s/api/v4/projects/%d/issues/%d", s.URL(), p.ID, is.IID),
			"notes":   fmt.Sprintf("%s/api/v4/projects/%d/issues/%d/notes", s.URL(), p.ID, is.IID),
			"project": fmt.Sprintf("%s/api/v4/projects/%d", s.URL(), p.ID),
		},
	}
}

func (s *Server) countNotes(p *project, kind NoteableKind, iid int64) int {
	n := 0
	for _, x := range p.notes {
		if x.Kind == kind && x.NoteableIID == iid && !x.System {
			n++
		}
	}
	return n
}

func (s *Server) mrJSON(p *project, m *MergeRequest) map[string]any {
	snap := s.mrSnapshot(p, m)
	ref := fmt.Sprintf("!%d", m.IID)
	status := "mergeable"
	if m.State != "opened" {
		status = "not_open"
	}
	var mergedBy any
	if m.State == "merged" {
		mergedBy = s.userJSON(cmp.Or(m.MergedByID, m.AuthorID))
	}
	return map[string]any{
		"id":                              m.ID,
		"iid":                             m.IID,
		"project_id":                      p.ID,
		"title":                           m.Title,
		"description":                     m.Description,
		"state":                           m.State,
		"created_at":                      ts(m.CreatedAt),
		"updated_at":                      ts(m.UpdatedAt),
		"merged_at":                       ts(m.MergedAt),
		"closed_at":                       nil,
		"target_branch":                   m.TargetBranch,
		"source_branch":                   m.SourceBranch,
		"source_project_id":               p.ID,
		"target_project_id":               p.ID,
		"author":                          s.userJSON(m.AuthorID),
		"assignees":                       []any{},
		"reviewers":                       []any{},
		"assignee":                        nil,
		"labels":                          append([]string{}, m.Labels...),
		"draft":                           m.Draft,
		"work_in_progress":                m.Draft,
		"milestone":                       nil,
		"merge_status":                    "can_be_merged",
		"detailed_merge_status":           status,
		"sha":                             snap.SHA,
		"merge_commit_sha":                nilIfEmpty(m.MergeCommitSHA),
		"squash_commit_sha":               nil,
		"user_notes_count":                s.countNotes(p, MergeRequestNoteable, m.IID),
		"web_url":                         fmt.Sprintf("%s/%s/-/merge_requests/%d", s.URL(), p.Path, m.IID),
		"references":                      map[string]any{"short": ref, "relative": ref, "full": p.Path + ref},
		"reference":                       ref,
		"merged_by":                       mergedBy,
		"merge_user":                      mergedBy,
		"closed_by":                       nil,
		"upvotes":                         0,
		"downvotes":                       0,
		"discussion_locked":               nil,
		"subscribed":                      false,
		"changes_count":                   nil,
		"has_conflicts":                   false,
		"squash":                          false,
		"first_contribution":              false,
		"merge_error":                     nil,
		"pipeline":                        nil,
		"head_pipeline":                   nil,
		"approvals_before_merge":          nil,
		"first_deployed_to_production_at": nil,
		"latest_build_started_at":         nil,
		"latest_build_finished_at":        nil,
		"force_remove_source_branch":      false,
		"should_remove_source_branch":     nil,
		"merge_when_pipeline_succeeds":    false,
		"diff_refs": map[string]any{
			"base_sha": nilIfEmpty(p.branches[m.TargetBranch]), "head_sha": nilIfEmpty(snap.SHA), "start_sha": nilIfEmpty(p.branches[m.TargetBranch]),
		},
		"time_stats":             timeStats(),
		"task_completion_status": map[string]any{"count": 0, "completed_count": 0},
		"user":                   map[string]any{"can_merge": true},
	}
}

func timeStats() map[string]any {
	return map[string]any{"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": nil, "human_total_time_spent": nil}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) noteJSON(n *Note) map[string]any {
	return map[string]any{
		"id":               n.ID,
		"type":             nil,
		"body":             n.Body,
		"attachment":       nil,
		"author":           s.userJSON(n.AuthorID),
		"created_at":       ts(n.CreatedAt),
		"updated_at":       ts(n.UpdatedAt),
		"system":           n.System,
		"noteable_id":      n.NoteableID,
		"noteable_type":    string(n.Kind),
		"project_id":       n.ProjectID,
		"noteable_iid":     n.NoteableIID,
		"resolvable":       false,
		"confidential":     n.Internal,
		"internal":         n.Internal,
		"commands_changes": map[string]any{},
	}
}

func (s *Server) commitJSON(p *project, c *commitObj) map[string]any {
	parents := append([]string{}, c.Parents...)
	return map[string]any{
		"id":                c.SHA,
		"short_id":          c.SHA[:min(8, len(c.SHA))],
		"title":             c.Title,
		"message":           c.Message,
		"author_name":       c.AuthorName,
		"author_email":      c.AuthorEmail,
		"authored_date":     ts(c.CreatedAt),
		"committer_name":    c.AuthorName,
		"committer_email":   c.AuthorEmail,
		"committed_date":    ts(c.CreatedAt),
		"created_at":        ts(c.CreatedAt),
		"parent_ids":        parents,
		"trailers":          map[string]any{},
		"extended_trailers": map[string]any{},
		"web_url":           fmt.Sprintf("%s/%s/-/commit/%s", s.URL(), p.Path, c.SHA),
		"project_id":        p.ID,
		"stats":             map[string]any{"additions": len(c.Paths), "deletions": 0, "total": len(c.Paths)},
		"status":            nil,
		"last_pipeline":     nil,
	}
}

func (s *Server) tagJSON(p *project, t *Tag) map[string]any {
	var commit any
	if c := p.commits[t.Commit]; c != nil {
		commit = s.commitJSON(p, c)
	}
	var created any
	if t.Message != "" {
		created = ts(t.CreatedAt)
	}
	return map[string]any{
		"name":       t.Name,
		"message":    t.Message,
		"target":     t.Target,
		"commit":     commit,
		"release":    nil,
		"protected":  t.Protected || isProtected(p, t.Name),
		"created_at": created,
	}
}

func (s *Server) branchJSON(p *project, name, sha string) map[string]any {
	var commit any
	if c := p.commits[sha]; c != nil {
		commit = s.commitJSON(p, c)
	}
	return map[string]any{
		"name":                 name,
		"merged":               false,
		"protected":            name == p.DefaultBranch,
		"default":              name == p.DefaultBranch,
		"developers_can_push":  false,
		"developers_can_merge": false,
		"can_push":             true,
		"web_url":              fmt.Sprintf("%s/%s/-/tree/%s", s.URL(), p.Path, name),
		"commit":               commit,
	}
}

func (s *Server) labelJSON(p *project, l *Label) map[string]any {
	open, closed, openMR := 0, 0, 0
	for _, is := range p.issues {
		for _, x := range is.Labels {
			if x == l.Name {
				if is.State == "opened" {
					open++
				} else {
					closed++
				}
			}
		}
	}
	for _, m := range p.mrs {
		for _, x := range m.Labels {
			if x == l.Name && m.State == "opened" {
				openMR++
			}
		}
	}
	return map[string]any{
		"id":                        l.ID,
		"name":                      l.Name,
		"color":                     l.Color,
		"text_color":                "#FFFFFF",
		"description":               nilIfEmpty(l.Description),
		"description_html":          l.Description,
		"open_issues_count":         open,
		"closed_issues_count":       closed,
		"open_merge_requests_count": openMR,
		"subscribed":                false,
		"priority":                  nil,
		"is_project_label":          true,
	}
}

// stateEventJSON renders a resource state event (lib/api/entities/resource_state_event.rb).
func (s *Server) stateEventJSON(is *Issue, e StateEvent) map[string]any {
	var mr any
	if e.SourceMergeRequestID != 0 {
		mr = e.SourceMergeRequestID
	}
	return map[string]any{
		"id": e.ID, "user": s.userJSON(e.UserID), "created_at": ts(e.CreatedAt),
		"resource_type": "Issue", "resource_id": is.ID,
		"source_commit": nil, "source_merge_request_id": mr, "state": e.State,
	}
}

func isProtected(p *project, name string) bool {
	_, ok := p.protectedTag(name)
	return ok
}
