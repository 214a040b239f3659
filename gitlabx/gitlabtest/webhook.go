package gitlabtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opskit/opskit/internal/fixtures"
)

// DefaultUserAgent is the User-Agent SendWebhook sends unless told otherwise.
const DefaultUserAgent = "GitLab/18.6.0"

// WebhookOptions configures one delivery made by SendWebhook. Zero fields
// select the documented defaults.
type WebhookOptions struct {
	// Token is sent as X-Gitlab-Token; empty sends no header.
	Token string
	// SigningToken, when set, signs the delivery the Standard Webhooks way,
	// as GitLab does: webhook-id, webhook-timestamp and
	// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
	// It has the form "whsec_<base64 key>".
	SigningToken string
	// IdempotencyKey is sent as Idempotency-Key and webhook-id; the default
	// is a new random UUID. Reuse it to imitate a redelivery.
	IdempotencyKey string
	// EventUUID is sent as X-Gitlab-Event-UUID; the default is a random UUID.
	EventUUID string
	// WebhookUUID is sent as X-Gitlab-Webhook-UUID; the default is a
	// random UUID.
	WebhookUUID string
	// Instance is sent as X-Gitlab-Instance; default "https://gitlab.example.com".
	Instance string
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// Timestamp is the signing time; zero means time.Now.
	Timestamp time.Time
	// Header holds extra headers, set last (they may override the above).
	Header http.Header
	// Client sends the request; nil uses a client with GitLab's 10 s timeout.
	Client *http.Client
}

// ErrBadSigningToken is returned by SignWebhook and SendWebhook when the
// signing token is not "whsec_" followed by base64.
var ErrBadSigningToken = errors.New("gitlabtest: signing token is not whsec_<base64>")

// SendWebhook posts body to url as GitLab delivers a webhook: with
// X-Gitlab-Event set to event ("Merge Request Hook", "Note Hook", ...),
// Content-Type application/json and the headers described in
// WebhookOptions. The response body is read fully and replaced by an
// in-memory copy, so closing it is optional. It stops when ctx is cancelled.
func SendWebhook(ctx context.Context, url, event string, body []byte, o WebhookOptions) (*http.Response, error) {
	if o.IdempotencyKey == "" {
		o.IdempotencyKey = NewUUID()
	}
	if o.EventUUID == "" {
		o.EventUUID = NewUUID()
	}
	if o.WebhookUUID == "" {
		o.WebhookUUID = NewUUID()
	}
	if o.Instance == "" {
		o.Instance = "https://gitlab.example.com"
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Timestamp.IsZero() {
		o.Timestamp = time.Now()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("gitlabtest: webhook request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", o.UserAgent)
	h.Set("X-Gitlab-Event", event)
	h.Set("X-Gitlab-Instance", o.Instance)
	h.Set("X-Gitlab-Webhook-UUID", o.WebhookUUID)
	h.Set("X-Gitlab-Event-UUID", o.EventUUID)
	h.Set("Idempotency-Key", o.IdempotencyKey)
	if o.Token != "" {
		h.Set("X-Gitlab-Token", o.Token)
	}
	if o.SigningToken != "" {
		sig, err := SignWebhook(o.SigningToken, o.IdempotencyKey, o.Timestamp, body)
		if err != nil {
			return nil, err
		}
		h.Set("webhook-id", o.IdempotencyKey)
		h.Set("webhook-timestamp", strconv.FormatInt(o.Timestamp.Unix(), 10))
		h.Set("webhook-signature", sig)
	}
	for k, vs := range o.Header {
		h[k] = append([]string(nil), vs...)
	}
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gitlabtest: webhook %s: %w", event, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("gitlabtest: webhook %s: reading response: %w", event, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// SignWebhook returns the webhook-signature value GitLab sends for a
// delivery: "v1," followed by the base64 HMAC-SHA256, keyed with the
// base64-decoded part of signingToken after "whsec_", of
// id + "." + unix seconds + "." + body.
func SignWebhook(signingToken, id string, ts time.Time, body []byte) (string, error) {
	enc, ok := strings.CutPrefix(signingToken, "whsec_")
	if !ok {
		return "", ErrBadSigningToken
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return "", ErrBadSigningToken
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts.Unix())
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// NewSigningToken returns a random "whsec_" signing token with a 32-byte
// key, the form GitLab accepts.
func NewSigningToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

// NewUUID returns a random version 4 UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Fixture returns a recorded GitLab webhook body from internal/fixtures by
// name (for example "merge_request_open") and the X-Gitlab-Event header
// GitLab sends with it.
func Fixture(name string) (body []byte, event string, err error) {
	event, ok := fixtures.GitLabEvents()[name]
	if !ok {
		return nil, "", fmt.Errorf("gitlabtest: no webhook fixture %q", name)
	}
	body, err = fixtures.GitLabWebhook(name)
	if err != nil {
		return nil, "", fmt.Errorf("gitlabtest: webhook fixture %q: %w", name, err)
	}
	return body, event, nil
}

// EventOptions tunes an event payload built from the server's state.
type EventOptions struct {
	// Action is object_attributes.action: "open", "update", "merge",
	// "close", "reopen" (MRs), "open", "update", "close", "reopen"
	// (issues). Default "open".
	Action string
	// UserID is the user who caused the event (the top-level "user");
	// 0 means the author of the MR or issue.
	UserID int64
	// OldRev sets object_attributes.oldrev (an MR update that pushed code).
	OldRev string
	// Changes is sent as "changes" (default {}).
	Changes map[string]any
}

// Event names as GitLab sends them in X-Gitlab-Event.
const (
	MergeRequestHook      = "Merge Request Hook"
	IssueHook             = "Issue Hook"
	ConfidentialIssueHook = "Confidential Issue Hook"
	NoteHook              = "Note Hook"
	ConfidentialNoteHook  = "Confidential Note Hook"
	PushHook              = "Push Hook"
	TagPushHook           = "Tag Push Hook"
	PipelineHook          = "Pipeline Hook"
)

func hookTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func (s *Server) hookProject(p *project) map[string]any {
	ns := "group"
	if i := strings.LastIndex(p.Path, "/"); i >= 0 {
		ns = p.Path[:i]
	}
	web := s.URL() + "/" + p.Path
	return map[string]any{
		"id": p.ID, "name": p.Name, "description": "", "web_url": web, "avatar_url": nil,
		"git_ssh_url": "git@127.0.0.1:" + p.Path + ".git", "git_http_url": web + ".git",
		"namespace": ns, "visibility_level": 0, "path_with_namespace": p.Path,
		"default_branch": p.DefaultBranch, "ci_config_path": "", "homepage": web,
		"url": "git@127.0.0.1:" + p.Path + ".git", "ssh_url": "git@127.0.0.1:" + p.Path + ".git", "http_url": web + ".git",
	}
}

func (s *Server) hookUser(id int64) map[string]any {
	u := s.userJSON(id)
	email := "[REDACTED]"
	if x, ok := s.st.users[id]; ok && x.Email != "" {
		email = x.Email
	}
	return map[string]any{"id": u["id"], "name": u["name"], "username": u["username"], "avatar_url": "", "email": email}
}

func (s *Server) hookLabels(p *project, names []string) []any {
	out := []any{}
	for _, n := range names {
		for _, l := range p.labels {
			if l.Name == n {
				out = append(out, map[string]any{
					"id": l.ID, "title": l.Name, "color": l.Color, "project_id": p.ID,
					"created_at": hookTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
					"updated_at": hookTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
					"template":   false, "description": l.Description, "type": "ProjectLabel", "group_id": nil,
				})
			}
		}
	}
	return out
}

// patchFixture loads a fixture and overlays the given keys, so payloads keep
// every field GitLab sends even where the fake has nothing to say.
func patchFixture(name string, top map[string]any, attrs map[string]any) ([]byte, error) {
	raw, _, err := Fixture(name)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("gitlabtest: fixture %s: %w", name, err)
	}
	if oa, ok := m["object_attributes"].(map[string]any); ok {
		for k, v := range attrs {
			oa[k] = v
		}
	}
	for k, v := range top {
		old, ok1 := m[k].(map[string]any)
		nw, ok2 := v.(map[string]any)
		if ok1 && ok2 && (k == "issue" || k == "merge_request") {
			// Keep the recorded object's extra fields under the fake's values.
			for kk, vv := range nw {
				old[kk] = vv
			}
			continue
		}
		m[k] = v
	}
	return json.Marshal(m)
}

var mrStateID = map[string]int{"opened": 1, "closed": 2, "merged": 3, "locked": 4}

func (s *Server) mrHookAttrs(p *project, mr *MergeRequest) map[string]any {
	snap := s.mrSnapshot(p, mr)
	web := s.URL() + "/" + p.Path
	proj := s.hookProject(p)
	var lastCommit any
	if c := p.commits[snap.SHA]; c != nil {
		lastCommit = map[string]any{
			"id": c.SHA, "message": c.Message, "title": c.Title, "timestamp": c.CreatedAt.UTC().Format(time.RFC3339),
			"url": web + "/-/commit/" + c.SHA, "author": map[string]any{"name": c.AuthorName, "email": c.AuthorEmail},
		}
	}
	return map[string]any{
		"id": mr.ID, "iid": mr.IID, "target_branch": mr.TargetBranch, "source_branch": mr.SourceBranch,
		"source_project_id": p.ID, "target_project_id": p.ID, "author_id": mr.AuthorID,
		"assignee_ids": []any{}, "assignee_id": nil, "reviewer_ids": []any{},
		"title": mr.Title, "description": mr.Description,
		"created_at": hookTime(mr.CreatedAt), "updated_at": hookTime(mr.UpdatedAt),
		"state": mr.State, "state_id": mrStateID[mr.State],
		"work_in_progress": mr.Draft, "draft": mr.Draft,
		"merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
		"url":    fmt.Sprintf("%s/-/merge_requests/%d", web, mr.IID),
		"source": proj, "target": proj, "last_commit": lastCommit,
		"labels":           s.hookLabels(p, mr.Labels),
		"merge_commit_sha": nilIfEmpty(mr.MergeCommitSHA),
		"milestone_id":     nil,
	}
}

func (s *Server) issueHookAttrs(p *project, is *Issue) map[string]any {
	stateID := 1
	if is.State == "closed" {
		stateID = 2
	}
	return map[string]any{
		"id": is.ID, "iid": is.IID, "title": is.Title, "description": is.Description,
		"author_id": is.AuthorID, "project_id": p.ID, "assignee_ids": []any{}, "assignee_id": nil,
		"created_at": hookTime(is.CreatedAt), "updated_at": hookTime(is.UpdatedAt),
		"state": is.State, "state_id": stateID, "confidential": is.Confidential,
		"url":    s.issueWebURL(p, is.IID),
		"labels": s.hookLabels(p, is.Labels), "milestone_id": nil,
	}
}

func (s *Server) hookRepository(p *project) map[string]any {
	web := s.URL() + "/" + p.Path
	return map[string]any{"name": p.Name, "url": "git@127.0.0.1:" + p.Path + ".git", "description": "", "homepage": web}
}

// MergeRequestEvent builds a "Merge Request Hook" payload for merge
// request iid from the server's state, on top of the recorded
// merge_request_open fixture. Send it with SendWebhook and MergeRequestHook.
func (s *Server) MergeRequestEvent(project, iid int64, o EventOptions) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projects[project]
	if p == nil {
		return nil, fmt.Errorf("gitlabtest: no project %d", project)
	}
	mr := s.mrByIID(p, iid)
	if mr == nil {
		return nil, fmt.Errorf("gitlabtest: no merge request !%d in project %d", iid, project)
	}
	return s.mrEvent(p, mr, o)
}

// mrEvent builds an MR payload; caller holds s.mu.
func (s *Server) mrEvent(p *project, mr *MergeRequest, o EventOptions) ([]byte, error) {
	if o.Action == "" {
		o.Action = "open"
	}
	user := o.UserID
	if user == 0 {
		user = mr.AuthorID
	}
	attrs := s.mrHookAttrs(p, mr)
	attrs["action"] = o.Action
	attrs["system"] = false
	attrs["system_action"] = nil
	if o.OldRev != "" {
		attrs["oldrev"] = o.OldRev
	}
	changes := o.Changes
	if changes == nil {
		changes = map[string]any{}
	}
	return patchFixture("merge_request_open", map[string]any{
		"object_kind": "merge_request", "event_type": "merge_request",
		"user": s.hookUser(user), "project": s.hookProject(p),
		"repository": s.hookRepository(p),
		"labels":     s.hookLabels(p, mr.Labels), "changes": changes,
		"assignees": []any{}, "reviewers": []any{},
	}, attrs)
}

// IssueEvent builds an "Issue Hook" payload for issue iid from the
// server's state, on top of the recorded issue_open fixture. GitLab sends
// confidential issues' events as "Confidential Issue Hook".
func (s *Server) IssueEvent(project, iid int64, o EventOptions) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projects[project]
	if p == nil {
		return nil, fmt.Errorf("gitlabtest: no project %d", project)
	}
	is := s.issueByIID(p, iid)
	if is == nil {
		return nil, fmt.Errorf("gitlabtest: no issue #%d in project %d", iid, project)
	}
	return s.issueEvent(p, is, o)
}

// issueEvent builds an issue payload; caller holds s.mu.
func (s *Server) issueEvent(p *project, is *Issue, o EventOptions) ([]byte, error) {
	if o.Action == "" {
		o.Action = "open"
	}
	user := o.UserID
	if user == 0 {
		user = is.AuthorID
	}
	changes := o.Changes
	if changes == nil {
		changes = map[string]any{}
	}
	attrs := s.issueHookAttrs(p, is)
	attrs["action"] = o.Action
	kind := "issue"
	if is.Confidential {
		kind = "confidential_issue"
	}
	return patchFixture("issue_open", map[string]any{
		"object_kind": "issue", "event_type": kind,
		"user": s.hookUser(user), "project": s.hookProject(p),
		"repository": s.hookRepository(p),
		"assignees":  []any{}, "assignee": nil,
		"labels": s.hookLabels(p, is.Labels), "changes": changes,
	}, attrs)
}

// NoteEvent builds a "Note Hook" payload for note noteID on issue or merge
// request iid, on top of the recorded note_issue / note_merge_request
// fixtures. EventOptions.Action defaults to "create"; the user defaults to
// the note's author.
func (s *Server) NoteEvent(project int64, kind NoteableKind, iid, noteID int64, o EventOptions) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.st.projects[project]
	if p == nil {
		return nil, fmt.Errorf("gitlabtest: no project %d", project)
	}
	var n *Note
	for _, x := range p.notes {
		if x.ID == noteID && x.Kind == kind && x.NoteableIID == iid {
			n = x
		}
	}
	if n == nil {
		return nil, fmt.Errorf("gitlabtest: no note %d on %s %d in project %d", noteID, kind, iid, project)
	}
	return s.noteEvent(p, n, o)
}

// noteEvent builds a note payload; caller holds s.mu.
func (s *Server) noteEvent(p *project, n *Note, o EventOptions) ([]byte, error) {
	kind, iid := n.Kind, n.NoteableIID
	if o.Action == "" {
		o.Action = "create"
	}
	user := o.UserID
	if user == 0 {
		user = n.AuthorID
	}
	top := map[string]any{
		"object_kind": "note", "event_type": "note",
		"user": s.hookUser(user), "project_id": p.ID, "project": s.hookProject(p),
		"repository": s.hookRepository(p),
	}
	fixture, anchor := "note_issue", fmt.Sprintf("%s#note_%d", s.issueWebURL(p, iid), n.ID)
	switch kind {
	case IssueNoteable:
		top["issue"] = s.issueHookAttrs(p, s.issueByIID(p, iid))
		if n.Internal {
			top["event_type"] = "confidential_note"
		}
	case MergeRequestNoteable:
		fixture, anchor = "note_merge_request", fmt.Sprintf("%s/%s/-/merge_requests/%d#note_%d", s.URL(), p.Path, iid, n.ID)
		top["merge_request"] = s.mrHookAttrs(p, s.mrByIID(p, iid))
	}
	return patchFixture(fixture, top, map[string]any{
		"id": n.ID, "note": n.Body, "noteable_type": string(kind), "author_id": n.AuthorID,
		"created_at": hookTime(n.CreatedAt), "updated_at": hookTime(n.UpdatedAt), "project_id": p.ID,
		"noteable_id": n.NoteableID, "system": n.System, "action": o.Action, "url": anchor,
		"internal": n.Internal, "confidential": n.Internal, "description": n.Body,
	})
}
