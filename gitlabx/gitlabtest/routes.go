package gitlabtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	get  = http.MethodGet
	post = http.MethodPost
	put  = http.MethodPut
	del  = http.MethodDelete
)

func (s *Server) route(w http.ResponseWriter, a *apiRequest) {
	segs := a.segs
	m := a.r.Method
	if m == http.MethodHead {
		m = get
	}
	if len(segs) == 1 && segs[0] == "user" && m == get {
		s.mu.Lock()
		u := s.currentUserJSON(a.user)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, u)
		return
	}
	if len(segs) < 2 || segs[0] != "projects" {
		writeError(w, http.StatusNotFound, "404 Not Found")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqUUID = a.r.Header.Get("X-Gitlab-Event-UUID")
	defer func() { s.reqUUID = "" }()
	p := s.st.project(segs[1])
	if p == nil {
		writeError(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	rest := segs[2:]
	n := len(rest)
	switch {
	case n == 0 && m == get:
		writeJSON(w, http.StatusOK, s.projectJSON(p))
	case n >= 1 && rest[0] == "issues":
		s.routeIssues(w, a, p, m, rest[1:])
	case n >= 1 && rest[0] == "merge_requests":
		s.routeMRs(w, a, p, m, rest[1:])
	case n >= 1 && rest[0] == "labels":
		s.routeLabels(w, a, p, m, rest[1:])
	case n >= 2 && rest[0] == "repository":
		s.routeRepo(w, a, p, m, rest[1:])
	case n >= 1 && rest[0] == "releases": // releases.go
		s.routeReleases(w, a, p, m, rest[1:])
	case n == 1 && rest[0] == "uploads" && m == post:
		s.upload(w, a, p)
	case n == 3 && rest[0] == "uploads" && m == get:
		for _, u := range p.uploads {
			if u.Secret == rest[1] && u.Filename == rest[2] {
				w.Header().Set("Content-Type", http.DetectContentType(u.Content))
				_, _ = w.Write(u.Content)
				return
			}
		}
		writeError(w, http.StatusNotFound, "404 Upload Not Found")
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func parseIID(x string) (int64, bool) {
	n, err := strconv.ParseInt(x, 10, 64)
	return n, err == nil && n > 0
}

// sortBy sorts items stably by the comparison cmp (ascending), falling back
// to ID, and reverses the whole order unless asc: GitLab's order_by/sort.
func sortBy[T any](items []T, asc bool, cmp func(x, y T) int, id func(T) int64) {
	slices.SortStableFunc(items, func(x, y T) int {
		c := cmp(x, y)
		if c == 0 {
			c = int(id(x) - id(y))
		}
		if asc {
			return c
		}
		return -c
	})
}

// byTime returns a comparison of the time key picks: created_at unless
// order_by is updated_at.
func byTime[T any](orderBy string, created, updated func(T) time.Time) func(x, y T) int {
	key := created
	if orderBy == "updated_at" {
		key = updated
	}
	return func(x, y T) int { return key(x).Compare(key(y)) }
}

// methods dispatches on the HTTP method, answering 405 for others.
func methods(w http.ResponseWriter, m string, hs map[string]func()) {
	if h, ok := hs[m]; ok {
		h()
		return
	}
	writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
}

// ---- issues ----

func (s *Server) routeIssues(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	if len(rest) == 0 {
		methods(w, m, map[string]func(){
			get:  func() { s.listIssues(w, a, p) },
			post: func() { s.createIssueAPI(w, a, p) },
		})
		return
	}
	iid, ok := parseIID(rest[0])
	var is *Issue
	if ok {
		is = s.issueByIID(p, iid)
	}
	if is == nil {
		writeError(w, http.StatusNotFound, "404 Not found")
		return
	}
	switch {
	case len(rest) == 1 && m == get:
		writeJSON(w, http.StatusOK, s.issueJSON(p, is))
	case len(rest) == 1 && m == put:
		s.updateIssue(w, a, p, is)
	case len(rest) >= 2 && rest[1] == "notes":
		s.routeNotes(w, a, p, m, IssueNoteable, is.ID, is.IID, rest[2:])
	case len(rest) == 2 && rest[1] == "resource_state_events" && m == get:
		writeList(s, w, a, p.stateEvents[is.IID], func(e StateEvent) any { return s.stateEventJSON(is, e) })
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func matchLabels(have []string, want []string) bool {
	for _, l := range want {
		switch strings.ToLower(l) {
		case "none":
			if len(have) > 0 {
				return false
			}
		case "any":
			if len(have) == 0 {
				return false
			}
		default:
			if !slices.Contains(have, l) {
				return false
			}
		}
	}
	return true
}

// timeWindow reads created_after/created_before/updated_after/updated_before.
func timeWindow(a *apiRequest) (func(created, updated time.Time) bool, error) {
	var checks []func(c, u time.Time) bool
	for _, k := range []string{"created_after", "created_before", "updated_after", "updated_before"} {
		t, ok, err := a.timeParam(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		switch k {
		case "created_after":
			checks = append(checks, func(c, _ time.Time) bool { return !c.Before(t) })
		case "created_before":
			checks = append(checks, func(c, _ time.Time) bool { return !c.After(t) })
		case "updated_after":
			checks = append(checks, func(_, u time.Time) bool { return !u.Before(t) })
		case "updated_before":
			checks = append(checks, func(_, u time.Time) bool { return !u.After(t) })
		}
	}
	return func(c, u time.Time) bool {
		for _, f := range checks {
			if !f(c, u) {
				return false
			}
		}
		return true
	}, nil
}

func (s *Server) listIssues(w http.ResponseWriter, a *apiRequest, p *project) {
	inWindow, err := timeWindow(a)
	if err != nil {
		writeParamError(w, err.Error())
		return
	}
	if s.throttleSearch(w, a) {
		return
	}
	state := a.get("state")
	labels := a.list("labels")
	notLabels := a.list("not[labels]")
	search := a.get("search")
	in := a.list("in")
	if len(in) == 0 {
		in = []string{"title", "description"}
	}
	var iids []int64
	for _, x := range a.list("iids") {
		if n, ok := parseIID(x); ok {
			iids = append(iids, n)
		}
	}
	matches := s.issueMatcher(search, in)
	var out []*Issue
	for _, is := range p.issues {
		if state != "" && state != "all" && is.State != state {
			continue
		}
		if !matchLabels(is.Labels, labels) {
			continue
		}
		if len(notLabels) > 0 && slices.ContainsFunc(notLabels, func(l string) bool { return slices.Contains(is.Labels, l) }) {
			continue
		}
		if len(iids) > 0 && !slices.Contains(iids, is.IID) {
			continue
		}
		if search != "" && !matches(is) {
			continue
		}
		if a.has("author_id") && a.get("author_id") != strconv.FormatInt(is.AuthorID, 10) {
			continue
		}
		if a.has("confidential") && a.boolParam("confidential") != is.Confidential {
			continue
		}
		if !inWindow(is.CreatedAt, is.UpdatedAt) {
			continue
		}
		out = append(out, is)
	}
	order := byTime(a.get("order_by"), func(is *Issue) time.Time { return is.CreatedAt }, func(is *Issue) time.Time { return is.UpdatedAt })
	if a.get("order_by") == "title" {
		order = func(x, y *Issue) int { return strings.Compare(x.Title, y.Title) }
	}
	sortBy(out, a.get("sort") == "asc", order, func(is *Issue) int64 { return is.ID })
	writeList(s, w, a, out, func(is *Issue) any { return s.issueJSON(p, is) })
}

func (s *Server) createIssueAPI(w http.ResponseWriter, a *apiRequest, p *project) {
	title := a.get("title")
	if strings.TrimSpace(title) == "" {
		writeParamError(w, "title is missing")
		return
	}
	if titleTooLong(w, title) {
		return
	}
	is := s.createIssue(p, Issue{
		Title:        title,
		Description:  a.get("description"),
		Labels:       s.exclusiveScopes(a.list("labels")),
		Confidential: a.boolParam("confidential"),
		AuthorID:     a.user.ID,
	})
	s.fireIssue(p, is, a.user.ID, "open", nil)
	writeJSON(w, http.StatusCreated, s.issueJSON(p, is))
}

var issueUpdateParams = []string{"title", "description", "labels", "add_labels", "remove_labels", "state_event", "confidential", "assignee_ids", "milestone_id", "discussion_locked", "due_date", "weight", "issue_type"}

// applyLabels applies labels / add_labels / remove_labels the way GitLab
// does and reports whether anything was asked for.
func (s *Server) applyLabels(a *apiRequest, p *project, cur []string) ([]string, bool) {
	asked := false
	if a.has("labels") {
		cur, asked = a.list("labels"), true
	}
	if a.has("add_labels") {
		cur, asked = append(slices.Clone(cur), a.list("add_labels")...), true
	}
	cur = s.normalizeLabels(p, s.exclusiveScopes(cur))
	if a.has("remove_labels") {
		asked = true
		rm := a.list("remove_labels")
		cur = slices.DeleteFunc(cur, func(l string) bool {
			return slices.ContainsFunc(rm, func(r string) bool { return r == l })
		})
	}
	return cur, asked
}

func (s *Server) updateIssue(w http.ResponseWriter, a *apiRequest, p *project, is *Issue) {
	if !slices.ContainsFunc(issueUpdateParams, a.has) {
		writeParamError(w, strings.Join(issueUpdateParams, ", ")+" are missing, at least one parameter must be provided")
		return
	}
	if a.has("title") && strings.TrimSpace(a.get("title")) == "" {
		writeParamError(w, "title is empty")
		return
	}
	if titleTooLong(w, a.get("title")) {
		return
	}
	switch a.get("state_event") {
	case "", "close", "reopen":
	default:
		writeParamError(w, "state_event does not have a valid value")
		return
	}
	before := cloneIssue(is)
	if a.has("title") {
		is.Title = a.get("title")
	}
	if a.has("description") {
		is.Description = a.get("description")
	}
	if a.has("confidential") {
		is.Confidential = a.boolParam("confidential")
	}
	if labels, ok := s.applyLabels(a, p, is.Labels); ok {
		is.Labels = labels
	}
	now := s.cfg.clock()
	switch a.get("state_event") {
	case "close":
		if is.State != "closed" {
			is.State, is.ClosedAt, is.ClosedByID = "closed", now, a.user.ID
		}
	case "reopen":
		is.State, is.ClosedAt, is.ClosedByID = "opened", time.Time{}, 0
	}
	is.UpdatedAt = now
	if before.State != is.State {
		s.addStateEvent(p, is, a.user.ID, map[string]string{"closed": "closed", "opened": "reopened"}[is.State], 0)
	}
	s.systemNotesForEdit(p, IssueNoteable, is.ID, is.IID, a.user.ID, before.Title, is.Title, before.Description, is.Description)
	if ch := s.issueChanges(p, &before, is); len(ch) > 0 {
		action := "update"
		if before.State != is.State {
			action = map[string]string{"closed": "close", "opened": "reopen"}[is.State]
		}
		s.fireIssue(p, is, a.user.ID, action, ch)
	}
	writeJSON(w, http.StatusOK, s.issueJSON(p, is))
}

// ---- notes ----

func (s *Server) routeNotes(w http.ResponseWriter, a *apiRequest, p *project, m string, kind NoteableKind, id, iid int64, rest []string) {
	if len(rest) == 0 {
		switch m {
		case get:
			var out []*Note
			for _, n := range p.notes {
				if n.Kind == kind && n.NoteableIID == iid {
					out = append(out, n)
				}
			}
			sortBy(out, a.get("sort") == "asc",
				byTime(a.get("order_by"), func(n *Note) time.Time { return n.CreatedAt }, func(n *Note) time.Time { return n.UpdatedAt }),
				func(n *Note) int64 { return n.ID })
			// As lib/api/notes.rb: paginate, then drop the notes the user
			// may not read, so a page can be short while more follow.
			writeList(s, w, a, out, func(n *Note) any {
				if n.VisibleTo != nil && !slices.Contains(n.VisibleTo, a.user.ID) {
					return nil
				}
				return s.noteJSON(n)
			})
		case post:
			body := a.get("body")
			if strings.TrimSpace(body) == "" {
				writeParamError(w, "body is missing")
				return
			}
			n := s.createNote(p, kind, id, iid, Note{
				Body:     body,
				AuthorID: a.user.ID,
				Internal: a.boolParam("internal") || a.boolParam("confidential"),
			})
			s.fireNote(p, n, a.user.ID, "create")
			writeJSON(w, http.StatusCreated, s.noteJSON(n))
		default:
			writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		}
		return
	}
	nid, _ := strconv.ParseInt(rest[0], 10, 64)
	idx := slices.IndexFunc(p.notes, func(n *Note) bool { return n.ID == nid && n.Kind == kind && n.NoteableIID == iid })
	if idx < 0 || len(rest) != 1 {
		writeError(w, http.StatusNotFound, "404 Note Not Found")
		return
	}
	n := p.notes[idx]
	switch m {
	case get:
		writeJSON(w, http.StatusOK, s.noteJSON(n))
	case put:
		if n.AuthorID != a.user.ID {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return
		}
		if !a.has("body") && !a.has("confidential") && !a.has("internal") {
			writeParamError(w, "body is missing")
			return
		}
		if a.has("body") {
			if strings.TrimSpace(a.get("body")) == "" {
				writeParamError(w, "body is empty")
				return
			}
			n.Body = a.get("body")
		}
		n.UpdatedAt = s.cfg.clock()
		s.fireNote(p, n, a.user.ID, "update")
		writeJSON(w, http.StatusOK, s.noteJSON(n))
	case del:
		if n.AuthorID != a.user.ID {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return
		}
		p.notes = slices.Delete(p.notes, idx, idx+1)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
}

// ---- merge requests ----

func (s *Server) routeMRs(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	if len(rest) == 0 {
		methods(w, m, map[string]func(){
			get:  func() { s.listMRs(w, a, p) },
			post: func() { s.createMR(w, a, p) },
		})
		return
	}
	iid, ok := parseIID(rest[0])
	var mr *MergeRequest
	if ok {
		mr = s.mrByIID(p, iid)
	}
	if mr == nil {
		writeError(w, http.StatusNotFound, "404 Not found")
		return
	}
	switch {
	case len(rest) == 1 && m == get:
		writeJSON(w, http.StatusOK, s.mrJSON(p, mr))
	case len(rest) == 1 && m == put:
		s.updateMR(w, a, p, mr)
	case len(rest) == 2 && m == put && rest[1] == "merge":
		if mr.State != "opened" || mr.Draft {
			writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
			return
		}
		if sha := a.get("sha"); sha != "" && sha != p.branches[mr.SourceBranch] {
			writeError(w, http.StatusConflict, "SHA does not match HEAD of source branch: "+p.branches[mr.SourceBranch])
			return
		}
		s.merge(p, mr, a.user.ID)
		writeJSON(w, http.StatusOK, s.mrJSON(p, mr))
	case len(rest) == 2 && m == get && (rest[1] == "closes_issues" || rest[1] == "related_issues"):
		iids := closesIssues(p, mr)
		if rest[1] == "related_issues" {
			iids = mr.RelatedIssues
		}
		var out []*Issue
		for _, x := range iids {
			if is := s.issueByIID(p, x); is != nil {
				out = append(out, is)
			}
		}
		writeList(s, w, a, out, func(is *Issue) any { return s.issueJSON(p, is) })
	case len(rest) >= 2 && rest[1] == "notes":
		s.routeNotes(w, a, p, m, MergeRequestNoteable, mr.ID, mr.IID, rest[2:])
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func (s *Server) listMRs(w http.ResponseWriter, a *apiRequest, p *project) {
	inWindow, err := timeWindow(a)
	if err != nil {
		writeParamError(w, err.Error())
		return
	}
	state := a.get("state")
	labels := a.list("labels")
	var iids []int64
	for _, x := range a.list("iids") {
		if n, ok := parseIID(x); ok {
			iids = append(iids, n)
		}
	}
	if s.throttleSearch(w, a) {
		return
	}
	search := strings.ToLower(a.get("search"))
	var out []*MergeRequest
	for _, mr := range p.mrs {
		if state != "" && state != "all" && mr.State != state {
			continue
		}
		if !matchLabels(mr.Labels, labels) {
			continue
		}
		if len(iids) > 0 && !slices.Contains(iids, mr.IID) {
			continue
		}
		if a.has("source_branch") && a.get("source_branch") != mr.SourceBranch {
			continue
		}
		if a.has("target_branch") && a.get("target_branch") != mr.TargetBranch {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(mr.Title+"\n"+mr.Description), search) {
			continue
		}
		if !inWindow(mr.CreatedAt, mr.UpdatedAt) {
			continue
		}
		out = append(out, mr)
	}
	sortBy(out, a.get("sort") == "asc",
		byTime(a.get("order_by"), func(m *MergeRequest) time.Time { return m.CreatedAt }, func(m *MergeRequest) time.Time { return m.UpdatedAt }),
		func(m *MergeRequest) int64 { return m.ID })
	writeList(s, w, a, out, func(mr *MergeRequest) any { return s.mrJSON(p, mr) })
}

func (s *Server) createMR(w http.ResponseWriter, a *apiRequest, p *project) {
	var missing []string
	for _, k := range []string{"source_branch", "target_branch", "title"} {
		if strings.TrimSpace(a.get(k)) == "" {
			missing = append(missing, k+" is missing")
		}
	}
	if len(missing) > 0 {
		writeParamError(w, strings.Join(missing, ", "))
		return
	}
	if titleTooLong(w, a.get("title")) {
		return
	}
	src, dst := a.get("source_branch"), a.get("target_branch")
	for _, x := range []string{src, dst} {
		if _, ok := p.branches[x]; !ok {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string]any{"source_branch": []string{"is invalid"}}})
			return
		}
	}
	for _, o := range p.mrs {
		if o.State == "opened" && o.SourceBranch == src && o.TargetBranch == dst {
			writeJSON(w, http.StatusConflict, map[string]any{"message": []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", o.IID)}})
			return
		}
	}
	now := s.cfg.clock()
	title := a.get("title")
	mr := &MergeRequest{
		ID: s.st.id(), IID: assignIID(&p.nextMR, 0, nil), ProjectID: p.ID, Title: title, Description: a.get("description"),
		SourceBranch: src, TargetBranch: dst, State: "opened",
		Draft:    draftRE.MatchString(title),
		Labels:   s.normalizeLabels(p, s.exclusiveScopes(a.list("labels"))),
		AuthorID: a.user.ID, CreatedAt: now, UpdatedAt: now,
	}
	p.mrs = append(p.mrs, mr)
	s.crossReference(p, mr, a.user.ID)
	s.fireMR(p, mr, a.user.ID, "open", nil)
	writeJSON(w, http.StatusCreated, s.mrJSON(p, mr))
}

func (s *Server) updateMR(w http.ResponseWriter, a *apiRequest, p *project, mr *MergeRequest) {
	switch a.get("state_event") {
	case "", "close", "reopen":
	default:
		writeParamError(w, "state_event does not have a valid value")
		return
	}
	if a.has("title") && strings.TrimSpace(a.get("title")) == "" {
		writeParamError(w, "title is empty")
		return
	}
	if titleTooLong(w, a.get("title")) {
		return
	}
	before := s.mrSnapshot(p, mr)
	if a.has("title") {
		mr.Title = a.get("title")
		mr.Draft = draftRE.MatchString(mr.Title) // GitLab recomputes draft from the title
	}
	if a.has("description") {
		mr.Description = a.get("description")
	}
	if a.has("target_branch") {
		mr.TargetBranch = a.get("target_branch")
	}
	if labels, ok := s.applyLabels(a, p, mr.Labels); ok {
		mr.Labels = labels
	}
	switch a.get("state_event") {
	case "close":
		if mr.State == "opened" {
			mr.State = "closed"
		}
	case "reopen":
		if mr.State == "closed" {
			mr.State = "opened"
		}
	}
	mr.UpdatedAt = s.cfg.clock()
	s.systemNotesForEdit(p, MergeRequestNoteable, mr.ID, mr.IID, a.user.ID, before.Title, mr.Title, before.Description, mr.Description)
	if mr.Description != before.Description {
		s.crossReference(p, mr, a.user.ID)
	}
	if ch := s.mrChanges(p, &before, mr); len(ch) > 0 {
		action := "update"
		if before.State != mr.State {
			action = map[string]string{"closed": "close", "opened": "reopen"}[mr.State]
		}
		s.fireMR(p, mr, a.user.ID, action, ch)
	}
	writeJSON(w, http.StatusOK, s.mrJSON(p, mr))
}

// ---- labels ----

func (s *Server) routeLabels(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	if len(rest) == 0 {
		switch m {
		case get:
			search := strings.ToLower(a.get("search"))
			var out []*Label
			for _, l := range p.labels {
				if search == "" || strings.Contains(strings.ToLower(l.Name), search) {
					out = append(out, l)
				}
			}
			sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
			writeList(s, w, a, out, func(l *Label) any { return s.labelJSON(p, l) })
		case post:
			name := strings.TrimSpace(a.get("name"))
			if name == "" {
				writeParamError(w, "name is missing")
				return
			}
			for _, l := range p.labels {
				if l.Name == name {
					writeError(w, http.StatusConflict, "Label already exists")
					return
				}
			}
			l := s.ensureLabel(p, name, a.get("color"))
			l.Description = a.get("description")
			writeJSON(w, http.StatusCreated, s.labelJSON(p, l))
		default:
			writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		}
		return
	}
	idx := slices.IndexFunc(p.labels, func(l *Label) bool { return l.Name == rest[0] || strconv.FormatInt(l.ID, 10) == rest[0] })
	if idx < 0 || len(rest) != 1 {
		writeError(w, http.StatusNotFound, "404 Label Not Found")
		return
	}
	switch m {
	case get:
		writeJSON(w, http.StatusOK, s.labelJSON(p, p.labels[idx]))
	case del:
		name := p.labels[idx].Name
		p.labels = slices.Delete(p.labels, idx, idx+1)
		// GitLab takes a deleted label off every issue and MR.
		for _, is := range p.issues {
			is.Labels = slices.DeleteFunc(is.Labels, func(l string) bool { return l == name })
		}
		for _, m := range p.mrs {
			m.Labels = slices.DeleteFunc(m.Labels, func(l string) bool { return l == name })
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
}

// ---- repository ----

func (s *Server) routeRepo(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	switch rest[0] {
	case "files":
		if (m == post || m == put) && len(rest) >= 2 { // releases.go
			s.commitFile(w, a, p, m, strings.Join(rest[1:], "/"))
			return
		}
		if m != get || len(rest) < 2 {
			writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
			return
		}
		raw := len(rest) >= 3 && rest[len(rest)-1] == "raw"
		parts := rest[1:]
		if raw {
			parts = parts[:len(parts)-1]
		}
		s.getFile(w, a, p, strings.Join(parts, "/"), raw)
	case "branches":
		s.routeBranches(w, a, p, m, rest[1:])
	case "commits":
		if m != get {
			writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
			return
		}
		if len(rest) == 1 {
			s.listCommits(w, a, p)
			return
		}
		c := resolveRef(p, rest[1])
		if c == nil || len(rest) != 2 {
			writeError(w, http.StatusNotFound, "404 Commit Not Found")
			return
		}
		writeJSON(w, http.StatusOK, s.commitJSON(p, c))
	case "compare":
		s.compare(w, a, p)
	case "tags":
		s.routeTags(w, a, p, m, rest[1:])
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func (s *Server) getFile(w http.ResponseWriter, a *apiRequest, p *project, filePath string, raw bool) {
	ref := a.get("ref")
	if !raw && ref == "" {
		writeParamError(w, "ref is missing")
		return
	}
	c := resolveRef(p, ref)
	if c == nil {
		writeError(w, http.StatusNotFound, "404 Commit Not Found")
		return
	}
	content, ok := c.tree[filePath]
	if !ok {
		writeError(w, http.StatusNotFound, "404 File Not Found")
		return
	}
	sum := sha256.Sum256(content)
	blob := fakeSHA("blob", string(content))
	last := c.SHA
	for _, x := range walk(p, c.SHA, nil) {
		if slices.Contains(x.Paths, filePath) {
			last = x.SHA
			break
		}
	}
	if ref == "" {
		ref = p.DefaultBranch
	}
	h := w.Header()
	h.Set("X-Gitlab-File-Name", path.Base(filePath))
	h.Set("X-Gitlab-File-Path", filePath)
	h.Set("X-Gitlab-Size", strconv.Itoa(len(content)))
	h.Set("X-Gitlab-Encoding", "base64")
	h.Set("X-Gitlab-Ref", ref)
	h.Set("X-Gitlab-Blob-Id", blob)
	h.Set("X-Gitlab-Commit-Id", c.SHA)
	h.Set("X-Gitlab-Last-Commit-Id", last)
	h.Set("X-Gitlab-Content-Sha256", hex.EncodeToString(sum[:]))
	if raw {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(content)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"file_name":        path.Base(filePath),
		"file_path":        filePath,
		"size":             len(content),
		"encoding":         "base64",
		"content":          base64.StdEncoding.EncodeToString(content),
		"content_sha256":   hex.EncodeToString(sum[:]),
		"ref":              ref,
		"blob_id":          blob,
		"commit_id":        c.SHA,
		"last_commit_id":   last,
		"execute_filemode": false,
	})
}

func (s *Server) routeBranches(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	if m != get {
		writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		return
	}
	if len(rest) == 0 {
		search := a.get("search")
		var names []string
		for n := range p.branches {
			if search == "" || matchSearch(n, search) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		writeList(s, w, a, names, func(n string) any { return s.branchJSON(p, n, p.branches[n]) })
		return
	}
	name := strings.Join(rest, "/")
	sha, ok := p.branches[name]
	if !ok {
		writeError(w, http.StatusNotFound, "404 Branch Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.branchJSON(p, name, sha))
}

// matchSearch implements GitLab's ref search: "^x" anchors at the start,
// "x$" at the end, otherwise a case-insensitive substring.
func matchSearch(name, search string) bool {
	n, q := strings.ToLower(name), strings.ToLower(search)
	pre, suf := strings.HasPrefix(q, "^"), strings.HasSuffix(q, "$")
	q = strings.TrimSuffix(strings.TrimPrefix(q, "^"), "$")
	switch {
	case pre && suf:
		return n == q
	case pre:
		return strings.HasPrefix(n, q)
	case suf:
		return strings.HasSuffix(n, q)
	default:
		return strings.Contains(n, q)
	}
}

func touches(c *commitObj, p string) bool {
	p = strings.TrimSuffix(p, "/")
	for _, x := range c.Paths {
		if x == p || strings.HasPrefix(x, p+"/") {
			return true
		}
	}
	return false
}

func (s *Server) listCommits(w http.ResponseWriter, a *apiRequest, p *project) {
	since, hasSince, err := a.timeParam("since")
	if err != nil {
		writeParamError(w, err.Error())
		return
	}
	until, hasUntil, err := a.timeParam("until")
	if err != nil {
		writeParamError(w, err.Error())
		return
	}
	var starts []string
	var exclude map[string]bool
	if a.boolParam("all") {
		for _, sha := range p.branches {
			starts = append(starts, sha)
		}
		sort.Strings(starts)
	} else if from, to, ok := strings.Cut(a.get("ref_name"), ".."); ok {
		// "A..B": reachable from B but not from A, as git log A..B.
		to = strings.TrimPrefix(to, ".")
		cf, ct := resolveRef(p, from), resolveRef(p, to)
		if cf == nil || ct == nil {
			writeJSON(w, http.StatusOK, []any{})
			return
		}
		exclude = reachable(p, cf.SHA)
		starts = []string{ct.SHA}
	} else if c := resolveRef(p, a.get("ref_name")); c != nil {
		starts = []string{c.SHA}
	}
	seen := map[string]bool{}
	var all []*commitObj
	for _, st := range starts {
		for _, c := range walk(p, st, exclude) {
			if !seen[c.SHA] {
				seen[c.SHA] = true
				all = append(all, c)
			}
		}
	}
	if a.boolParam("first_parent") && len(starts) == 1 {
		all = all[:0]
		for sha := starts[0]; sha != ""; {
			c := p.commits[sha]
			if c == nil {
				break
			}
			if exclude[sha] {
				break
			}
			all = append(all, c)
			sha = ""
			if len(c.Parents) > 0 {
				sha = c.Parents[0]
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	pathFilter := a.get("path")
	var out []*commitObj
	for _, c := range all {
		if hasSince && c.CreatedAt.Before(since) {
			continue
		}
		if hasUntil && c.CreatedAt.After(until) {
			continue
		}
		if pathFilter != "" && !touches(c, pathFilter) {
			continue
		}
		if a.has("author") && !strings.Contains(c.AuthorName+" "+c.AuthorEmail, a.get("author")) {
			continue
		}
		out = append(out, c)
	}
	// GitLab never counts commits: no X-Total, X-Total-Pages or rel="last".
	writeListCounted(s, w, a, out, false, func(c *commitObj) any { return s.commitJSON(p, c) })
}

func (s *Server) compare(w http.ResponseWriter, a *apiRequest, p *project) {
	if a.get("from") == "" || a.get("to") == "" {
		writeParamError(w, "from, to are missing")
		return
	}
	from, to := resolveRef(p, a.get("from")), resolveRef(p, a.get("to"))
	if from == nil || to == nil {
		writeError(w, http.StatusNotFound, "404 Ref Not Found")
		return
	}
	commits := walk(p, to.SHA, reachable(p, from.SHA))
	slices.Reverse(commits)
	var list []any
	for _, c := range commits {
		list = append(list, s.commitJSON(p, c))
	}
	if list == nil {
		list = []any{}
	}
	var diffs []any
	paths := map[string]bool{}
	for k := range from.tree {
		paths[k] = true
	}
	for k := range to.tree {
		paths[k] = true
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		old, inOld := from.tree[k]
		nw, inNew := to.tree[k]
		if inOld && inNew && bytes.Equal(old, nw) {
			continue
		}
		diffs = append(diffs, map[string]any{
			"old_path": k, "new_path": k, "a_mode": "100644", "b_mode": "100644",
			"new_file": !inOld, "renamed_file": false, "deleted_file": !inNew,
			"diff": fmt.Sprintf("@@ -1 +1 @@\n-%s\n+%s\n", strings.TrimSpace(string(old)), strings.TrimSpace(string(nw))),
		})
	}
	if diffs == nil {
		diffs = []any{}
	}
	var last any
	if len(commits) > 0 {
		last = s.commitJSON(p, commits[len(commits)-1])
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"commit":           last,
		"commits":          list,
		"diffs":            diffs,
		"compare_timeout":  false,
		"compare_same_ref": from.SHA == to.SHA,
		"web_url":          fmt.Sprintf("%s/%s/-/compare/%s...%s", s.URL(), p.Path, from.SHA, to.SHA),
	})
}

var validTag = regexp.MustCompile(`^[^\s~^:?*\[\\]+$`)

func (s *Server) routeTags(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	if len(rest) == 0 {
		methods(w, m, map[string]func(){
			get:  func() { s.listTags(w, a, p) },
			post: func() { s.createTag(w, a, p) },
		})
		return
	}
	name := strings.Join(rest, "/")
	t, ok := p.tags[name]
	if !ok {
		writeError(w, http.StatusNotFound, "404 Tag Not Found")
		return
	}
	switch m {
	case get:
		writeJSON(w, http.StatusOK, s.tagJSON(p, t))
	case del:
		p.deleteTag(name)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
}

func (s *Server) listTags(w http.ResponseWriter, a *apiRequest, p *project) {
	writeList(s, w, a, s.sortedTags(p, a.get("order_by"), a.get("sort"), a.get("search")), func(t *Tag) any { return s.tagJSON(p, t) })
}

// sortedTags returns the project's tags matching search in GitLab's order
// (order_by updated, the default, name or version; sort desc unless "asc"),
// cached until the tags change. Callers must not modify the slice.
func (s *Server) sortedTags(p *project, orderBy, sortDir, search string) []*Tag {
	if orderBy == "" {
		orderBy = "updated"
	}
	key := orderBy + "\x00" + sortDir + "\x00" + search
	if out, ok := p.tagOrder[key]; ok {
		return out
	}
	out := []*Tag{}
	for _, t := range p.tags {
		if search == "" || matchSearch(t.Name, search) {
			out = append(out, t)
		}
	}
	cmp := func(x, y *Tag) int {
		switch orderBy {
		case "name":
			return strings.Compare(x.Name, y.Name)
		case "version":
			return compareVersions(x.Name, y.Name)
		default:
			cx, cy := p.commits[x.Commit], p.commits[y.Commit]
			if cx != nil && cy != nil && !cx.CreatedAt.Equal(cy.CreatedAt) {
				return cx.CreatedAt.Compare(cy.CreatedAt)
			}
			return strings.Compare(x.Name, y.Name)
		}
	}
	asc := sortDir == "asc"
	slices.SortStableFunc(out, func(x, y *Tag) int {
		c := cmp(x, y)
		if c == 0 {
			c = strings.Compare(x.Name, y.Name)
		}
		if asc {
			return c
		}
		return -c
	})
	if p.tagOrder == nil {
		p.tagOrder = map[string][]*Tag{}
	}
	p.tagOrder[key] = out
	return out
}

// compareVersions orders names like `git tag --sort=version:refname`:
// digit runs compare numerically, everything else byte-wise.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			i, j := digitRun(a), digitRun(b)
			x, y := strings.TrimLeft(a[:i], "0"), strings.TrimLeft(b[:j], "0")
			if len(x) != len(y) {
				return len(x) - len(y)
			}
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func (s *Server) createTag(w http.ResponseWriter, a *apiRequest, p *project) {
	name, ref := a.get("tag_name"), a.get("ref")
	switch {
	case name == "" && ref == "":
		writeParamError(w, "tag_name is missing, ref is missing")
		return
	case name == "":
		writeParamError(w, "tag_name is missing")
		return
	case ref == "":
		writeParamError(w, "ref is missing")
		return
	}
	if !validTag.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".lock") || strings.HasPrefix(name, "-") {
		writeError(w, http.StatusBadRequest, "Tag name invalid")
		return
	}
	if _, ok := p.tags[name]; ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Tag %s already exists", name))
		return
	}
	if pt, ok := p.protectedTag(name); ok && !slices.Contains(pt.CreateUserIDs, a.user.ID) {
		// Gitlab::Checks::TagCheck, surfaced by Tags::CreateService.
		writeError(w, http.StatusBadRequest, "You are not allowed to create this tag as it is protected.")
		return
	}
	c := resolveRef(p, ref)
	if c == nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Target %s is invalid", ref))
		return
	}
	t := newTag(name, c.SHA, a.get("message"), s.cfg.clock())
	p.setTag(t)
	s.fireTag(p, t, a.user.ID)
	writeJSON(w, http.StatusCreated, s.tagJSON(p, t))
}

// ---- uploads ----

func (s *Server) upload(w http.ResponseWriter, a *apiRequest, p *project) {
	_, params, err := mime.ParseMediaType(a.r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		writeParamError(w, "file is missing")
		return
	}
	mr := multipart.NewReader(bytes.NewReader(a.body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			writeParamError(w, "file is missing")
			return
		}
		if part.FormName() != "file" {
			continue
		}
		content, err := io.ReadAll(io.LimitReader(part, s.cfg.maxUpload+1))
		if err != nil {
			writeParamError(w, "file is invalid")
			return
		}
		if int64(len(content)) > s.cfg.maxUpload {
			writeError(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
			return
		}
		name := path.Base(part.FileName())
		if name == "" || name == "." || name == "/" {
			name = "file"
		}
		id := s.st.id()
		sec := fakeSHA("upload", strconv.FormatInt(p.ID, 10), strconv.FormatInt(id, 10), name)[:32]
		u := &Upload{
			ID:       id,
			Filename: name,
			Secret:   sec,
			URL:      "/uploads/" + sec + "/" + name,
			FullPath: fmt.Sprintf("/-/project/%d/uploads/%s/%s", p.ID, sec, name),
			Content:  content,
		}
		alt := strings.TrimSuffix(name, path.Ext(name))
		switch strings.ToLower(path.Ext(name)) {
		case ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tiff", ".ico", ".webp", ".svg", ".mp4", ".mov", ".webm", ".mp3", ".ogg", ".wav":
			u.Markdown = fmt.Sprintf("![%s](%s)", alt, u.URL)
		default:
			alt = name
			u.Markdown = fmt.Sprintf("[%s](%s)", name, u.URL)
		}
		p.uploads = append(p.uploads, u)
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": u.ID, "alt": alt, "url": u.URL, "full_path": u.FullPath, "markdown": u.Markdown,
		})
		return
	}
}

// draftRE is GitLab's MergeRequest::DRAFT_REGEX: a title that starts with
// "Draft:", "[Draft]", "(Draft)" or "Draft -" (any case) marks a draft.
var draftRE = regexp.MustCompile(`(?i)^\s*(?:\[draft\]|\(draft\)|draft:|draft -)`)

// maxTitleLength is Issuable's title validation (length maximum 255).
const maxTitleLength = 255

// titleTooLong answers GitLab's validation error for a title over 255
// characters and reports whether it did.
func titleTooLong(w http.ResponseWriter, title string) bool {
	if utf8.RuneCountInString(title) <= maxTitleLength {
		return false
	}
	writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string]any{
		"title": []string{fmt.Sprintf("is too long (maximum is %d characters)", maxTitleLength)},
	}})
	return true
}

// exclusiveScopes keeps, with WithScopedLabels, only the last label of
// each scope ("workflow::Doing" replaces an earlier "workflow::To Do"; the
// scope is everything before the last "::"), as GitLab Premium does.
// Without the option it returns names unchanged, like GitLab Free.
func (s *Server) exclusiveScopes(names []string) []string {
	if !s.cfg.scopedLabels {
		return names
	}
	seen := map[string]bool{}
	var out []string
	for i := len(names) - 1; i >= 0; i-- {
		n := strings.TrimSpace(names[i])
		if k := strings.LastIndex(n, "::"); k > 0 {
			if seen[n[:k]] {
				continue
			}
			seen[n[:k]] = true
		}
		out = append(out, n)
	}
	slices.Reverse(out)
	return out
}

// systemNotesForEdit adds the system notes GitLab's SystemNoteService
// writes when a title or description changes; caller holds s.mu.
func (s *Server) systemNotesForEdit(p *project, kind NoteableKind, id, iid, user int64, oldTitle, newTitle, oldDesc, newDesc string) {
	if oldTitle != newTitle {
		s.createNote(p, kind, id, iid, Note{Body: fmt.Sprintf("changed title from **%s** to **%s**", oldTitle, newTitle), AuthorID: user, System: true})
	}
	if oldDesc != newDesc {
		s.createNote(p, kind, id, iid, Note{Body: "changed the description", AuthorID: user, System: true})
	}
}

// crossReference adds "mentioned in merge request !N" to each issue the MR's
// title or description names with "#N", once per issue, as
// SystemNoteService.cross_reference does; caller holds s.mu.
func (s *Server) crossReference(p *project, mr *MergeRequest, user int64) {
	body := fmt.Sprintf("mentioned in merge request !%d", mr.IID)
	for _, m := range issueRef.FindAllStringSubmatch(mr.Title+"\n"+mr.Description, -1) {
		iid, err := strconv.ParseInt(m[1], 10, 64)
		is := s.issueByIID(p, iid)
		if err != nil || is == nil {
			continue
		}
		if slices.ContainsFunc(p.notes, func(n *Note) bool {
			return n.System && n.Kind == IssueNoteable && n.NoteableIID == iid && n.Body == body
		}) {
			continue
		}
		s.createNote(p, IssueNoteable, is.ID, iid, Note{Body: body, AuthorID: user, System: true})
	}
}
