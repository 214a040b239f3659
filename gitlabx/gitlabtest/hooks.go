package gitlabtest

import (
	"cmp"
	"context"
	"errors"
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
	// Options is used for every delivery. Unless set here, each event gets
	// a fresh Idempotency-Key (kept by Redeliver), each attempt a fresh
	// X-Gitlab-Webhook-UUID, and X-Gitlab-Event-UUID names the API request
	// that caused the event (see AddHook).
	Options WebhookOptions
}

// Delivery is one attempt to deliver a webhook to a Hook.
type Delivery struct {
	HookID         int64
	URL            string
	Event          string
	Body           []byte
	IdempotencyKey string // the same for every attempt of one event
	EventUUID      string // X-Gitlab-Event-UUID: the request that caused the event
	WebhookUUID    string // X-Gitlab-Webhook-UUID: fresh for every attempt
	Attempt        int    // 1 for the first delivery, 2 for the first Redeliver, ...
	Status         int    // 0 when the request failed
	Err            error  // transport error or timeout, if any
}

// Hook states as GitLab's WebHooks::AutoDisabling#alert_status reports them.
const (
	HookExecutable          = "executable"
	HookTemporarilyDisabled = "temporarily_disabled"
	HookDisabled            = "disabled"
)

// HookStatus is what the server knows of a hook: the auto-disable state
// GitLab keeps (app/models/concerns/web_hooks/auto_disabling.rb) and what
// it did not deliver.
type HookStatus struct {
	ID             int64
	Project        int64
	URL            string
	State          string    // HookExecutable, HookTemporarilyDisabled or HookDisabled
	RecentFailures int       // consecutive failed deliveries, capped at 40
	DisabledUntil  time.Time // end of a temporary disable; zero when none
	// Skipped counts events not delivered because the hook was disabled.
	Skipped int
	// Blocked counts events not delivered by recursion detection: they were
	// caused by an API call that carried the X-Gitlab-Event-UUID of an
	// event this hook had already received.
	Blocked int
}

// GitLab's auto-disable thresholds and back-off (WebHooks::AutoDisabling).
const (
	tempDisableThreshold = 3  // more failures than this: temporarily disabled
	permDisableThreshold = 39 // more failures than this: disabled for good
	initialHookBackoff   = time.Minute
	maxHookBackoff       = 24 * time.Hour
)

type hookEntry struct {
	Hook
	id, project   int64
	failures      int
	disabledUntil time.Time
	skipped       int
	blocked       int
}

func (h *hookEntry) status(now time.Time) HookStatus {
	st := HookStatus{ID: h.id, Project: h.project, URL: h.URL, State: HookExecutable, RecentFailures: h.failures,
		DisabledUntil: h.disabledUntil, Skipped: h.skipped, Blocked: h.blocked}
	switch {
	case h.failures > permDisableThreshold:
		st.State = HookDisabled
	case h.failures > tempDisableThreshold && !h.disabledUntil.IsZero() && !h.disabledUntil.Before(now):
		st.State = HookTemporarilyDisabled
	}
	return st
}

// record updates the auto-disable state after an attempt, as
// WebHooks::LogExecutionService: a 2xx or 3xx answer re-enables the hook,
// anything else (another status, a transport error, the 10 s timeout)
// backs it off.
func (h *hookEntry) record(ok bool, now time.Time) {
	if ok {
		h.failures, h.disabledUntil = 0, time.Time{}
		return
	}
	if h.status(now).State != HookExecutable {
		return // backoff! does nothing for a disabled hook
	}
	old := h.failures
	h.failures = min(max(old+1, 1), permDisableThreshold+1)
	if h.failures > tempDisableThreshold {
		d := initialHookBackoff
		for i := 0; i < old-tempDisableThreshold && d < maxHookBackoff; i++ {
			d *= 2
		}
		h.disabledUntil = now.Add(min(d, maxHookBackoff))
	}
}

type pendingDelivery struct {
	hook      *hookEntry
	event     string
	body      []byte
	eventUUID string
	// job, when set, is a background job (GitLab's Sidekiq) run under the
	// server's lock in queue order instead of a delivery.
	job func()
}

type hookQueue struct {
	hooks   map[int64][]*hookEntry
	nextID  int64
	queue   []pendingDelivery
	done    []Delivery
	pending int
	drained chan struct{}
	wake    chan struct{}
	stop    chan struct{}
	started bool
	exited  chan struct{}
	// seen maps an X-Gitlab-Event-UUID to the hooks that received an
	// event under it (Gitlab::WebHooks::RecursionDetection).
	seen map[string]map[int64]bool
}

// AddHook registers a webhook on a project and returns its ID. Deliveries
// run in order on one background goroutine; WaitDeliveries waits for them,
// Deliveries lists them and HookStatuses shows each hook's state. Close
// stops delivering.
//
// As GitLab does, the server does not retry a failed delivery by itself
// (Redeliver is GitLab's "Resend request"), counts consecutive failures
// and disables the hook: after the 4th for a back-off that starts at one
// minute and doubles up to 24 hours (see WithWallClock), after the 40th
// for good. Events are not delivered to a disabled hook, nor to a hook
// that already received an event with the X-Gitlab-Event-UUID that the
// API call causing the new event carried (recursion detection).
func (s *Server) AddHook(project int64, h Hook) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(project)
	if s.hq.hooks == nil {
		s.hq.hooks = map[int64][]*hookEntry{}
	}
	s.hq.nextID++
	s.hq.hooks[project] = append(s.hq.hooks[project], &hookEntry{Hook: h, id: s.hq.nextID, project: project})
	return s.hq.nextID
}

// HookStatuses returns the state of every hook of the project, in the
// order they were added.
func (s *Server) HookStatuses(project int64) []HookStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.wall()
	var out []HookStatus
	for _, h := range s.hq.hooks[project] {
		out = append(out, h.status(now))
	}
	return out
}

// Deliveries returns the webhook delivery attempts so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hq.done)
}

// WaitDeliveries blocks until every queued webhook has been delivered (or
// failed) and every background job (such as closing the issues a merge
// closes) has run, or ctx ends, in which case it returns ctx's error.
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

// ErrNoDelivery is returned by Redeliver for an index Deliveries does not have.
var ErrNoDelivery = errors.New("gitlabtest: no such delivery")

// Redeliver sends delivery i of Deliveries again, as GitLab's "Resend
// request" on a hook's recent events does: the same body, Idempotency-Key
// and X-Gitlab-Event-UUID, a fresh X-Gitlab-Webhook-UUID. The attempt is
// recorded in Deliveries and counts toward auto-disabling like any other.
// It returns the new attempt; an index out of range returns ErrNoDelivery.
func (s *Server) Redeliver(ctx context.Context, i int) (Delivery, error) {
	s.mu.Lock()
	if i < 0 || i >= len(s.hq.done) {
		s.mu.Unlock()
		return Delivery{}, ErrNoDelivery
	}
	prev := s.hq.done[i]
	var h *hookEntry
	for _, x := range s.hq.hooks {
		for _, e := range x {
			if e.id == prev.HookID {
				h = e
			}
		}
	}
	attempt := 1
	for _, d := range s.hq.done {
		if d.HookID == prev.HookID && d.IdempotencyKey == prev.IdempotencyKey {
			attempt = max(attempt, d.Attempt)
		}
	}
	s.mu.Unlock()
	if h == nil {
		return Delivery{}, ErrNoDelivery
	}
	d := s.send(ctx, h, prev.Event, prev.Body, prev.IdempotencyKey, prev.EventUUID, attempt+1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hq.done = append(s.hq.done, d)
	return d, nil
}

// send makes one delivery attempt and records its outcome on the hook.
func (s *Server) send(ctx context.Context, h *hookEntry, event string, body []byte, key, eventUUID string, attempt int) Delivery {
	o := h.Options
	o.IdempotencyKey = key
	o.EventUUID = eventUUID
	if o.WebhookUUID == "" {
		o.WebhookUUID = NewUUID()
	}
	rec := Delivery{HookID: h.id, URL: h.URL, Event: event, Body: body, IdempotencyKey: key,
		EventUUID: eventUUID, WebhookUUID: o.WebhookUUID, Attempt: attempt}
	resp, err := SendWebhook(ctx, h.URL, event, body, o)
	if err != nil {
		rec.Err = err
	} else {
		rec.Status = resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	s.mu.Lock()
	h.record(err == nil && resp.StatusCode >= 200 && resp.StatusCode < 400, s.cfg.wall())
	s.mu.Unlock()
	return rec
}

// fire queues event payloads built by build for every hook of p that wants
// event and may receive it; caller holds s.mu.
//
// Recursion detection follows Gitlab::WebHooks::RecursionDetection: when
// the API request being served carried an X-Gitlab-Event-UUID (s.reqUUID),
// the events it causes carry that UUID, and a hook that already received
// an event under it, or any hook once 100 have, is not delivered to.
// Without the header nothing is blocked and every delivery gets a fresh
// UUID. Either way the hook is registered under the UUID it received.
func (s *Server) fire(p *project, event string, build func() ([]byte, error)) {
	if s.closed {
		return
	}
	now := s.cfg.wall()
	type target struct {
		h    *hookEntry
		uuid string
	}
	var targets []target
	for _, h := range s.hq.hooks[p.ID] {
		if len(h.Events) > 0 && !slices.Contains(h.Events, event) {
			continue
		}
		if h.status(now).State != HookExecutable {
			h.skipped++
			continue
		}
		uuid := s.reqUUID
		if uuid == "" {
			uuid = NewUUID() // not caused by a webhook: nothing to block
		} else if seen := s.hq.seen[uuid]; seen[h.id] || len(seen) >= recursionCountLimit {
			h.blocked++
			continue
		}
		seen := s.hq.seen[uuid]
		if seen == nil {
			if s.hq.seen == nil {
				s.hq.seen = map[string]map[int64]bool{}
			}
			seen = map[int64]bool{}
			s.hq.seen[uuid] = seen
		}
		seen[h.id] = true
		targets = append(targets, target{h, uuid})
	}
	if len(targets) == 0 {
		return
	}
	body, err := build()
	if err != nil {
		s.cfg.logger.Error("gitlabtest: building webhook", "event", event, "err", err)
		return
	}
	for _, t := range targets {
		s.enqueue(pendingDelivery{hook: t.h, event: event, body: body, eventUUID: t.uuid})
	}
}

// recursionCountLimit is RecursionDetection::COUNT_LIMIT: the most hooks
// one chain of webhook-caused requests may trigger.
const recursionCountLimit = 100

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
	done := func() {
		q.pending--
		if q.pending == 0 {
			close(q.drained)
		}
	}
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
			done()
			s.mu.Unlock()
			continue
		}
		if d.hook.status(s.cfg.wall()).State != HookExecutable {
			// Disabled by an earlier failure while this event waited.
			d.hook.skipped++
			done()
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()

		key := d.hook.Options.IdempotencyKey
		if key == "" {
			key = NewUUID()
		}
		rec := s.send(ctx, d.hook, d.event, d.body, key, cmp.Or(d.hook.Options.EventUUID, d.eventUUID), 1)

		s.mu.Lock()
		q.done = append(q.done, rec)
		done()
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
	change(ch, "draft", before.Draft, after.Draft)
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
