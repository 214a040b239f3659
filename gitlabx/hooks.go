package gitlabx

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/internal/secret"
)

// Secret is a credential such as a webhook token. It never prints: fmt and
// slog show it as REDACTED.
type Secret string

// String implements fmt.Stringer without revealing the secret.
func (Secret) String() string { return secret.Redacted }

// GoString implements fmt.GoStringer without revealing the secret.
func (Secret) GoString() string { return secret.Redacted }

// LogValue implements slog.LogValuer without revealing the secret.
func (Secret) LogValue() slog.Value { return slog.StringValue(secret.Redacted) }

// Errors reported by Hooks. ServeHTTP answers them with the status code
// given below, the error's text as body, and a log record.
var (
	// ErrBadToken means X-Gitlab-Token was missing or wrong (HTTP 401).
	ErrBadToken = errors.New("gitlabx: missing or wrong webhook token")
	// ErrBadSignature means the Standard Webhooks signature was missing,
	// stale or wrong (HTTP 401).
	ErrBadSignature = errors.New("gitlabx: missing or wrong webhook signature")
	// ErrMalformed means the body is not a valid payload for its event (HTTP 400).
	ErrMalformed = errors.New("gitlabx: malformed webhook payload")
	// ErrTooLarge means the body exceeded HooksConfig.MaxBodyBytes (HTTP 413).
	ErrTooLarge = errors.New("gitlabx: webhook body too large")
	// ErrBusy means the work queue was full (HTTP 503, GitLab retries later).
	ErrBusy = errors.New("gitlabx: work queue full")
	// ErrShutdown means Shutdown was called (HTTP 503); Shutdown itself
	// reports unfinished work with an error wrapping the context's error.
	ErrShutdown = errors.New("gitlabx: hooks shut down")
	// ErrConfig means NewHooks or another constructor was given an invalid configuration.
	ErrConfig = errors.New("gitlabx: invalid configuration")
)

// HooksConfig configures a Hooks receiver. Token is required; the zero value
// of every other field selects the documented default.
type HooksConfig struct {
	// Token is the webhook's secret token, compared in constant time with
	// the X-Gitlab-Token header.
	Token Secret
	// SigningToken, when set, is the webhook's signing token
	// ("whsec_<base64>"): every delivery must then also carry a valid
	// Standard Webhooks signature (webhook-id, webhook-timestamp,
	// webhook-signature).
	SigningToken Secret
	// SignatureTolerance is how far webhook-timestamp may be from now.
	// 0 means 5 minutes.
	SignatureTolerance time.Duration
	// BotUserID and BotUsername identify the bot's own GitLab user; events
	// it caused (its notes, its label edits) are ignored, so the bot does
	// not react to itself. Zero values match nobody.
	BotUserID   int64
	BotUsername string
	// Workers is the number of deliveries handled at once. 0 means 8.
	Workers int
	// QueueSize bounds the deliveries accepted but not yet started; when it
	// is full, ServeHTTP answers 503 and GitLab delivers again later.
	// 0 means 1000.
	QueueSize int
	// MaxBodyBytes caps the request body (413 above). 0 means 10 MiB.
	MaxBodyBytes int64
	// DedupTTL is how long a delivery's Idempotency-Key (or, without one,
	// the hash of its body) is remembered to drop redeliveries. 0 means 1 hour.
	DedupTTL time.Duration
	// DedupSize bounds the remembered keys; the oldest go first. 0 means 10000.
	DedupSize int
	// HandlerTimeout bounds the handling of one delivery. 0 means 5 minutes.
	HandlerTimeout time.Duration
	// Attempts is how many times a handler runs when it fails with a
	// transient error (GitLab 5xx or 429, or a network error). Handlers
	// must be idempotent; the ones in this package are. 0 means 3.
	Attempts int
	// RetryBackoff is the wait before the second attempt, doubled after
	// each further one. 0 means 2 seconds.
	RetryBackoff time.Duration
	// Logger receives a record per refused or failed delivery. nil discards.
	Logger *slog.Logger
	// Now is the clock for the dedup cache and signature tolerance. nil means time.Now.
	Now func() time.Time
}

// Delivery describes the webhook request a handler is working on. Handlers
// get it with DeliveryFrom.
type Delivery struct {
	Event          gitlab.EventType // the X-Gitlab-Event header
	EventUUID      string           // X-Gitlab-Event-UUID
	WebhookUUID    string           // X-Gitlab-Webhook-UUID
	IdempotencyKey string           // Idempotency-Key, or "sha256:<hex of event type and body>"
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery that the handler running with ctx is
// working on.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// RequestOptions returns the client-go options for an API call made while
// handling a delivery: gitlab.WithContext(ctx) and, when ctx carries a
// delivery, gitlab.WithHeader("X-Gitlab-Event-UUID", its UUID), so that
// GitLab's logs tie the call to the event that caused it.
func RequestOptions(ctx context.Context) []gitlab.RequestOptionFunc {
	opts := []gitlab.RequestOptionFunc{gitlab.WithContext(ctx)}
	if d, ok := DeliveryFrom(ctx); ok && d.EventUUID != "" {
		opts = append(opts, gitlab.WithHeader("X-Gitlab-Event-UUID", d.EventUUID))
	}
	return opts
}

// NoteEvent is a Note Hook delivery. Exactly one field is set, by what the
// note is attached to.
type NoteEvent struct {
	MergeRequest *gitlab.MergeCommentEvent
	Issue        *gitlab.IssueCommentEvent
	Commit       *gitlab.CommitCommentEvent
	Snippet      *gitlab.SnippetCommentEvent
}

// HookStats counts deliveries since NewHooks.
type HookStats struct {
	Accepted  int64 // queued for the handlers (answered 202)
	Duplicate int64 // redeliveries dropped (answered 200)
	Ignored   int64 // unknown events, events without a handler, the bot's own events (200)
	Rejected  int64 // bad token or signature, malformed, too large (4xx)
	Busy      int64 // refused because the queue was full or Shutdown began (503)
	Done      int64 // accepted deliveries whose handlers have all returned
	Failed    int64 // of Done, those where a handler returned an error
}

// Hooks is an http.Handler that receives GitLab webhooks. It answers at once
// and runs the registered handlers on a bounded pool of workers; work for
// one merge request or issue runs one delivery at a time, in arrival order.
//
// Register handlers before serving. The caller must call Shutdown when
// finished.
type Hooks struct {
	cfg      HooksConfig
	log      *slog.Logger
	key      []byte // signing key, nil when signatures are not checked
	seen     *dedup
	stop     chan struct{} // closed when Shutdown gives up waiting: running handlers are cancelled
	stopOnce sync.Once

	hmu      sync.RWMutex
	mr       []func(context.Context, *gitlab.MergeEvent) error
	issue    []func(context.Context, *gitlab.IssueEvent) error
	note     []func(context.Context, NoteEvent) error
	push     []func(context.Context, *gitlab.PushEvent) error
	tag      []func(context.Context, *gitlab.TagEvent) error
	pipeline []func(context.Context, *gitlab.PipelineEvent) error

	mu     sync.Mutex
	closed bool
	queued int                  // accepted, not yet started
	active map[string][]hookJob // serialization key -> jobs waiting behind the running one
	queue  chan hookJob
	done   chan struct{} // closed when every worker has returned

	accepted, duplicate, ignored, rejected, busy, finished, failed atomic.Int64
}

type hookJob struct {
	key      string // serialization key, "" for none
	event    any
	delivery Delivery
}

// NewHooks returns a receiver with its workers started. If cfg.Token is
// empty or cfg.SigningToken is not "whsec_<base64>", the error wraps ErrConfig.
func NewHooks(cfg HooksConfig) (*Hooks, error) {
	if cfg.Token == "" {
		return nil, fmt.Errorf("%w: empty webhook token", ErrConfig)
	}
	h := &Hooks{cfg: cfg, active: make(map[string][]hookJob), done: make(chan struct{})}
	if cfg.SigningToken != "" {
		k, err := signingKey(cfg.SigningToken)
		if err != nil {
			return nil, err
		}
		h.key = k
	}
	c := &h.cfg
	if c.SignatureTolerance <= 0 {
		c.SignatureTolerance = 5 * time.Minute
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1000
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 10 << 20
	}
	if c.DedupTTL <= 0 {
		c.DedupTTL = time.Hour
	}
	if c.DedupSize <= 0 {
		c.DedupSize = 10000
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 5 * time.Minute
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	h.log = c.Logger
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.seen = newDedup(c.DedupSize, c.DedupTTL, c.Now)
	h.queue = make(chan hookJob, c.QueueSize)
	h.stop = make(chan struct{})
	var wg sync.WaitGroup
	for range c.Workers {
		wg.Go(h.work)
	}
	go func() { wg.Wait(); close(h.done) }()
	return h, nil
}

func signingKey(s Secret) ([]byte, error) {
	b64, ok := strings.CutPrefix(string(s), "whsec_")
	if !ok {
		return nil, fmt.Errorf("%w: signing token does not start with whsec_", ErrConfig)
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) == 0 {
		return nil, fmt.Errorf("%w: signing token is not whsec_<base64>", ErrConfig)
	}
	return k, nil
}

// StandardWebhookSignature returns the webhook-signature header value
// ("v1,<base64>") that GitLab sends for body when the hook has the signing
// token signingToken ("whsec_<base64>"). It is for tests and fakes that send
// signed deliveries. If the token is malformed, the error wraps ErrConfig.
func StandardWebhookSignature(signingToken Secret, id string, timestamp int64, body []byte) (string, error) {
	k, err := signingKey(signingToken)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(sign(k, id, strconv.FormatInt(timestamp, 10), body)), nil
}

func sign(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, id+"."+ts+".")
	m.Write(body)
	return m.Sum(nil)
}

// OnMergeRequest registers fn for Merge Request Hook deliveries (and merge
// request deliveries sent as Service Hook).
func (h *Hooks) OnMergeRequest(fn func(ctx context.Context, ev *gitlab.MergeEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.mr = append(h.mr, fn)
}

// OnIssue registers fn for Issue Hook and Confidential Issue Hook deliveries.
func (h *Hooks) OnIssue(fn func(ctx context.Context, ev *gitlab.IssueEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.issue = append(h.issue, fn)
}

// OnNote registers fn for Note Hook and Confidential Note Hook deliveries.
func (h *Hooks) OnNote(fn func(ctx context.Context, ev NoteEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.note = append(h.note, fn)
}

// OnPush registers fn for Push Hook deliveries.
func (h *Hooks) OnPush(fn func(ctx context.Context, ev *gitlab.PushEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.push = append(h.push, fn)
}

// OnTagPush registers fn for Tag Push Hook deliveries.
func (h *Hooks) OnTagPush(fn func(ctx context.Context, ev *gitlab.TagEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.tag = append(h.tag, fn)
}

// OnPipeline registers fn for Pipeline Hook deliveries.
func (h *Hooks) OnPipeline(fn func(ctx context.Context, ev *gitlab.PipelineEvent) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.pipeline = append(h.pipeline, fn)
}

// Stats returns the delivery counters.
func (h *Hooks) Stats() HookStats {
	return HookStats{
		Accepted: h.accepted.Load(), Duplicate: h.duplicate.Load(), Ignored: h.ignored.Load(),
		Rejected: h.rejected.Load(), Busy: h.busy.Load(), Done: h.finished.Load(), Failed: h.failed.Load(),
	}
}

// handled lists the event headers Hooks parses; every other one is ignored.
func handled(t gitlab.EventType) bool {
	switch t {
	case gitlab.EventTypeMergeRequest, gitlab.EventTypeIssue, gitlab.EventConfidentialIssue,
		gitlab.EventTypeNote, gitlab.EventConfidentialNote, gitlab.EventTypePush,
		gitlab.EventTypeTagPush, gitlab.EventTypePipeline, gitlab.EventTypeServiceHook:
		return true
	}
	return false
}

// ServeHTTP receives one delivery. It answers 202 when the delivery is
// queued, 200 when it is ignored (unknown event, no handler, the bot's own
// event) or a redelivery, 401 on a wrong token or signature, 400 on a
// malformed body, 413 when the body is too large, 405 for other methods and
// 503 when the queue is full or Shutdown has begun.
func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !secret.Equal(gitlab.HookEventToken(r), string(h.cfg.Token)) {
		h.reject(w, r, http.StatusUnauthorized, ErrBadToken)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			h.reject(w, r, http.StatusRequestEntityTooLarge, ErrTooLarge)
			return
		}
		h.reject(w, r, http.StatusBadRequest, fmt.Errorf("%w: reading body: %v", ErrMalformed, err))
		return
	}
	if h.key != nil {
		if err := h.verify(r, body); err != nil {
			h.reject(w, r, http.StatusUnauthorized, err)
			return
		}
	}
	typ := gitlab.HookEventType(r)
	if !json.Valid(body) {
		h.reject(w, r, http.StatusBadRequest, fmt.Errorf("%w: %s: not JSON", ErrMalformed, typ))
		return
	}
	if !handled(typ) {
		h.ignore(w, r, "event type not handled")
		return
	}
	ev, err := gitlab.ParseWebhook(typ, body)
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			h.reject(w, r, http.StatusBadRequest, fmt.Errorf("%w: %s: %v", ErrMalformed, typ, err))
			return
		}
		// Valid JSON of a kind client-go does not know (a new noteable or
		// service type): ignore it, as for unknown events.
		h.ignore(w, r, "payload kind not handled")
		return
	}
	info := describe(ev)
	if !h.hasHandler(ev) {
		h.ignore(w, r, "no handler registered")
		return
	}
	if (h.cfg.BotUserID != 0 && info.userID == h.cfg.BotUserID) ||
		(h.cfg.BotUsername != "" && info.username == h.cfg.BotUsername) {
		h.ignore(w, r, "event caused by the bot")
		return
	}
	d := Delivery{
		Event:          typ,
		EventUUID:      r.Header.Get("X-Gitlab-Event-UUID"),
		WebhookUUID:    r.Header.Get("X-Gitlab-Webhook-UUID"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	if d.IdempotencyKey == "" {
		sum := sha256.New()
		io.WriteString(sum, string(typ)+"\n")
		sum.Write(body)
		d.IdempotencyKey = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	}
	if !h.seen.add(d.IdempotencyKey) {
		h.duplicate.Add(1)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "duplicate delivery\n")
		return
	}
	if err := h.enqueue(hookJob{key: info.key, event: ev, delivery: d}); err != nil {
		h.seen.forget(d.IdempotencyKey)
		h.busy.Add(1)
		h.log.Warn("webhook refused", "event", string(typ), "event_uuid", d.EventUUID, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	h.accepted.Add(1)
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "accepted\n")
}

func (h *Hooks) reject(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.rejected.Add(1)
	h.log.Warn("webhook rejected", "event", r.Header.Get("X-Gitlab-Event"), "status", status, "remote", r.RemoteAddr, "err", err)
	http.Error(w, err.Error(), status)
}

func (h *Hooks) ignore(w http.ResponseWriter, r *http.Request, why string) {
	h.ignored.Add(1)
	h.log.Debug("webhook ignored", "event", r.Header.Get("X-Gitlab-Event"), "why", why)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "ignored: "+why+"\n")
}

func (h *Hooks) verify(r *http.Request, body []byte) error {
	id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: missing webhook-id, webhook-timestamp or webhook-signature", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad webhook-timestamp", ErrBadSignature)
	}
	if d := h.cfg.Now().Sub(time.Unix(sec, 0)); d > h.cfg.SignatureTolerance || d < -h.cfg.SignatureTolerance {
		return fmt.Errorf("%w: webhook-timestamp outside tolerance", ErrBadSignature)
	}
	want := sign(h.key, id, ts, body)
	for _, f := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(f, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}

type eventInfo struct {
	key      string // serialization key
	userID   int64
	username string
}

func eventUser(u *gitlab.EventUser) (int64, string) {
	if u == nil {
		return 0, ""
	}
	return u.ID, u.Username
}

func describe(ev any) eventInfo {
	var i eventInfo
	switch e := ev.(type) {
	case *gitlab.MergeEvent:
		i.key = fmt.Sprintf("mr/%d/%d", e.ObjectAttributes.TargetProjectID, e.ObjectAttributes.IID)
		i.userID, i.username = eventUser(e.User)
	case *gitlab.IssueEvent:
		i.key = fmt.Sprintf("issue/%d/%d", e.Project.ID, e.ObjectAttributes.IID)
		i.userID, i.username = eventUser(e.User)
	case *gitlab.MergeCommentEvent:
		i.key = fmt.Sprintf("mr/%d/%d", e.MergeRequest.TargetProjectID, e.MergeRequest.IID)
		i.userID, i.username = eventUser(e.User)
	case *gitlab.IssueCommentEvent:
		i.key = fmt.Sprintf("issue/%d/%d", e.ProjectID, e.Issue.IID)
		if e.User != nil {
			i.userID, i.username = e.User.ID, e.User.Username
		}
	case *gitlab.CommitCommentEvent:
		if e.User != nil {
			i.userID, i.username = e.User.ID, e.User.Username
		}
	case *gitlab.SnippetCommentEvent:
		i.userID, i.username = eventUser(e.User)
	case *gitlab.PushEvent:
		i.key = fmt.Sprintf("ref/%d/%s", e.ProjectID, e.Ref)
		i.userID, i.username = e.UserID, e.UserUsername
	case *gitlab.TagEvent:
		i.key = fmt.Sprintf("ref/%d/%s", e.ProjectID, e.Ref)
		i.userID, i.username = e.UserID, e.UserUsername
	case *gitlab.PipelineEvent:
		if e.MergeRequest.IID != 0 {
			i.key = fmt.Sprintf("mr/%d/%d", e.MergeRequest.TargetProjectID, e.MergeRequest.IID)
		}
		i.userID, i.username = eventUser(e.User)
	}
	return i
}

func (h *Hooks) hasHandler(ev any) bool {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	switch ev.(type) {
	case *gitlab.MergeEvent:
		return len(h.mr) > 0
	case *gitlab.IssueEvent:
		return len(h.issue) > 0
	case *gitlab.MergeCommentEvent, *gitlab.IssueCommentEvent, *gitlab.CommitCommentEvent, *gitlab.SnippetCommentEvent:
		return len(h.note) > 0
	case *gitlab.PushEvent:
		return len(h.push) > 0
	case *gitlab.TagEvent:
		return len(h.tag) > 0
	case *gitlab.PipelineEvent:
		return len(h.pipeline) > 0
	}
	return false
}

func (h *Hooks) enqueue(j hookJob) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrShutdown
	}
	if h.queued >= h.cfg.QueueSize {
		return ErrBusy
	}
	h.queued++
	if j.key != "" {
		if waiting, running := h.active[j.key]; running {
			h.active[j.key] = append(waiting, j)
			return nil
		}
		h.active[j.key] = nil
	}
	h.queue <- j // never blocks: len(h.queue) <= h.queued <= cap
	return nil
}

// work runs queued deliveries until Shutdown closes the queue. After a job
// with a serialization key, it runs the jobs that queued up behind it.
func (h *Hooks) work() {
	for j := range h.queue {
		for {
			h.mu.Lock()
			h.queued--
			h.mu.Unlock()
			h.run(j)
			if j.key == "" {
				break
			}
			h.mu.Lock()
			waiting := h.active[j.key]
			if len(waiting) == 0 {
				delete(h.active, j.key)
				h.mu.Unlock()
				break
			}
			j = waiting[0]
			h.active[j.key] = waiting[1:]
			h.mu.Unlock()
		}
	}
}

func (h *Hooks) run(j hookJob) {
	defer h.finished.Add(1)
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), deliveryKey{}, j.delivery), h.cfg.HandlerTimeout)
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var errs []error
	for _, fn := range h.handlers(j.event) {
		if err := h.attempt(ctx, fn); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.failed.Add(1)
		h.log.Error("webhook handler failed", "event", string(j.delivery.Event),
			"event_uuid", j.delivery.EventUUID, "key", j.key, "err", err)
	}
}

func (h *Hooks) attempt(ctx context.Context, fn func(context.Context) error) (err error) {
	wait := h.cfg.RetryBackoff
	for n := 1; ; n++ {
		err = callSafely(ctx, fn)
		if err == nil || n >= h.cfg.Attempts || !Transient(err) {
			return err
		}
		h.log.Warn("webhook handler will retry", "attempt", n, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// callSafely turns a handler's panic into an error, so one bad event does
// not take the receiver down.
func callSafely(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gitlabx: handler panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// handlers binds the registered handlers of ev's kind to ev.
func (h *Hooks) handlers(ev any) []func(context.Context) error {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	var fns []func(context.Context) error
	switch e := ev.(type) {
	case *gitlab.MergeEvent:
		for _, f := range h.mr {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, e) })
		}
	case *gitlab.IssueEvent:
		for _, f := range h.issue {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, e) })
		}
	case *gitlab.PushEvent:
		for _, f := range h.push {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, e) })
		}
	case *gitlab.TagEvent:
		for _, f := range h.tag {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, e) })
		}
	case *gitlab.PipelineEvent:
		for _, f := range h.pipeline {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, e) })
		}
	default:
		var n NoteEvent
		switch e := ev.(type) {
		case *gitlab.MergeCommentEvent:
			n.MergeRequest = e
		case *gitlab.IssueCommentEvent:
			n.Issue = e
		case *gitlab.CommitCommentEvent:
			n.Commit = e
		case *gitlab.SnippetCommentEvent:
			n.Snippet = e
		default:
			return nil
		}
		for _, f := range h.note {
			fns = append(fns, func(ctx context.Context) error { return f(ctx, n) })
		}
	}
	return fns
}

// Transient reports whether err is worth retrying: a GitLab answer of 5xx or
// 429, or a network error. Context cancellation is not transient.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		s := er.Response.StatusCode
		return s == http.StatusTooManyRequests || s >= 500
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Shutdown stops accepting deliveries (ServeHTTP answers 503, so GitLab
// delivers them again later) and waits until every accepted delivery has
// been handled. If ctx ends first, the handlers still running are cancelled
// and the error wraps ctx's error and says how many deliveries were not
// finished. Calling Shutdown again waits again.
func (h *Hooks) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.queue)
	}
	h.mu.Unlock()
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.stopOnce.Do(func() { close(h.stop) })
		s := h.Stats()
		return fmt.Errorf("gitlabx: shutdown: %d accepted deliveries not finished: %w", s.Accepted-s.Done, ctx.Err())
	}
}
