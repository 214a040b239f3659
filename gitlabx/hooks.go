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

	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/internal/secret"
)

// Secret is a credential such as a webhook token: an alias of
// opskit.Secret, the SDK's one secret type, which never prints (fmt, slog,
// JSON and text encodings show REDACTED). Code written against the
// package's own type before keeps compiling.
type Secret = opskit.Secret

// Errors reported by Hooks. ServeHTTP answers them with the status code
// given below, the error's text as body, and a log record. GitLab counts
// every answer outside 2xx (and every timeout) toward disabling the webhook,
// so no condition of the receiver's own (busy, shutting down) is answered
// with one: see ErrBusy and ErrShutdown.
var (
	// ErrBadToken means X-Gitlab-Token was missing or wrong (HTTP 401).
	ErrBadToken = errors.New("gitlabx: missing or wrong webhook token")
	// ErrBadSignature means the Standard Webhooks signature was missing,
	// stale or wrong (HTTP 401).
	ErrBadSignature = errors.New("gitlabx: missing or wrong webhook signature")
	// ErrMalformed means the body is not a valid payload for its event (HTTP 400).
	ErrMalformed = errors.New("gitlabx: malformed webhook payload")
	// ErrTooLarge means the body exceeded HooksConfig.MaxBodyBytes, or the
	// largest message the Intake stores (HTTP 413).
	ErrTooLarge = errors.New("gitlabx: webhook body too large")
	// ErrBusy means the in-memory queue was full (HooksConfig.QueueSize or
	// MaxQueuedBytes). The delivery is answered 202 and dropped: the log
	// record (with ErrDropped and the event's UUID) is what is left of it.
	ErrBusy = errors.New("gitlabx: work queue full")
	// ErrShutdown means Shutdown was called before an in-memory delivery
	// arrived: answered 202 and dropped, as for ErrBusy. Shutdown itself
	// reports unfinished work with an error wrapping the context's error.
	ErrShutdown = errors.New("gitlabx: hooks shut down")
	// ErrUnavailable means the Intake could not store the delivery (for
	// example, JetStream is unreachable): HTTP 503, GitLab may deliver it
	// again. Only a durable Intake returns it.
	ErrUnavailable = errors.New("gitlabx: intake cannot store the delivery")
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
	// Intake stores accepted deliveries until their handlers have run.
	// nil means the in-memory queue configured by Workers, QueueSize,
	// MaxQueuedBytes, DedupTTL and DedupSize below, which is not durable:
	// a crash or a Shutdown that gives up loses what it holds, and a
	// delivery beyond its bounds is answered 202 and dropped (logged with
	// its event UUID, counted in HookStats.Dropped) rather than refused,
	// because GitLab disables webhooks that answer errors. For durability
	// and replicas use gitlabx/jetstream.
	Intake Intake
	// Workers is the number of deliveries the in-memory queue handles at
	// once. 0 means 8.
	Workers int
	// QueueSize bounds the deliveries the in-memory queue holds (accepted,
	// not yet started). 0 means 1000.
	QueueSize int
	// MaxQueuedBytes bounds the bytes the in-memory queue holds: the
	// bodies and headers of the deliveries accepted and not yet finished
	// (see Envelope.Size). 0 means 64 MiB.
	MaxQueuedBytes int64
	// MaxBodyBytes caps the request body (413 above). 0 means 10 MiB.
	MaxBodyBytes int64
	// DedupTTL is how long the in-memory queue remembers a delivery's
	// dedupe key (see Envelope.DedupKey) to drop redeliveries. 0 means 1 hour.
	DedupTTL time.Duration
	// DedupSize bounds the remembered keys (32 bytes each, whatever the
	// headers' size); the oldest go first. 0 means 10000.
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
	// Metrics, when set, counts the deliveries, their answers, the
	// handlers' time and errors, and the Intake's depth (see NewMetrics).
	// nil counts nothing. One Metrics serves one Hooks.
	Metrics *Metrics
	// TracerProvider, when set, opens a span per delivery handled (named
	// "gitlab webhook <event>", attribute gitlab.event_uuid carrying
	// X-Gitlab-Event-UUID) whose context the handlers get, so that API
	// calls made with it through a traced client (observe.NewTransport)
	// are its children. nil means no spans.
	TracerProvider trace.TracerProvider
}

// Delivery describes the webhook request a handler is working on. Handlers
// get it with DeliveryFrom.
type Delivery struct {
	Event       gitlab.EventType // the X-Gitlab-Event header
	EventUUID   string           // X-Gitlab-Event-UUID
	WebhookUUID string           // X-Gitlab-Webhook-UUID
	// IdempotencyKey is the Idempotency-Key header, or "sha256:<hex of
	// event type and body>" without one; a header longer than 200 bytes
	// is replaced by "sha256:<hex of the header>".
	IdempotencyKey string
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

// HookStats counts the deliveries this Hooks answered and handled since
// NewHooks, and describes its Intake. With a shared Intake (JetStream),
// deliveries accepted by one replica may be handled by another.
type HookStats struct {
	Accepted    int64 // stored by the Intake (answered 202)
	Duplicate   int64 // redeliveries dropped (answered 200)
	Ignored     int64 // unknown events, events without a handler, the bot's own events (200)
	Rejected    int64 // bad token or signature, malformed, too large (4xx)
	Dropped     int64 // answered 202 but not kept: in-memory queue full or shut down (logged)
	Unavailable int64 // the Intake could not store the delivery (503)
	Done        int64 // deliveries whose handlers have all returned
	Failed      int64 // of Done, those where a handler returned an error

	Intake IntakeStats // pending deliveries and redeliveries
}

// Hooks is an http.Handler that receives GitLab webhooks. It answers as
// soon as its Intake has stored a delivery and runs the registered handlers
// from there; work for one merge request or issue runs one delivery at a
// time, in arrival order.
//
// Handlers registered with the On* methods accumulate: every handler
// registered for an event kind runs for each delivery of that kind, one
// after the other in registration order (a failing handler does not stop
// the next one). Register handlers before serving. The caller must call
// Shutdown when finished.
type Hooks struct {
	cfg    HooksConfig
	log    *slog.Logger
	key    []byte // signing key, nil when signatures are not checked
	intake Intake
	m      *Metrics     // nil counts nothing
	tracer trace.Tracer // nil opens no spans

	startOnce sync.Once
	startErr  error

	hmu      sync.RWMutex
	mr       []named[func(context.Context, *gitlab.MergeEvent) error]
	issue    []named[func(context.Context, *gitlab.IssueEvent) error]
	note     []named[func(context.Context, NoteEvent) error]
	push     []named[func(context.Context, *gitlab.PushEvent) error]
	tag      []named[func(context.Context, *gitlab.TagEvent) error]
	pipeline []named[func(context.Context, *gitlab.PipelineEvent) error]

	accepted, duplicate, ignored, rejected, dropped, unavailable, finished, failed atomic.Int64
}

// NewHooks returns a receiver. With the in-memory intake (cfg.Intake nil)
// its workers are started; another Intake starts handing out stored
// deliveries at Start, or at the first ServeHTTP or Idle. If cfg.Token is
// empty, cfg.SigningToken is not "whsec_<base64>" or cfg.Metrics already
// serves another Hooks, the error wraps ErrConfig.
func NewHooks(cfg HooksConfig) (*Hooks, error) {
	if cfg.Token == "" {
		return nil, fmt.Errorf("%w: empty webhook token", ErrConfig)
	}
	h := &Hooks{cfg: cfg}
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
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = 64 << 20
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
	if err := c.Metrics.attach(h); err != nil {
		return nil, err
	}
	h.m = c.Metrics
	if c.TracerProvider != nil {
		h.tracer = c.TracerProvider.Tracer(tracerName)
	}
	h.intake = c.Intake
	if h.intake == nil {
		h.intake = newMemoryIntake(c)
		h.Start() // never fails; nothing is stored yet, so no delivery can run before its handlers are registered
	}
	return h, nil
}

// Start makes the Intake hand stored deliveries to the registered handlers.
// Call it after registering them: with a durable Intake, deliveries stored
// before a restart run as soon as it is called. ServeHTTP and Idle call it
// too; calling it again does nothing and returns the first call's error.
func (h *Hooks) Start() error {
	h.startOnce.Do(func() { h.startErr = h.intake.Start(h.handle) })
	return h.startErr
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
	addHandler(h, &h.mr, fn)
}

// OnIssue registers fn for Issue Hook and Confidential Issue Hook deliveries.
func (h *Hooks) OnIssue(fn func(ctx context.Context, ev *gitlab.IssueEvent) error) {
	addHandler(h, &h.issue, fn)
}

// OnNote registers fn for Note Hook and Confidential Note Hook deliveries.
func (h *Hooks) OnNote(fn func(ctx context.Context, ev NoteEvent) error) {
	addHandler(h, &h.note, fn)
}

// OnPush registers fn for Push Hook deliveries.
func (h *Hooks) OnPush(fn func(ctx context.Context, ev *gitlab.PushEvent) error) {
	addHandler(h, &h.push, fn)
}

// OnTagPush registers fn for Tag Push Hook deliveries.
func (h *Hooks) OnTagPush(fn func(ctx context.Context, ev *gitlab.TagEvent) error) {
	addHandler(h, &h.tag, fn)
}

// OnPipeline registers fn for Pipeline Hook deliveries.
func (h *Hooks) OnPipeline(fn func(ctx context.Context, ev *gitlab.PipelineEvent) error) {
	addHandler(h, &h.pipeline, fn)
}

// named is a registered handler and its name for the metrics.
type named[F any] struct {
	name string
	fn   F
}

func addHandler[F any](h *Hooks, list *[]named[F], fn F) {
	name := handlerName(fn)
	h.hmu.Lock()
	defer h.hmu.Unlock()
	*list = append(*list, named[F]{name, fn})
	h.m.handlerRegistered(name)
}

// Stats returns the delivery counters and the Intake's state.
func (h *Hooks) Stats() HookStats {
	return HookStats{
		Accepted: h.accepted.Load(), Duplicate: h.duplicate.Load(), Ignored: h.ignored.Load(),
		Rejected: h.rejected.Load(), Dropped: h.dropped.Load(), Unavailable: h.unavailable.Load(),
		Done: h.finished.Load(), Failed: h.failed.Load(), Intake: h.intake.Stats(),
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

// ServeHTTP receives one delivery. It answers 202 when the Intake stored
// the delivery (and, in memory only, when the queue is full or Shutdown has
// begun: the delivery is then dropped and logged), 200 when it is ignored
// (unknown event, no handler, the bot's own event) or a redelivery, 401 on
// a wrong token or signature, 400 on a malformed body, 413 when the body is
// too large, 405 for other methods and 503 when a durable Intake cannot
// store it.
func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.m.answered(r.Header.Get("X-Gitlab-Event"), AnswerMethodNotAllowed)
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
	e := h.envelope(r, typ, body)
	e.Partition = info.key
	if err := h.Start(); err != nil {
		h.unavailable.Add(1)
		h.m.answered(string(typ), AnswerUnavailable)
		h.log.Error("webhook intake cannot start", "event", string(typ), "event_uuid", e.EventUUID, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, ErrUnavailable.Error(), http.StatusServiceUnavailable)
		return
	}
	err = h.intake.Enqueue(r.Context(), e)
	switch {
	case err == nil:
		h.accepted.Add(1)
		h.m.answered(string(typ), AnswerAccepted)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted\n")
	case errors.Is(err, ErrDuplicate):
		h.duplicate.Add(1)
		h.m.answered(string(typ), AnswerDuplicate)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "duplicate delivery\n")
	case errors.Is(err, ErrTooLarge):
		h.reject(w, r, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, ErrDropped):
		h.dropped.Add(1)
		h.m.answered(string(typ), AnswerDropped)
		h.m.droppedDelivery(err)
		logDropped(h.log, e, err)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted\n")
	default:
		h.unavailable.Add(1)
		h.m.answered(string(typ), AnswerUnavailable)
		h.log.Error("webhook not stored", "event", string(typ), "event_uuid", e.EventUUID, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, ErrUnavailable.Error(), http.StatusServiceUnavailable)
	}
}

// maxKeyHeader is the longest Idempotency-Key kept as it is in a Delivery.
const maxKeyHeader = 200

// envelope builds the stored form of a verified delivery. Its dedupe key
// is the signed webhook-id when signatures are checked (an attacker who
// replays a signed delivery cannot change it), else Idempotency-Key, else
// X-Gitlab-Event-UUID, else the event type and body.
func (h *Hooks) envelope(r *http.Request, typ gitlab.EventType, body []byte) *Envelope {
	e := &Envelope{Body: body}
	e.Event = typ
	e.EventUUID = truncate(r.Header.Get("X-Gitlab-Event-UUID"))
	e.WebhookUUID = truncate(r.Header.Get("X-Gitlab-Webhook-UUID"))
	key := r.Header.Get("Idempotency-Key")
	sum := sha256.New()
	io.WriteString(sum, string(typ)+"\n")
	sum.Write(body)
	bodySum := "sha256:" + hex.EncodeToString(sum.Sum(nil))
	switch {
	case key == "":
		e.IdempotencyKey = bodySum
	case len(key) > maxKeyHeader:
		s := sha256.Sum256([]byte(key))
		e.IdempotencyKey = "sha256:" + hex.EncodeToString(s[:])
	default:
		e.IdempotencyKey = key
	}
	switch {
	case h.key != nil:
		e.DedupKey = dedupKey("webhook-id", r.Header.Get("webhook-id"))
	case key != "":
		e.DedupKey = dedupKey("idempotency-key", key)
	case r.Header.Get("X-Gitlab-Event-UUID") != "":
		e.DedupKey = dedupKey("event-uuid", r.Header.Get("X-Gitlab-Event-UUID"))
	default:
		e.DedupKey = dedupKey("body", bodySum)
	}
	return e
}

// truncate bounds a header value kept in an Envelope.
func truncate(s string) string {
	if len(s) > maxKeyHeader {
		return s[:maxKeyHeader]
	}
	return s
}

func (h *Hooks) reject(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.rejected.Add(1)
	answer := AnswerMalformed
	switch status {
	case http.StatusUnauthorized:
		answer = AnswerUnauthorized
	case http.StatusRequestEntityTooLarge:
		answer = AnswerTooLarge
	}
	h.m.answered(r.Header.Get("X-Gitlab-Event"), answer)
	h.log.Warn("webhook rejected", "event", r.Header.Get("X-Gitlab-Event"), "status", status, "remote", r.RemoteAddr, "err", err)
	http.Error(w, err.Error(), status)
}

func (h *Hooks) ignore(w http.ResponseWriter, r *http.Request, why string) {
	h.ignored.Add(1)
	h.m.answered(r.Header.Get("X-Gitlab-Event"), AnswerIgnored)
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

// handle runs the registered handlers for one stored delivery; the Intake
// calls it. The delivery's handlers run in registration order, each retried
// on transient errors, under HandlerTimeout.
func (h *Hooks) handle(ctx context.Context, e *Envelope) error {
	ctx, span := h.startDelivery(context.WithValue(ctx, deliveryKey{}, e.Delivery), e)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.HandlerTimeout)
	defer cancel()
	ev, err := parseEnvelope(e)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: %s: %v", ErrMalformed, e.Event, err))
	}
	fns := h.handlers(ev)
	for _, fn := range fns {
		start := time.Now()
		err := h.attempt(ctx, fn.fn)
		h.m.handled(fn.name, time.Since(start), err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	h.finished.Add(1)
	err = errors.Join(errs...)
	if err != nil {
		h.failed.Add(1)
		h.log.ErrorContext(ctx, "webhook handler failed", "event", string(e.Event),
			"event_uuid", e.EventUUID, "key", e.Partition, "err", err)
	}
	endDelivery(span, len(fns), err)
	return err
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
func (h *Hooks) handlers(ev any) []named[func(context.Context) error] {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	var fns []named[func(context.Context) error]
	switch e := ev.(type) {
	case *gitlab.MergeEvent:
		for _, f := range h.mr {
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, e) }})
		}
	case *gitlab.IssueEvent:
		for _, f := range h.issue {
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, e) }})
		}
	case *gitlab.PushEvent:
		for _, f := range h.push {
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, e) }})
		}
	case *gitlab.TagEvent:
		for _, f := range h.tag {
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, e) }})
		}
	case *gitlab.PipelineEvent:
		for _, f := range h.pipeline {
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, e) }})
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
			fns = append(fns, named[func(context.Context) error]{f.name, func(ctx context.Context) error { return f.fn(ctx, n) }})
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

// Idle returns nil once every delivery the Intake has stored so far has
// been handled: for tests, which can then look at what the handlers did
// without shutting the receiver down. If ctx ends first, the error wraps
// ctx's error. With a shared Intake (JetStream), it waits for deliveries
// stored by every replica.
func (h *Hooks) Idle(ctx context.Context) error {
	if err := h.Start(); err != nil {
		return err
	}
	return h.intake.Idle(ctx)
}

// Shutdown stops handing out deliveries and waits until the running
// handlers have returned; the in-memory intake first finishes every
// delivery it accepted. If ctx ends first, the handlers still running are
// cancelled and the error wraps ctx's error and says how many deliveries
// were not finished (a durable Intake keeps them for a later run). After
// Shutdown, the in-memory intake answers deliveries 202 and drops them
// (ErrShutdown), so stop the HTTP server first; a durable Intake still
// stores them. Calling Shutdown again waits again.
func (h *Hooks) Shutdown(ctx context.Context) error {
	return h.intake.Shutdown(ctx)
}
