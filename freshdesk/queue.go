package freshdesk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/opskit/opskit/gitlabx"
)

// Queued escalations.
//
// An escalation is stored in a gitlabx.Intake as an Envelope, which fits a
// non-GitLab payload: Body is the job as JSON, DedupKey the hash of the
// escalation's ID (every press of the button is its own escalation),
// Partition "freshdesk-ticket/<id>" (one ticket's escalations run one at a
// time, in order), Event EscalationEvent. So gitlabx/jetstream's Intake
// serves the bridge unchanged, on a stream of its own.

// EscalationEvent is the Envelope.Event of a queued escalation.
const EscalationEvent = "Freshdesk Escalation"

// Status values of a queued escalation.
const (
	StatusQueued = "queued" // stored, not finished yet
	StatusDone   = "done"   // Escalate succeeded
	StatusFailed = "failed" // Escalate returned an error; Error says which
)

// ErrNoIntake is returned by Enqueue when BridgeConfig.Intake is nil.
var ErrNoIntake = errors.New("freshdesk: no intake configured: escalations run synchronously")

// ErrUnknownEscalation is returned by Result for an ID that was never
// queued, or whose result expired (ResultStore's TTL).
var ErrUnknownEscalation = errors.New("freshdesk: unknown or expired escalation")

// EscalationStatus is what Result reports about a queued escalation, and
// the JSON that GET /escalations/{id} answers: {"id", "ticket_id",
// "status", "issue_url", "created", "notes_added", "attachments_copied",
// "error"}. The Escalation fields are set once Status is StatusDone or
// StatusFailed (on failure, what was done before it).
type EscalationStatus struct {
	ID       string `json:"id"`
	TicketID int64  `json:"ticket_id"`
	Status   string `json:"status"`
	Escalation
	Error string `json:"error,omitempty"`
}

// ResultStore keeps the outcome of queued escalations for the status
// endpoint, bounded in size or time. Every replica of a bridge must use
// the same store (gitlabx/jetstream's Results, a JetStream key-value
// bucket with a TTL); nil in BridgeConfig.Results means a MemoryResults,
// which is right for one replica only.
type ResultStore interface {
	// Put stores value under id, replacing what was there.
	Put(ctx context.Context, id string, value []byte) error
	// Get returns the value stored under id; ok is false when there is
	// none (never stored, evicted or expired).
	Get(ctx context.Context, id string) (value []byte, ok bool, err error)
}

// MemoryResults is an in-memory ResultStore holding at most Max entries,
// each for at most TTL; the oldest go first. Its zero value holds 10,000
// entries for an hour. It is safe for concurrent use and holds no
// resources.
type MemoryResults struct {
	Max int           // 0 means 10,000
	TTL time.Duration // 0 means 1 hour

	mu    sync.Mutex
	m     map[string]memResult
	order []string // ids in insertion order, for eviction
	now   func() time.Time
}

type memResult struct {
	v       []byte
	expires time.Time
}

// Put stores value under id, evicting the oldest entry when full. It never
// fails.
func (r *MemoryResults) Put(_ context.Context, id string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]memResult{}
	}
	max, ttl := r.Max, r.TTL
	if max <= 0 {
		max = 10000
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	if _, ok := r.m[id]; !ok {
		r.order = append(r.order, id)
	}
	r.m[id] = memResult{v: append([]byte(nil), value...), expires: r.clock().Add(ttl)}
	for len(r.m) > max && len(r.order) > 0 {
		delete(r.m, r.order[0])
		r.order = r.order[1:]
	}
	return nil
}

// Get returns the value stored under id unless it expired. It never fails.
func (r *MemoryResults) Get(_ context.Context, id string) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	if !ok || !r.clock().Before(e.expires) {
		return nil, false, nil
	}
	return append([]byte(nil), e.v...), true, nil
}

func (r *MemoryResults) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// job is the Body of a queued escalation.
type job struct {
	ID       string `json:"id"`
	TicketID int64  `json:"ticket_id"`
}

func ticketPartition(ticketID int64) string {
	return "freshdesk-ticket/" + strconv.FormatInt(ticketID, 10)
}

// Enqueue stores an escalation of ticketID in BridgeConfig.Intake and
// returns its ID, for Result, once the intake has stored it (with
// gitlabx/jetstream: once JetStream acknowledged it, so it is not lost if
// this process dies). A replica started with Start runs it, after the
// earlier escalations of the same ticket. It returns ErrNoIntake without an
// intake, and the ResultStore's or the intake's error when either could not
// store it.
func (b *Bridge) Enqueue(ctx context.Context, ticketID int64) (string, error) {
	if b.cfg.Intake == nil {
		return "", ErrNoIntake
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	st, _ := json.Marshal(EscalationStatus{ID: id, TicketID: ticketID, Status: StatusQueued})
	// The queued status goes first: a fast replica may finish the
	// escalation before Enqueue returns, and its result must win.
	if err := b.results.Put(ctx, id, st); err != nil {
		return "", fmt.Errorf("freshdesk: queue escalation of ticket %d: storing its status: %w", ticketID, err)
	}
	body, _ := json.Marshal(job{ID: id, TicketID: ticketID})
	sum := sha256.Sum256([]byte("freshdesk-escalation\x00" + id))
	e := &gitlabx.Envelope{DedupKey: hex.EncodeToString(sum[:]), Partition: ticketPartition(ticketID), Body: body}
	e.Event = EscalationEvent
	e.IdempotencyKey = id
	if err := b.cfg.Intake.Enqueue(ctx, e); err != nil {
		return "", fmt.Errorf("freshdesk: queue escalation of ticket %d: %w", ticketID, err)
	}
	b.logger.Info("escalation queued", "ticket", ticketID, "id", id)
	return id, nil
}

// Result returns the status of a queued escalation. It returns an error
// matching ErrUnknownEscalation for an ID never queued or whose result
// expired, and the ResultStore's error when it could not be read.
func (b *Bridge) Result(ctx context.Context, id string) (EscalationStatus, error) {
	v, ok, err := b.results.Get(ctx, id)
	if err != nil {
		return EscalationStatus{}, fmt.Errorf("freshdesk: escalation %s: %w", id, err)
	}
	var st EscalationStatus
	if !ok {
		return st, fmt.Errorf("%w: %s", ErrUnknownEscalation, id)
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("freshdesk: escalation %s: stored status: %v", id, err)
	}
	return st, nil
}

// Start makes BridgeConfig.Intake hand queued escalations to this bridge,
// including those stored before a restart and those a stopped replica left
// unfinished. Without an intake it does nothing. Call Shutdown when
// finished.
func (b *Bridge) Start() error {
	if b.cfg.Intake == nil {
		return nil
	}
	return b.cfg.Intake.Start(b.runQueued)
}

// Idle returns nil once every escalation queued so far (by any replica
// sharing the intake) has run, or ctx's error.
func (b *Bridge) Idle(ctx context.Context) error {
	if b.cfg.Intake == nil {
		return nil
	}
	return b.cfg.Intake.Idle(ctx)
}

// Shutdown stops taking queued escalations and waits for the running ones.
// If ctx ends first it cancels them and returns an error wrapping ctx's
// error; with gitlabx/jetstream they stay stored and run again, here after
// a restart or on another replica. Without an intake it does nothing. It
// does not close the intake's NATS connection.
func (b *Bridge) Shutdown(ctx context.Context) error {
	if b.cfg.Intake == nil {
		return nil
	}
	return b.cfg.Intake.Shutdown(ctx)
}

// runQueued runs one stored escalation and records its outcome.
func (b *Bridge) runQueued(ctx context.Context, e *gitlabx.Envelope) error {
	var j job
	if err := json.Unmarshal(e.Body, &j); err != nil || j.ID == "" || j.TicketID <= 0 {
		b.logger.Error("queued escalation unreadable; skipped", "event", string(e.Event), "err", err)
		return fmt.Errorf("freshdesk: queued escalation unreadable: %v", err)
	}
	ectx, cancel := context.WithTimeout(ctx, b.cfg.EscalateTimeout)
	defer cancel()
	esc, err := b.Escalate(ectx, j.TicketID)
	if err != nil && ctx.Err() != nil {
		return err // shutting down: the intake keeps it and it runs again
	}
	st := EscalationStatus{ID: j.ID, TicketID: j.TicketID, Status: StatusDone, Escalation: esc}
	if err != nil {
		st.Status, st.Error = StatusFailed, err.Error()
		b.logger.Error("escalation failed", "ticket", j.TicketID, "id", j.ID, "err", err)
	}
	v, _ := json.Marshal(st)
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer pcancel()
	if perr := b.results.Put(pctx, j.ID, v); perr != nil {
		b.logger.Error("escalation result not stored; the button will not show it", "ticket", j.TicketID, "id", j.ID, "err", perr)
		return errors.Join(err, perr)
	}
	return err
}
