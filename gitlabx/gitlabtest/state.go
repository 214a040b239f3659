package gitlabtest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// User is a GitLab user known to the server.
type User struct {
	ID       int64
	Username string
	Name     string
	Email    string
	Bot      bool
}

// Project is a GitLab project. Path is the full path ("group/name"); Name
// defaults to its last element and DefaultBranch to "main".
type Project struct {
	ID            int64
	Path          string
	Name          string
	DefaultBranch string
	Visibility    string // "private" unless set
	// AutocloseDisabled turns off the project setting
	// autoclose_referenced_issues (on by default, as in GitLab): merging an
	// MR then closes no issue and closes_issues lists none.
	AutocloseDisabled bool
}

// Issue is a snapshot of an issue. ID is global across projects, IID counts
// per project. State is "opened" or "closed".
type Issue struct {
	ID           int64
	IID          int64
	ProjectID    int64
	Title        string
	Description  string
	Labels       []string
	State        string
	Confidential bool
	AuthorID     int64 // 0 means Developer() when seeded
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ClosedAt     time.Time // zero while open
	ClosedByID   int64     // who closed it; 0 while open
}

// StateEvent is a resource state event of an issue (GET
// /projects/:id/issues/:iid/resource_state_events): who closed or reopened
// it and, for a close caused by a merge, the merge request's global ID.
type StateEvent struct {
	ID                   int64
	UserID               int64
	State                string // "closed" or "reopened"
	SourceMergeRequestID int64  // 0 unless a merged MR closed the issue
	CreatedAt            time.Time
}

// NoteableKind says what a note is attached to.
type NoteableKind string

// The kinds of noteable the server supports.
const (
	IssueNoteable        NoteableKind = "Issue"
	MergeRequestNoteable NoteableKind = "MergeRequest"
)

// Note is a snapshot of a comment on an issue or merge request.
type Note struct {
	ID       int64
	Body     string
	AuthorID int64
	Internal bool
	// System marks a note GitLab writes itself ("changed title from ...",
	// "mentioned in merge request !3"); the fake adds them on title and
	// description edits and on MR references. Readers should skip them.
	System bool
	// VisibleTo, when set, limits who can read the note (a cross-reference
	// from something they cannot see). Note lists drop it after paging, as
	// GitLab does, so a page can be shorter than per_page while more pages
	// follow.
	VisibleTo   []int64
	Kind        NoteableKind
	NoteableID  int64 // the issue's or MR's global ID
	NoteableIID int64
	ProjectID   int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// MergeRequest is a snapshot of a merge request. State is "opened",
// "closed", "merged" or "locked". ClosesIssues and RelatedIssues hold issue
// IIDs of the same project; they answer closes_issues and related_issues.
// As in GitLab, closes_issues also lists the issues the description closes
// with GitLab's default closing pattern ("Closes #12", "fixes #3, #4 and #5").
type MergeRequest struct {
	ID             int64
	IID            int64
	ProjectID      int64
	Title          string
	Description    string
	SourceBranch   string
	TargetBranch   string
	State          string
	Draft          bool
	Labels         []string
	AuthorID       int64
	SHA            string // head of the source branch when empty
	MergeCommitSHA string
	ClosesIssues   []int64
	RelatedIssues  []int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	MergedAt       time.Time
	MergedByID     int64 // the user who merged it; 0 until merged
}

// Commit is a commit in a project's repository. When adding one, Files sets
// file contents (nil content deletes the file) and Paths names further paths
// it touches; Parents defaults to the branch head.
type Commit struct {
	SHA         string
	Message     string
	Title       string // first line of Message
	AuthorName  string
	AuthorEmail string
	CreatedAt   time.Time
	Parents     []string
	Paths       []string
	Files       map[string][]byte
}

// Tag is a repository tag. Commit is the SHA of the commit it points at.
// Target is what GitLab reports as "target": the tag object's SHA for an
// annotated tag (Message set), the commit SHA for a lightweight one.
type Tag struct {
	Name      string
	Target    string
	Commit    string
	Message   string
	Protected bool
	CreatedAt time.Time
}

func (p *project) setTag(t *Tag) {
	p.tags[t.Name] = t
	p.tagOrder = nil
}

func (p *project) deleteTag(name string) {
	delete(p.tags, name)
	p.tagOrder = nil
}

func newTag(name, commit, message string, at time.Time) *Tag {
	t := &Tag{Name: name, Commit: commit, Target: commit, Message: message, CreatedAt: at}
	if message != "" {
		t.Target = fakeSHA("tag", name, commit, message)
	}
	return t
}

// Label is a project label.
type Label struct {
	ID          int64
	Name        string
	Color       string
	Description string
}

// Branch is a repository branch and the commit at its head.
type Branch struct {
	Name   string
	Commit string
}

// Upload is a markdown upload (POST /projects/:id/uploads).
type Upload struct {
	ID       int64
	Filename string
	Secret   string
	URL      string // "/uploads/<secret>/<filename>"
	FullPath string // "/-/project/<id>/uploads/<secret>/<filename>"
	Markdown string
	Content  []byte
}

type commitObj struct {
	Commit
	tree map[string][]byte // full snapshot after this commit
}

type project struct {
	Project
	issues   []*Issue
	mrs      []*MergeRequest
	notes    []*Note
	labels   []*Label
	branches map[string]string
	commits  map[string]*commitObj
	tags     map[string]*Tag
	// tagOrder caches sorted tag lists by "order_by sort search", so
	// paging through many tags sorts once; any tag change clears it.
	tagOrder map[string][]*Tag
	uploads  []*Upload
	// protectedTags are the project's protected tag patterns.
	protectedTags []ProtectedTag
	// stateEvents holds each issue's resource state events, by issue IID.
	stateEvents map[int64][]StateEvent
	nextIID     int64
	nextMR      int64
}

type state struct {
	projects map[int64]*project
	users    map[int64]User
	nextID   int64 // global ID counter for issues, MRs, notes, labels, uploads
}

func (st *state) init() {
	st.projects = map[int64]*project{}
	st.users = map[int64]User{}
	st.nextID = 1000
}

func (st *state) id() int64 {
	st.nextID++
	return st.nextID
}

func (st *state) project(key string) *project {
	for _, p := range st.projects {
		if fmt.Sprint(p.ID) == key || p.Path == key {
			return p
		}
	}
	return nil
}

func fakeSHA(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// AddProject adds (or replaces) a project and returns it with defaults
// filled in. A zero ID gets the next free one.
func (s *Server) AddProject(p Project) Project {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		p.ID = int64(len(s.st.projects) + 1)
		for s.st.projects[p.ID] != nil {
			p.ID++
		}
	}
	if p.Path == "" {
		p.Path = fmt.Sprintf("group/project-%d", p.ID)
	}
	if p.Name == "" {
		p.Name = p.Path[strings.LastIndex(p.Path, "/")+1:]
	}
	if p.DefaultBranch == "" {
		p.DefaultBranch = "main"
	}
	if p.Visibility == "" {
		p.Visibility = "private"
	}
	s.st.projects[p.ID] = &project{
		Project:  p,
		branches: map[string]string{},
		commits:  map[string]*commitObj{},
		tags:     map[string]*Tag{},
	}
	return p
}

func (s *Server) mustProject(id int64) *project {
	p := s.st.projects[id]
	if p == nil {
		panic(fmt.Sprintf("gitlabtest: no project %d; call AddProject first", id))
	}
	return p
}

// Projects returns every project, by ID.
func (s *Server) Projects() []Project {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Project
	for _, p := range s.st.projects {
		out = append(out, p.Project)
	}
	slices.SortFunc(out, func(a, b Project) int { return int(a.ID - b.ID) })
	return out
}

// AddLabel adds a project label (color "#6699cc") unless it exists.
func (s *Server) AddLabel(project int64, name string) Label {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	return *s.ensureLabel(p, name, "")
}

func (s *Server) ensureLabel(p *project, name, color string) *Label {
	for _, l := range p.labels {
		if l.Name == name {
			return l
		}
	}
	if color == "" {
		color = "#6699cc"
	}
	l := &Label{ID: s.st.id(), Name: name, Color: color}
	p.labels = append(p.labels, l)
	return l
}

// Labels returns the project's labels, in creation order.
func (s *Server) Labels(project int64) []Label {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Label
	for _, l := range s.mustProject(project).labels {
		out = append(out, *l)
	}
	return out
}

// addCommit adds c on branch ref; caller holds s.mu.
func (s *Server) addCommit(p *project, ref string, c Commit) Commit {
	head, ok := p.branches[ref]
	if !ok && ref != p.DefaultBranch {
		head = p.branches[p.DefaultBranch]
	}
	if c.Parents == nil && head != "" {
		c.Parents = []string{head}
	}
	tree := map[string][]byte{}
	if len(c.Parents) > 0 {
		if parent := p.commits[c.Parents[0]]; parent != nil {
			tree = maps.Clone(parent.tree)
		}
	}
	paths := slices.Clone(c.Paths)
	for path, content := range c.Files {
		if content == nil {
			delete(tree, path)
		} else {
			tree[path] = slices.Clone(content)
		}
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	sort.Strings(paths)
	c.Paths = paths
	c.Files = nil
	if c.Message == "" {
		c.Message = "Update " + strings.Join(paths, ", ")
	}
	if c.Title == "" {
		c.Title, _, _ = strings.Cut(c.Message, "\n")
	}
	if c.AuthorName == "" {
		c.AuthorName = s.cfg.bot.Name
	}
	if c.AuthorEmail == "" {
		c.AuthorEmail = s.cfg.bot.Email
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.cfg.clock()
	}
	if c.SHA == "" {
		c.SHA = fakeSHA(fmt.Sprint(p.ID), ref, c.Message, strings.Join(c.Parents, ","), strings.Join(paths, ","), c.CreatedAt.String(), fmt.Sprint(len(p.commits)))
	}
	p.commits[c.SHA] = &commitObj{Commit: c, tree: tree}
	p.branches[ref] = c.SHA
	return c
}

// AddCommit adds a commit on branch ref (creating the branch from the
// default branch, or as an orphan, when it does not exist) and returns it
// with its SHA, parents and defaults filled in.
func (s *Server) AddCommit(project int64, ref string, c Commit) Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Files = maps.Clone(c.Files)
	return s.addCommit(s.mustProject(project), ref, c)
}

// SetFile commits content at path on branch ref (creating the branch) and
// returns the commit.
func (s *Server) SetFile(project int64, ref, path string, content []byte) Commit {
	if content == nil {
		content = []byte{}
	}
	return s.AddCommit(project, ref, Commit{Files: map[string][]byte{path: content}})
}

// DeleteFile commits the removal of path on branch ref.
func (s *Server) DeleteFile(project int64, ref, path string) Commit {
	return s.AddCommit(project, ref, Commit{Message: "Delete " + path, Files: map[string][]byte{path: nil}})
}

// DeleteBranch removes a branch; its commits stay reachable by SHA.
func (s *Server) DeleteBranch(project int64, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mustProject(project).branches, ref)
}

// File returns the content of path at ref (a branch, tag or SHA).
func (s *Server) File(project int64, ref, path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	c := resolveRef(p, ref)
	if c == nil {
		return nil, false
	}
	b, ok := c.tree[path]
	return slices.Clone(b), ok
}

// Branches returns the project's branches, sorted by name.
func (s *Server) Branches(project int64) []Branch {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	var out []Branch
	for _, n := range slices.Sorted(maps.Keys(p.branches)) {
		out = append(out, Branch{Name: n, Commit: p.branches[n]})
	}
	return out
}

// Commits returns the commits reachable from ref, newest first.
func (s *Server) Commits(project int64, ref string) []Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	start := resolveRef(p, ref)
	if start == nil {
		return nil
	}
	var out []Commit
	for _, c := range walk(p, start.SHA, nil) {
		out = append(out, c.Commit)
	}
	return out
}

// resolveRef finds a branch, tag, full SHA or unique SHA prefix (≥ 7).
func resolveRef(p *project, ref string) *commitObj {
	if ref == "" {
		ref = p.DefaultBranch
	}
	if sha, ok := p.branches[ref]; ok {
		return p.commits[sha]
	}
	if t, ok := p.tags[ref]; ok {
		return p.commits[t.Commit]
	}
	if c, ok := p.commits[ref]; ok {
		return c
	}
	if len(ref) >= 7 {
		var found *commitObj
		for sha, c := range p.commits {
			if strings.HasPrefix(sha, ref) {
				if found != nil {
					return nil
				}
				found = c
			}
		}
		return found
	}
	return nil
}

// walk returns the commits reachable from sha, newest first (by date, then
// discovery order), skipping those reachable from any of stop.
func walk(p *project, sha string, stop map[string]bool) []*commitObj {
	seen := map[string]bool{}
	var out []*commitObj
	queue := []string{sha}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if seen[x] || stop[x] {
			continue
		}
		seen[x] = true
		c := p.commits[x]
		if c == nil {
			continue
		}
		out = append(out, c)
		queue = append(queue, c.Parents...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out
}

func reachable(p *project, sha string) map[string]bool {
	m := map[string]bool{}
	if sha == "" {
		return m
	}
	for _, c := range walk(p, sha, nil) {
		m[c.SHA] = true
	}
	return m
}

// AddTag adds (or replaces) a tag and returns it. t.Commit (or, when
// empty, t.Target) names what it points at: a branch, tag or commit SHA.
// Target is recomputed. It panics if the ref does not resolve. It makes no
// HTTP call and costs O(1), so benchmarks can seed many tags.
func (s *Server) AddTag(project int64, t Tag) Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	ref := t.Commit
	if ref == "" {
		ref = t.Target
	}
	var sha string
	if c, ok := p.commits[ref]; ok {
		sha = c.SHA
	} else if c := resolveRef(p, ref); c != nil {
		sha = c.SHA
	} else {
		panic(fmt.Sprintf("gitlabtest: AddTag %q: no commit %q in project %d", t.Name, ref, project))
	}
	at := t.CreatedAt
	if at.IsZero() {
		at = s.cfg.clock()
	}
	nt := newTag(t.Name, sha, t.Message, at)
	nt.Protected = t.Protected
	p.setTag(nt)
	return *nt
}

// Tags returns the project's tags, sorted by name.
func (s *Server) Tags(project int64) []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	var out []Tag
	for _, n := range slices.Sorted(maps.Keys(p.tags)) {
		out = append(out, *p.tags[n])
	}
	return out
}

// AddIssue adds an issue and returns it with ID, IID and defaults filled in
// (author Developer(), state "opened"). Labels missing from the project are
// created, as GitLab does. Seeding fires no webhooks.
func (s *Server) AddIssue(project int64, is Issue) Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	return *s.createIssue(p, is)
}

func (s *Server) createIssue(p *project, is Issue) *Issue {
	is.ID = s.st.id()
	is.IID = assignIID(&p.nextIID, is.IID, func(n int64) bool { return s.issueByIID(p, n) != nil })
	is.ProjectID = p.ID
	if is.State == "" {
		is.State = "opened"
	}
	if is.AuthorID == 0 {
		is.AuthorID = developerID
	}
	now := s.cfg.clock()
	if is.CreatedAt.IsZero() {
		is.CreatedAt = now
	}
	if is.UpdatedAt.IsZero() {
		is.UpdatedAt = is.CreatedAt
	}
	if is.State == "closed" && is.ClosedAt.IsZero() {
		is.ClosedAt = is.UpdatedAt
	}
	if is.State == "closed" && is.ClosedByID == 0 {
		is.ClosedByID = is.AuthorID
	}
	is.Labels = s.normalizeLabels(p, is.Labels)
	ip := &is
	p.issues = append(p.issues, ip)
	return ip
}

// normalizeLabels creates missing labels, drops duplicates and empties, and
// uses the project's spelling of existing ones.
func (s *Server) normalizeLabels(p *project, names []string) []string {
	out := []string{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		l := s.ensureLabel(p, n, "")
		if !slices.Contains(out, l.Name) {
			out = append(out, l.Name)
		}
	}
	sort.Strings(out)
	return out
}

// assignIID returns want when it is set and free, else the next IID from
// the per-project counter *next, which stays above every IID handed out.
func assignIID(next *int64, want int64, taken func(int64) bool) int64 {
	if want <= 0 || taken(want) {
		*next++
		want = *next
	}
	*next = max(*next, want)
	return want
}

func (s *Server) issueByIID(p *project, iid int64) *Issue {
	for _, is := range p.issues {
		if is.IID == iid {
			return is
		}
	}
	return nil
}

func (s *Server) mrByIID(p *project, iid int64) *MergeRequest {
	for _, m := range p.mrs {
		if m.IID == iid {
			return m
		}
	}
	return nil
}

func cloneIssue(is *Issue) Issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	return c
}

// Issues returns snapshots of the project's issues, by IID.
func (s *Server) Issues(project int64) []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Issue
	for _, is := range s.mustProject(project).issues {
		out = append(out, cloneIssue(is))
	}
	slices.SortFunc(out, func(a, b Issue) int { return int(a.IID - b.IID) })
	return out
}

// Issue returns a snapshot of one issue.
func (s *Server) Issue(project, iid int64) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issueByIID(s.mustProject(project), iid)
	if is == nil {
		return Issue{}, false
	}
	return cloneIssue(is), true
}

// AddMergeRequest adds a merge request and returns it with ID, IID and
// defaults filled in (author Developer(), state "opened", target the
// default branch).
func (s *Server) AddMergeRequest(project int64, mr MergeRequest) MergeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	mr.ID = s.st.id()
	mr.IID = assignIID(&p.nextMR, mr.IID, func(n int64) bool { return s.mrByIID(p, n) != nil })
	mr.ProjectID = p.ID
	if mr.State == "" {
		mr.State = "opened"
	}
	if mr.TargetBranch == "" {
		mr.TargetBranch = p.DefaultBranch
	}
	if mr.AuthorID == 0 {
		mr.AuthorID = developerID
	}
	if mr.CreatedAt.IsZero() {
		mr.CreatedAt = s.cfg.clock()
	}
	if mr.UpdatedAt.IsZero() {
		mr.UpdatedAt = mr.CreatedAt
	}
	mr.Labels = s.normalizeLabels(p, mr.Labels)
	mr.ClosesIssues = slices.Clone(mr.ClosesIssues)
	mr.RelatedIssues = slices.Clone(mr.RelatedIssues)
	m := mr
	p.mrs = append(p.mrs, &m)
	return s.mrSnapshot(p, &m)
}

func (s *Server) mrSnapshot(p *project, m *MergeRequest) MergeRequest {
	c := *m
	c.Labels = slices.Clone(m.Labels)
	c.ClosesIssues = slices.Clone(m.ClosesIssues)
	c.RelatedIssues = slices.Clone(m.RelatedIssues)
	if c.SHA == "" {
		c.SHA = p.branches[c.SourceBranch]
	}
	return c
}

// closingRefs matches GitLab's default issue closing pattern, restricted to
// same-project "#123" references.
var (
	closingRefs = regexp.MustCompile(`(?i)\b(?:clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?):? +((?:(?:issues? +)?#\d+(?: *,? +and +| *,? *)?)+)`)
	issueRef    = regexp.MustCompile(`#(\d+)`)
)

// closesIssues returns the IIDs an MR closes on merge, as GitLab's
// MergeRequest#closes_issues and visible_closing_issues_for: nothing
// unless it targets the default branch and the project's auto-close
// setting is on; otherwise the explicit list plus the references that
// GitLab's closing pattern finds in its title, description and commit
// messages, in order, without duplicates.
func closesIssues(p *project, m *MergeRequest) []int64 {
	if m.TargetBranch != p.DefaultBranch || p.AutocloseDisabled {
		return nil
	}
	out := slices.Clone(m.ClosesIssues)
	texts := []string{m.Title, m.Description}
	for _, c := range mrCommits(p, m) {
		texts = append(texts, c.Message)
	}
	for _, match := range closingRefs.FindAllStringSubmatch(strings.Join(texts, "\n"), -1) {
		for _, ref := range issueRef.FindAllStringSubmatch(match[1], -1) {
			if n, err := strconv.ParseInt(ref[1], 10, 64); err == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// mrCommits returns the MR's own commits: those of its source head that
// its target did not have (before the merge, for a merged MR).
func mrCommits(p *project, m *MergeRequest) []*commitObj {
	head := m.SHA
	if head == "" {
		head = p.branches[m.SourceBranch]
	}
	base := p.branches[m.TargetBranch]
	if mc := p.commits[m.MergeCommitSHA]; mc != nil && len(mc.Parents) > 0 {
		base = mc.Parents[0]
	}
	if head == "" {
		return nil
	}
	return walk(p, head, reachable(p, base))
}

// MergeCloseOrder says in which order the fake delivers a merge's "merge"
// event and the "close" events of the issues it closes (see WithMergeCloseOrder).
type MergeCloseOrder int

// The orders WithMergeCloseOrder accepts.
const (
	// CloseOrderRandom picks one of the two orders at random for each
	// merge, as GitLab's independent background jobs do. The default.
	CloseOrderRandom MergeCloseOrder = iota
	// CloseAfterMerge delivers the merge event first and closes the issues
	// only once that delivery was answered, so a receiver that handles the
	// merge event sees the issues still open.
	CloseAfterMerge
	// CloseBeforeMerge closes the issues with the merge and delivers their
	// close events before the merge event.
	CloseBeforeMerge
)

// MergeMergeRequest merges merge request iid the way GitLab does, as the
// MR's author: the target branch gets a merge commit whose tree is the source
// branch's, the MR becomes "merged", and the issues it closes (see
// MergeRequest) are closed by a background job, in the order that
// WithMergeCloseOrder chooses; call WaitDeliveries before looking at them.
// Hooks (AddHook) get the MR's "merge" event and each closed issue's
// "close" event. It returns the merged MR.
func (s *Server) MergeMergeRequest(project, iid int64) MergeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	m := s.mrByIID(p, iid)
	if m == nil {
		panic(fmt.Sprintf("gitlabtest: no merge request !%d in project %d", iid, project))
	}
	s.merge(p, m, m.AuthorID)
	return s.mrSnapshot(p, m)
}

// merge performs a merge by user and fires its webhooks; caller holds s.mu.
// As GitLab's MergeRequests::PostMergeService, it marks the MR merged, queues
// the closing of the issues it closes (MergeRequests::CloseIssueWorker, as
// the merging user) and executes the merge hooks; the two are independent,
// so their deliveries come in either order.
func (s *Server) merge(p *project, m *MergeRequest, user int64) {
	before := s.mrSnapshot(p, m)
	src := p.branches[m.SourceBranch]
	if m.SHA == "" {
		m.SHA = src
	}
	closing := closesIssues(p, m)
	var parents []string
	if t := p.branches[m.TargetBranch]; t != "" {
		parents = append(parents, t)
	}
	if src != "" {
		parents = append(parents, src)
	}
	files := map[string][]byte{}
	if c := p.commits[src]; c != nil {
		for k, v := range c.tree {
			files[k] = v
		}
		if t := p.commits[p.branches[m.TargetBranch]]; t != nil {
			for k := range t.tree {
				if _, ok := c.tree[k]; !ok {
					files[k] = nil
				}
			}
		}
	}
	c := s.addCommit(p, m.TargetBranch, Commit{
		Message: fmt.Sprintf("Merge branch '%s' into '%s'\n\n%s\n\nSee merge request %s!%d", m.SourceBranch, m.TargetBranch, m.Title, p.Path, m.IID),
		Parents: parents,
		Files:   files,
	})
	now := s.cfg.clock()
	m.State, m.MergeCommitSHA, m.MergedAt, m.UpdatedAt, m.MergedByID = "merged", c.SHA, now, now, user
	closeIssues := func() {
		for _, iid := range closing {
			if is := s.issueByIID(p, iid); is != nil && is.State == "opened" {
				ib := cloneIssue(is)
				at := s.cfg.clock()
				is.State, is.ClosedAt, is.UpdatedAt, is.ClosedByID = "closed", at, at, user
				s.addStateEvent(p, is, user, "closed", m.ID)
				s.fireIssue(p, is, user, "close", s.issueChanges(p, &ib, is))
			}
		}
	}
	order := s.cfg.closeOrder
	if order == CloseOrderRandom {
		order = CloseAfterMerge
		if rand.IntN(2) == 0 {
			order = CloseBeforeMerge
		}
	}
	if order == CloseBeforeMerge {
		closeIssues()
		s.fireMR(p, m, user, "merge", s.mrChanges(p, &before, m))
		return
	}
	s.fireMR(p, m, user, "merge", s.mrChanges(p, &before, m))
	if len(closing) > 0 {
		s.enqueue(pendingDelivery{job: closeIssues})
	}
}

// addStateEvent records a resource state event; caller holds s.mu.
func (s *Server) addStateEvent(p *project, is *Issue, user int64, state string, mrID int64) {
	if p.stateEvents == nil {
		p.stateEvents = map[int64][]StateEvent{}
	}
	p.stateEvents[is.IID] = append(p.stateEvents[is.IID], StateEvent{
		ID: s.st.id(), UserID: user, State: state, SourceMergeRequestID: mrID, CreatedAt: is.UpdatedAt,
	})
}

// StateEvents returns the resource state events of an issue, oldest first.
func (s *Server) StateEvents(project, iid int64) []StateEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustProject(project).stateEvents[iid])
}

// SetMergeRequest replaces the stored merge request with the same IID
// (for example to change its state to "merged" before sending an event).
func (s *Server) SetMergeRequest(project int64, mr MergeRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	m := s.mrByIID(p, mr.IID)
	if m == nil {
		panic(fmt.Sprintf("gitlabtest: no merge request !%d in project %d", mr.IID, project))
	}
	mr.ID, mr.ProjectID = m.ID, m.ProjectID
	mr.Labels = s.normalizeLabels(p, mr.Labels)
	mr.UpdatedAt = s.cfg.clock()
	*m = mr
}

// MergeRequests returns snapshots of the project's merge requests, by IID.
func (s *Server) MergeRequests(project int64) []MergeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	var out []MergeRequest
	for _, m := range p.mrs {
		out = append(out, s.mrSnapshot(p, m))
	}
	slices.SortFunc(out, func(a, b MergeRequest) int { return int(a.IID - b.IID) })
	return out
}

// AddNote adds a note to an issue or merge request and returns it. The
// author is the bot unless AuthorID is set, since seeded notes are most
// often the bot's own earlier comments (only a note's author may edit it);
// seed a person's comment with AuthorID: srv.Developer().ID.
func (s *Server) AddNote(project int64, kind NoteableKind, iid int64, n Note) Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	id, ok := s.noteableID(p, kind, iid)
	if !ok {
		panic(fmt.Sprintf("gitlabtest: no %s %d in project %d", kind, iid, project))
	}
	return *s.createNote(p, kind, id, iid, n)
}

func (s *Server) noteableID(p *project, kind NoteableKind, iid int64) (int64, bool) {
	switch kind {
	case IssueNoteable:
		if is := s.issueByIID(p, iid); is != nil {
			return is.ID, true
		}
	case MergeRequestNoteable:
		if m := s.mrByIID(p, iid); m != nil {
			return m.ID, true
		}
	}
	return 0, false
}

func (s *Server) createNote(p *project, kind NoteableKind, id, iid int64, n Note) *Note {
	n.ID = s.st.id()
	n.VisibleTo = slices.Clone(n.VisibleTo)
	n.Kind, n.NoteableID, n.NoteableIID, n.ProjectID = kind, id, iid, p.ID
	if n.AuthorID == 0 {
		n.AuthorID = s.cfg.bot.ID
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = s.cfg.clock()
	}
	n.UpdatedAt = n.CreatedAt
	np := &n
	p.notes = append(p.notes, np)
	return np
}

// Notes returns the notes on one issue or merge request, oldest first.
func (s *Server) Notes(project int64, kind NoteableKind, iid int64) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Note
	for _, n := range s.mustProject(project).notes {
		if n.Kind == kind && n.NoteableIID == iid {
			out = append(out, *n)
		}
	}
	return out
}

// Uploads returns the project's markdown uploads, oldest first.
func (s *Server) Uploads(project int64) []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Upload
	for _, u := range s.mustProject(project).uploads {
		c := *u
		c.Content = slices.Clone(u.Content)
		out = append(out, c)
	}
	return out
}

// ProtectedTag is a protected tag pattern: Name is a tag name or a
// wildcard pattern ("v*", "release-*-final"). Only the users in
// CreateUserIDs may create matching tags (GitLab's allowed_to_create; an
// empty list means no one the fake knows, as for "Maintainers" when no
// test user is a maintainer).
type ProtectedTag struct {
	Name          string
	CreateUserIDs []int64
}

// ProtectTag adds a protected tag pattern to the project. Creating a
// matching tag through the API as a user not in CreateUserIDs then fails
// like GitLab's Gitlab::Checks::TagCheck: 400 {"message": "You are not
// allowed to create this tag as it is protected."}.
func (s *Server) ProtectTag(project int64, pt ProtectedTag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	pt.CreateUserIDs = slices.Clone(pt.CreateUserIDs)
	p.protectedTags = append(p.protectedTags, pt)
}

// protectedTag returns the first protected pattern that name matches.
func (p *project) protectedTag(name string) (ProtectedTag, bool) {
	for _, pt := range p.protectedTags {
		if wildcardMatch(pt.Name, name) {
			return pt, true
		}
	}
	return ProtectedTag{}, false
}

// wildcardMatch matches GitLab's protected ref patterns, where "*" stands
// for any run of characters (including "/").
func wildcardMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(name, mid)
		if i < 0 {
			return false
		}
		name = name[i+len(mid):]
	}
	return strings.HasSuffix(name, parts[len(parts)-1])
}
