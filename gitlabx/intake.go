package gitlabx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// Errors an Intake returns from Enqueue. Hooks answers ErrDuplicate with
// 200, ErrDropped with 202 (logged and counted in HookStats.Dropped),
// ErrTooLarge with 413 and every other error with 503.
var (
	// ErrDuplicate means a delivery with the same dedupe key was already
	// stored: a redelivery.
	ErrDuplicate = errors.New("gitlabx: duplicate delivery")
	// ErrDropped means the in-memory intake did not keep the delivery
	// (byte budget or queue full, or Shutdown begun). The error also wraps
	// ErrBusy or ErrShutdown.
	ErrDropped = errors.New("gitlabx: delivery dropped")
)

// Envelope is one accepted delivery as an Intake stores it: the raw body
// and the headers the handlers need. It is parsed again when a handler
// runs, so a stored delivery costs its body's bytes, not a parsed event's.
type Envelope struct {
	Delivery
	// DedupKey is the hex SHA-256 of what identifies a delivery across
	// redeliveries: the signed webhook-id when signing is configured, else
	// Idempotency-Key, else X-Gitlab-Event-UUID, else the event type and
	// body. It is always 64 bytes, whatever the headers' size.
	DedupKey string
	// Partition is the serialization key: "mr/<project>/<iid>",
	// "issue/<project>/<iid>", "ref/<project>/<ref>", or "" for events that
	// need no ordering. Deliveries with the same Partition run one at a
	// time, in the order they were stored.
	Partition string
	// Body is the delivery's JSON body.
	Body []byte
}

// Size is the number of bytes e counts against a byte budget: its body,
// its header values and a fixed overhead.
func (e *Envelope) Size() int64 {
	return int64(len(e.Body)+len(e.DedupKey)+len(e.Partition)+len(e.Event)+len(e.EventUUID)+
		len(e.WebhookUUID)+len(e.IdempotencyKey)) + envelopeOverhead
}

const envelopeOverhead = 256

// HandleFunc runs the handlers for one stored delivery. Hooks provides it
// to the Intake. It returns the handlers' joined errors; when ctx was
// cancelled before the handlers finished (the intake is shutting down), the
// error wraps ctx's error and the delivery should stay stored.
type HandleFunc func(ctx context.Context, e *Envelope) error

// IntakeStats describes the deliveries an Intake holds.
type IntakeStats struct {
	// Pending counts deliveries stored and not yet handled. For a shared
	// store (JetStream) it is the stream's depth, across every replica.
	Pending int64
	// PendingBytes is the size of the pending deliveries.
	PendingBytes int64
	// Redelivered counts deliveries handed to a handler again, after a
	// replica crashed or stopped during its handling.
	Redelivered int64
}

// An Intake stores the deliveries Hooks accepts until a handler has run
// them: Hooks answers GitLab 202 only after Enqueue returned. HooksConfig's
// zero Intake is an in-memory queue; gitlabx/jetstream stores deliveries in
// NATS JetStream so that they survive crashes and are shared by replicas.
//
// An Intake hands deliveries with the same Envelope.Partition to handle one
// at a time, in the order they were stored, and at least once. Package
// gitlabx/intaketest checks an implementation against this contract.
type Intake interface {
	// Enqueue stores e. It returns ErrDuplicate for a redelivery, an error
	// wrapping ErrDropped when it chose not to keep e, one wrapping
	// ErrTooLarge when e exceeds what it can store, and any other error
	// when it could not store e.
	Enqueue(ctx context.Context, e *Envelope) error
	// Start begins handing stored deliveries to handle. Hooks calls it once.
	Start(handle HandleFunc) error
	// Idle returns nil once every delivery stored so far has been handled,
	// or ctx's error.
	Idle(ctx context.Context) error
	// Shutdown stops handing out deliveries and waits for the running
	// handlers. If ctx ends first, it cancels them and returns an error
	// wrapping ctx's error.
	Shutdown(ctx context.Context) error
	// Stats describes the stored deliveries.
	Stats() IntakeStats
}

// dedupKey hashes the identity of a delivery to a fixed size.
func dedupKey(kind, value string) string {
	h := sha256.New()
	io.WriteString(h, kind+"\x00")
	io.WriteString(h, value)
	return hex.EncodeToString(h.Sum(nil))
}

// memoryIntake is the default Intake: a bounded in-process queue run by a
// pool of workers. It is not durable: a crash loses what it holds.
type memoryIntake struct {
	workers  int
	maxCount int
	maxBytes int64
	seen     *dedup

	stop     chan struct{} // closed when Shutdown gives up waiting: running handlers are cancelled
	stopOnce sync.Once
	handle   HandleFunc

	mu      sync.Mutex
	closed  bool
	started bool
	pending int   // stored, not yet handled (queued or running)
	queued  int   // stored, not yet started
	bytes   int64 // size of the pending envelopes
	idle    chan struct{}
	active  map[string][]*Envelope // partition -> deliveries waiting behind the running one
	queue   chan *Envelope
	done    chan struct{} // closed when every worker has returned
}

func newMemoryIntake(c *HooksConfig) *memoryIntake {
	m := &memoryIntake{
		workers: c.Workers, maxCount: c.QueueSize, maxBytes: c.MaxQueuedBytes,
		seen:   newDedup(c.DedupSize, c.DedupTTL, c.Now),
		stop:   make(chan struct{}),
		active: make(map[string][]*Envelope),
		queue:  make(chan *Envelope, c.QueueSize),
		done:   make(chan struct{}),
		idle:   make(chan struct{}),
	}
	close(m.idle)
	return m
}

func (m *memoryIntake) Start(handle HandleFunc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return nil
	}
	m.started = true
	m.handle = handle
	var wg sync.WaitGroup
	for range m.workers {
		wg.Go(m.work)
	}
	go func() { wg.Wait(); close(m.done) }()
	return nil
}

func (m *memoryIntake) Enqueue(_ context.Context, e *Envelope) error {
	if !m.seen.add(e.DedupKey) {
		return ErrDuplicate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	size := e.Size()
	var err error
	switch {
	case m.closed:
		err = fmt.Errorf("%w: %w", ErrDropped, ErrShutdown)
	case m.queued >= m.maxCount:
		err = fmt.Errorf("%w: %w: %d deliveries queued", ErrDropped, ErrBusy, m.queued)
	case m.bytes+size > m.maxBytes:
		err = fmt.Errorf("%w: %w: %d of %d queued bytes in use, delivery needs %d", ErrDropped, ErrBusy, m.bytes, m.maxBytes, size)
	}
	if err != nil {
		m.seen.forget(e.DedupKey) // a redelivery of a dropped delivery is welcome
		return err
	}
	if m.pending == 0 {
		m.idle = make(chan struct{})
	}
	m.pending++
	m.queued++
	m.bytes += size
	if e.Partition != "" {
		if waiting, running := m.active[e.Partition]; running {
			m.active[e.Partition] = append(waiting, e)
			return nil
		}
		m.active[e.Partition] = nil
	}
	m.queue <- e // never blocks: len(m.queue) <= m.queued <= cap
	return nil
}

// work runs queued deliveries until Shutdown closes the queue. After a
// delivery with a partition, it runs the ones that queued up behind it.
func (m *memoryIntake) work() {
	for e := range m.queue {
		for {
			m.mu.Lock()
			m.queued--
			m.mu.Unlock()
			m.run(e)
			m.mu.Lock()
			m.pending--
			m.bytes -= e.Size()
			if m.pending == 0 {
				close(m.idle)
			}
			if e.Partition == "" {
				m.mu.Unlock()
				break
			}
			waiting := m.active[e.Partition]
			if len(waiting) == 0 {
				delete(m.active, e.Partition)
				m.mu.Unlock()
				break
			}
			e = waiting[0]
			waiting[0] = nil
			m.active[e.Partition] = waiting[1:]
			m.mu.Unlock()
		}
	}
}

func (m *memoryIntake) run(e *Envelope) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	m.handle(ctx, e) // Hooks logs and counts the outcome
}

func (m *memoryIntake) Idle(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gitlabx: idle: %w", ctx.Err())
	}
}

func (m *memoryIntake) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	started := m.started
	m.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		n := m.pending
		m.mu.Unlock()
		m.stopOnce.Do(func() { close(m.stop) })
		return fmt.Errorf("gitlabx: shutdown: %d accepted deliveries not finished: %w", n, ctx.Err())
	}
}

func (m *memoryIntake) Stats() IntakeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return IntakeStats{Pending: int64(m.pending), PendingBytes: m.bytes}
}

// parseEnvelope parses a stored delivery's body again.
func parseEnvelope(e *Envelope) (any, error) {
	return gitlab.ParseWebhook(e.Event, e.Body)
}

// logDropped is the record an operator acts on: redeliver the event from
// GitLab's "Recent events" of the webhook.
func logDropped(log *slog.Logger, e *Envelope, err error) {
	log.Error("webhook dropped: answered 202 but not kept; redeliver it from the webhook's Recent events in GitLab",
		"event", string(e.Event), "event_uuid", e.EventUUID, "webhook_uuid", e.WebhookUUID, "partition", e.Partition, "err", err)
}
