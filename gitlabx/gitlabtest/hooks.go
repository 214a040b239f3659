package gitlabtest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Hook is a project webhook registered with AddHook. The server delivers
// an event to URL each time an API call changes the project the way that
// event reports, as GitLab does; seeding methods (AddIssue, SetFile, ...)
// fire nothing.
type Hook struct {
	URL string
	// Events limits deliveries to these X-Gitlab-Event values
	// (IssueHook, NoteHook, MergeRequestHook, TagPushHook, and the
	// confidential variants); empty means all.
	Events []string
	// Options is used for every delivery; each one gets fresh
	// Idempotency-Key and X-Gitlab-Event-UUID values unless set here.
	Options WebhookOptions
}

// Delivery is one webhook the server sent to a Hook.
type Delivery struct {
	URL            string
	Event          string
	Body           []byte
	IdempotencyKey string
	Status         int   // 0 when the request failed
	Err            error // transport error, if any
}

type pendingDelivery struct {
	hook  Hook
	event string
	body  []byte
	// job, when set, is a background job (GitLab's Sidekiq) run under the
	// server's lock in queue order instead of a delivery.
	job func()
}

type hookQueue struct {
	hooks   map[int64][]Hook
	queue   []pendingDelivery
	done    []Delivery
	pending int
	drained chan struct{}
	wake    chan struct{}
	stop    chan struct{}
	started bool
	exited  chan struct{}
}

// AddHook registers a webhook on a project. Deliveries run in order on one
// background goroutine; WaitDeliveries waits for them and Deliveries lists
// them. Close stops delivering.
func (s *Server) AddHook(project int64, h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(project)
	if s.hq.hooks == nil {
		s.hq.hooks = map[int64][]Hook{}
	}
	s.hq.hooks[project] = append(s.hq.hooks[project], h)
}

// Deliveries returns the webhooks delivered so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hq.done)
}

// WaitDeliveries blocks until every queued webhook has been delivered (or
// failed), or ctx ends, in which case it returns ctx's error.
func (s *Server) WaitDeliveries(ctx context.Context) error {
	s.mu.Lock()
	ch := s.hq.drained
	s.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gitlabtest: waiting for webhook deliveries: %w", ctx.Err())
	}
}

// fire queues event payloads built by build for every hook of p that wants
// event; caller holds s.mu.
func (s *Server) fire(p *project, event string, build func() ([]byte, error)) {
	if s.closed {
		return
	}
	var hooks []Hook
	for _, h := range s.hq.hooks[p.ID] {
		if len(h.Events) == 0 || slices.Contains(h.Events, event) {
			hooks = append(hooks, h)
		}
	}
	if len(hooks) == 0 {
		return
	}
	body, err := build()
	if err != nil {
		s.cfg.logger.Error("gitlabtest: building webhook", "event", event, "err", err)
		return
	}
	for _, h := range hooks {
		s.enqueue(pendingDelivery{hook: h, event: event, body: body})
	}
}

// enqueue adds a delivery or background job to the queue and starts the
// delivery goroutine if needed; caller holds s.mu.
func (s *Server) enqueue(d pendingDelivery) {
	if s.closed {
		return
	}
	q := &s.hq
	if q.wake == nil {
		q.wake, q.stop, q.exited = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	}
	if !q.started {
		q.started = true
		go s.deliverLoop()
	}
	if q.pending == 0 {
		q.drained = make(chan struct{})
	}
	q.pending++
	q.queue = append(q.queue, d)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (s *Server) deliverLoop() {
	q := &s.hq
	defer close(q.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-q.stop
		cancel()
	}()
	for {
		s.mu.Lock()
		if len(q.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		d := q.queue[0]
		q.queue = q.queue[1:]
		if d.job != nil {
			d.job()
			q.pending--
			if q.pending == 0 {
				close(q.drained)
			}
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()

		o := d.hook.Options
		if o.IdempotencyKey == "" {
			o.IdempotencyKey = NewUUID()
		}
		rec := Delivery{URL: d.hook.URL, Event: d.event, Body: d.body, IdempotencyKey: o.IdempotencyKey}
		resp, err := SendWebhook(ctx, d.hook.URL, d.event, d.body, o)
		if err != nil {
			rec.Err = err
		} else {
			rec.Status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
		}

		s.mu.Lock()
		q.done = append(q.done, rec)
		q.pending--
		if q.pending == 0 {
			close(q.drained)
		}
		s.mu.Unlock()
	}
}

// stopHooks ends the delivery goroutine; queued deliveries are dropped.
func (s *Server) stopHooks() {
	s.mu.Lock()
	q := &s.hq
	started := q.started
	if q.stop != nil {
		select {
		case <-q.stop:
		default:
			close(q.stop)
		}
	}
	s.mu.Unlock()
	if started {
		<-q.exited
	}
	s.mu.Lock()
	if q.pending > 0 {
		q.pending, q.queue = 0, nil
		close(q.drained)
	}
	s.mu.Unlock()
}

// change records key in ch when the value differs, as GitLab's
// "changes" object does: {"previous": ..., "current": ...}.
func change[T comparable](ch map[string]any, key string, prev, cur T) {
	if prev != cur {
		ch[key] = map[string]any{"previous": prev, "current": cur}
	}
}

// commonChanges fills in what issues and MRs share: title, description,
// labels; finish adds updated_at when anything changed.
func (s *Server) commonChanges(p *project, title, desc [2]string, labels [2][]string) map[string]any {
	ch := map[string]any{}
	change(ch, "title", title[0], title[1])
	change(ch, "description", desc[0], desc[1])
	if !slices.Equal(labels[0], labels[1]) {
		ch["labels"] = map[string]any{"previous": s.hookLabels(p, labels[0]), "current": s.hookLabels(p, labels[1])}
	}
	return ch
}

func finish(ch map[string]any, prev, cur time.Time) map[string]any {
	if len(ch) > 0 {
		ch["updated_at"] = map[string]any{"previous": hookTime(prev), "current": hookTime(cur)}
	}
	return ch
}

// issueChanges describes what an issue update changed.
func (s *Server) issueChanges(p *project, before, after *Issue) map[string]any {
	ch := s.commonChanges(p, [2]string{before.Title, after.Title}, [2]string{before.Description, after.Description},
		[2][]string{before.Labels, after.Labels})
	if before.State != after.State {
		ids := map[string]int{"opened": 1, "closed": 2}
		change(ch, "state_id", ids[before.State], ids[after.State])
		change(ch, "closed_at", ts(before.ClosedAt), ts(after.ClosedAt))
	}
	change(ch, "confidential", before.Confidential, after.Confidential)
	return finish(ch, before.UpdatedAt, after.UpdatedAt)
}

// mrChanges describes what an MR update changed.
func (s *Server) mrChanges(p *project, before, after *MergeRequest) map[string]any {
	ch := s.commonChanges(p, [2]string{before.Title, after.Title}, [2]string{before.Description, after.Description},
		[2][]string{before.Labels, after.Labels})
	change(ch, "target_branch", before.TargetBranch, after.TargetBranch)
	change(ch, "state_id", mrStateID[before.State], mrStateID[after.State])
	return finish(ch, before.UpdatedAt, after.UpdatedAt)
}

func issueHookName(is *Issue) string {
	if is.Confidential {
		return ConfidentialIssueHook
	}
	return IssueHook
}

func (s *Server) fireIssue(p *project, is *Issue, user int64, action string, changes map[string]any) {
	s.fire(p, issueHookName(is), func() ([]byte, error) {
		return s.issueEvent(p, is, EventOptions{Action: action, UserID: user, Changes: changes})
	})
}

func (s *Server) fireMR(p *project, mr *MergeRequest, user int64, action string, changes map[string]any) {
	s.fire(p, MergeRequestHook, func() ([]byte, error) {
		return s.mrEvent(p, mr, EventOptions{Action: action, UserID: user, Changes: changes})
	})
}

func (s *Server) fireNote(p *project, n *Note, user int64, action string) {
	event := NoteHook
	if n.Internal {
		event = ConfidentialNoteHook
	}
	s.fire(p, event, func() ([]byte, error) {
		return s.noteEvent(p, n, EventOptions{Action: action, UserID: user})
	})
}

func (s *Server) fireTag(p *project, t *Tag, user int64) {
	s.fire(p, TagPushHook, func() ([]byte, error) {
		u := s.hookUser(user)
		var commits []any
		if c := p.commits[t.Commit]; c != nil {
			commits = append(commits, map[string]any{
				"id": c.SHA, "message": c.Message, "title": c.Title,
				"timestamp": c.CreatedAt.UTC().Format(time.RFC3339),
				"url":       fmt.Sprintf("%s/%s/-/commit/%s", s.URL(), p.Path, c.SHA),
				"author":    map[string]any{"name": c.AuthorName, "email": c.AuthorEmail},
				"added":     []any{}, "modified": slices.Clone(c.Paths), "removed": []any{},
			})
		}
		if commits == nil {
			commits = []any{}
		}
		return patchFixture("tag_push", map[string]any{
			"object_kind": "tag_push", "event_name": "tag_push",
			"before": strings.Repeat("0", 40), "after": t.Target, "ref": "refs/tags/" + t.Name,
			"checkout_sha": t.Commit, "message": nilIfEmpty(t.Message),
			"user_id": u["id"], "user_username": u["username"], "user_name": u["name"], "user_avatar": "",
			"project_id": p.ID, "project": s.hookProject(p), "repository": s.hookRepository(p),
			"commits": commits, "total_commits_count": len(commits),
		}, nil)
	})
}
