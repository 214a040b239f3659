package gitlabtest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Release is a project release (GitLab's Releases API), keyed by its tag.
type Release struct {
	TagName     string
	Name        string // the tag name when created without one, as GitLab does
	Description string
	AuthorID    int64
	Commit      string // SHA of the tagged commit
	CreatedAt   time.Time
	ReleasedAt  time.Time
}

// maxReleaseDescription is GitLab's limit on a release description
// (Gitlab::Database::MAX_TEXT_SIZE_LIMIT), in characters.
const maxReleaseDescription = 1_000_000

// releaseStore holds the releases of every project; guarded by Server.mu.
type releaseStore struct {
	byProject map[int64][]*Release // in creation order
}

func (rs *releaseStore) list(project int64) []*Release { return rs.byProject[project] }

func (rs *releaseStore) find(project int64, tag string) *Release {
	for _, r := range rs.byProject[project] {
		if r.TagName == tag {
			return r
		}
	}
	return nil
}

func (rs *releaseStore) add(project int64, r *Release) {
	if rs.byProject == nil {
		rs.byProject = map[int64][]*Release{}
	}
	rs.byProject[project] = append(rs.byProject[project], r)
}

// AddRelease adds a release for the existing tag r.TagName, as if created
// through the API (author Developer() unless set), and returns it. It
// panics when the tag does not exist or has a release already. Seeding
// fires no webhooks.
func (s *Server) AddRelease(project int64, r Release) Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	t, ok := p.tags[r.TagName]
	if !ok {
		panic(fmt.Sprintf("gitlabtest: AddRelease: no tag %q in project %d", r.TagName, project))
	}
	if s.rel.find(p.ID, r.TagName) != nil {
		panic(fmt.Sprintf("gitlabtest: AddRelease: tag %q of project %d has a release already", r.TagName, project))
	}
	if r.Name == "" {
		r.Name = r.TagName
	}
	if r.AuthorID == 0 {
		r.AuthorID = developerID
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.cfg.clock()
	}
	if r.ReleasedAt.IsZero() {
		r.ReleasedAt = r.CreatedAt
	}
	r.Commit = t.Commit
	nr := r
	s.rel.add(p.ID, &nr)
	return nr
}

// Releases returns the project's releases, in creation order.
func (s *Server) Releases(project int64) []Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	var out []Release
	for _, r := range s.rel.list(p.ID) {
		out = append(out, *r)
	}
	return out
}

// routeReleases serves /projects/:id/releases[/:tag_name] the way
// lib/api/releases.rb and Releases::CreateService/UpdateService do.
func (s *Server) routeReleases(w http.ResponseWriter, a *apiRequest, p *project, m string, rest []string) {
	switch {
	case len(rest) == 0:
		methods(w, m, map[string]func(){
			get:  func() { s.listReleases(w, a, p) },
			post: func() { s.createRelease(w, a, p) },
		})
	case len(rest) == 1:
		tag := rest[0]
		methods(w, m, map[string]func(){
			get: func() {
				r := s.rel.find(p.ID, tag)
				if r == nil {
					writeError(w, http.StatusNotFound, "404 Not Found")
					return
				}
				writeJSON(w, http.StatusOK, s.releaseJSON(p, r))
			},
			put: func() { s.updateRelease(w, a, p, tag) },
			del: func() {
				r := s.rel.find(p.ID, tag)
				if r == nil {
					writeError(w, http.StatusNotFound, "404 Not Found")
					return
				}
				s.rel.byProject[p.ID] = slices.DeleteFunc(s.rel.byProject[p.ID], func(x *Release) bool { return x == r })
				writeJSON(w, http.StatusOK, s.releaseJSON(p, r))
			},
		})
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func (s *Server) listReleases(w http.ResponseWriter, a *apiRequest, p *project) {
	orderBy, sort := a.get("order_by"), a.get("sort")
	if orderBy == "" {
		orderBy = "released_at"
	}
	if sort == "" {
		sort = "desc"
	}
	if (orderBy != "released_at" && orderBy != "created_at") || (sort != "asc" && sort != "desc") {
		writeParamError(w, "order_by, sort does not have a valid value")
		return
	}
	items := slices.Clone(s.rel.list(p.ID))
	key := func(r *Release) time.Time { return r.ReleasedAt }
	if orderBy == "created_at" {
		key = func(r *Release) time.Time { return r.CreatedAt }
	}
	slices.SortStableFunc(items, func(x, y *Release) int {
		if sort == "asc" {
			return key(x).Compare(key(y))
		}
		return key(y).Compare(key(x))
	})
	writeList(s, w, a, items, func(r *Release) any { return s.releaseJSON(p, r) })
}

func (s *Server) createRelease(w http.ResponseWriter, a *apiRequest, p *project) {
	tag := a.get("tag_name")
	if tag == "" {
		writeParamError(w, "tag_name is missing")
		return
	}
	// Releases::CreateService, in its order.
	if s.rel.find(p.ID, tag) != nil {
		writeError(w, http.StatusConflict, "Release already exists")
		return
	}
	t, ok := p.tags[tag]
	if !ok {
		ref := a.get("ref")
		if ref == "" {
			writeError(w, http.StatusUnprocessableEntity, "Ref is not specified")
			return
		}
		c := resolveRef(p, ref)
		if c == nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Target %s is invalid", ref))
			return
		}
		t = newTag(tag, c.SHA, a.get("tag_message"), s.cfg.clock())
		p.setTag(t)
		s.fireTag(p, t, a.user.ID)
	}
	desc := a.get("description")
	if len([]rune(desc)) > maxReleaseDescription {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Validation failed: Description is too long (maximum is %d characters)", maxReleaseDescription))
		return
	}
	now := s.cfg.clock()
	r := &Release{TagName: tag, Name: a.get("name"), Description: desc, AuthorID: a.user.ID, Commit: t.Commit, CreatedAt: now, ReleasedAt: now}
	if r.Name == "" {
		r.Name = tag
	}
	if at, ok, err := a.timeParam("released_at"); err != nil {
		writeParamError(w, err.Error())
		return
	} else if ok {
		r.ReleasedAt = at
	}
	s.rel.add(p.ID, r)
	writeJSON(w, http.StatusCreated, s.releaseJSON(p, r))
}

func (s *Server) updateRelease(w http.ResponseWriter, a *apiRequest, p *project, tag string) {
	// Releases::UpdateService, in its order.
	if _, ok := p.tags[tag]; !ok {
		writeError(w, http.StatusNotFound, "Tag does not exist")
		return
	}
	r := s.rel.find(p.ID, tag)
	if r == nil {
		writeError(w, http.StatusNotFound, "Release does not exist")
		return
	}
	if !a.has("name") && !a.has("description") && !a.has("released_at") && !a.has("milestones") && !a.has("milestone_ids") {
		writeError(w, http.StatusBadRequest, "params is empty")
		return
	}
	if a.has("description") && len([]rune(a.get("description"))) > maxReleaseDescription {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Validation failed: Description is too long (maximum is %d characters)", maxReleaseDescription))
		return
	}
	at, hasAt, err := a.timeParam("released_at")
	if err != nil {
		writeParamError(w, err.Error())
		return
	}
	if a.has("name") {
		r.Name = a.get("name")
	}
	if a.has("description") {
		r.Description = a.get("description")
	}
	if hasAt {
		r.ReleasedAt = at
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(p, r))
}

// releaseJSON is API::Entities::Release for a user who can read the code.
func (s *Server) releaseJSON(p *project, r *Release) map[string]any {
	var commit any
	if c := p.commits[r.Commit]; c != nil {
		commit = s.commitJSON(p, c)
	}
	web := fmt.Sprintf("%s/%s", s.URL(), p.Path)
	var sources []any
	for _, f := range []string{"zip", "tar.gz", "tar.bz2", "tar"} {
		sources = append(sources, map[string]any{"format": f, "url": fmt.Sprintf("%s/-/archive/%s/%s-%s.%s", web, r.TagName, projectName(p), r.TagName, f)})
	}
	return map[string]any{
		"name":             r.Name,
		"tag_name":         r.TagName,
		"description":      r.Description,
		"description_html": nil,
		"created_at":       ts(r.CreatedAt),
		"released_at":      ts(r.ReleasedAt),
		"author":           s.userJSON(r.AuthorID),
		"commit":           commit,
		"upcoming_release": r.ReleasedAt.After(r.CreatedAt), // released_at set in the future when created; reading the clock here would move it
		"commit_path":      fmt.Sprintf("/%s/-/commit/%s", p.Path, r.Commit),
		"tag_path":         fmt.Sprintf("/%s/-/tags/%s", p.Path, r.TagName),
		"assets":           map[string]any{"count": len(sources), "sources": sources, "links": []any{}},
		"evidences":        []any{},
		"_links": map[string]any{
			"self":     fmt.Sprintf("%s/-/releases/%s", web, r.TagName),
			"edit_url": fmt.Sprintf("%s/-/releases/%s/edit", web, r.TagName),
		},
	}
}

// projectName is the last element of the project's path (its name in
// archives).
func projectName(p *project) string {
	return p.Path[strings.LastIndexByte(p.Path, '/')+1:]
}

// commitFile serves POST and PUT /projects/:id/repository/files/:file_path
// the way lib/api/files.rb and Files::CreateService/UpdateService do: one
// commit on branch, 400 with GitLab's message when the file exists (POST),
// does not exist (PUT) or changed since last_commit_id (PUT).
func (s *Server) commitFile(w http.ResponseWriter, a *apiRequest, p *project, m, filePath string) {
	var missing []string
	for _, k := range []string{"branch", "commit_message", "content"} {
		if !a.has(k) || (k != "content" && a.get(k) == "") {
			missing = append(missing, k+" is missing")
		}
	}
	if len(missing) > 0 {
		writeParamError(w, strings.Join(missing, ", "))
		return
	}
	branch := a.get("branch")
	content := []byte(a.get("content"))
	switch a.get("encoding") {
	case "", "text":
	case "base64":
		b, err := base64.StdEncoding.DecodeString(a.get("content"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "Invalid base64 content")
			return
		}
		content = b
	default:
		writeParamError(w, "encoding does not have a valid value")
		return
	}
	head, ok := p.branches[branch]
	if !ok {
		start := a.get("start_branch")
		if start == "" || p.branches[start] == "" {
			writeError(w, http.StatusBadRequest, "You can only create or edit files when you are on a branch")
			return
		}
		head = p.branches[start]
	}
	var tree map[string][]byte
	if c := p.commits[head]; c != nil {
		tree = c.tree
	}
	_, exists := tree[filePath]
	switch {
	case m == post && exists:
		writeError(w, http.StatusBadRequest, "A file with this name already exists")
		return
	case m == put && !exists:
		writeError(w, http.StatusBadRequest, "A file with this name doesn't exist")
		return
	case m == put && a.get("last_commit_id") != "":
		last := ""
		for _, x := range walk(p, head, nil) {
			if slices.Contains(x.Paths, filePath) {
				last = x.SHA
				break
			}
		}
		if last != a.get("last_commit_id") {
			writeError(w, http.StatusBadRequest, "You are attempting to update a file that has changed since you started editing it.")
			return
		}
	}
	author, email := a.user.Name, a.user.Email
	if v := a.get("author_name"); v != "" {
		author = v
	}
	if v := a.get("author_email"); v != "" {
		email = v
	}
	s.addCommit(p, branch, Commit{
		Message: a.get("commit_message"), Parents: []string{head}, AuthorName: author, AuthorEmail: email,
		Files: map[string][]byte{filePath: content},
	})
	status := http.StatusOK
	if m == post {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{"file_path": filePath, "branch": branch})
}
