package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
)

// ErrConfig means New was given an invalid configuration.
var ErrConfig = errors.New("jetstream: invalid configuration")

// Config configures an Intake. Conn is required; the zero value of every
// other field selects the documented default. Every replica of a service
// must use the same Stream, Subject and Partitions.
type Config struct {
	// Conn is the connection to NATS (an Embedded server's Conn, or
	// nats.Connect to a cluster). The caller closes it after Shutdown.
	Conn *nats.Conn
	// Stream is the JetStream stream's name. "" means "GITLAB_HOOKS".
	Stream string
	// Subject is the subjects' prefix: a delivery is stored on
	// "<Subject>.<partition number>". "" means "gitlab.hooks".
	Subject string
	// Partitions is the number of partitions, each with its own consumer
	// handling one delivery at a time: the most deliveries handled at once
	// across all replicas. Work for one merge request or issue always lands
	// in the same partition. Change it only while the stream is empty.
	// 0 means 32.
	Partitions int
	// Replicas is the stream's replication factor in a cluster (1, 3 or 5).
	// 0 means 1.
	Replicas int
	// MemoryStorage keeps the stream in memory instead of files: for tests
	// only, since it loses everything when the server stops.
	MemoryStorage bool
	// DedupWindow is how long JetStream remembers a delivery's dedupe key
	// (Nats-Msg-Id) to drop redeliveries. 0 means 1 hour.
	DedupWindow time.Duration
	// AckWait is how long a replica may go silent while handling a
	// delivery before JetStream hands it to another replica. Running
	// handlers report progress every AckWait/3, so a slow handler is not
	// redelivered. 0 means 30 seconds.
	AckWait time.Duration
	// PinnedTTL is how long a partition stays pinned to a replica that
	// stopped asking for work (crashed or stopped) before another replica
	// takes it over. 0 means 15 seconds.
	PinnedTTL time.Duration
	// MaxDeliver bounds how often one delivery is handed out (a delivery
	// that crashes every replica that handles it is then skipped, and
	// stays in the stream for inspection). 0 means 20.
	MaxDeliver int
	// Logger receives a record per delivery that could not be acknowledged
	// or decoded. nil discards.
	Logger *slog.Logger
}

// Intake is a gitlabx.Intake on NATS JetStream: Enqueue returns once
// JetStream has stored the delivery (PubAck), deduplicated by
// Nats-Msg-Id = Envelope.DedupKey. Deliveries are partitioned by their
// serialization key (merge request or issue); each partition is a durable
// pull consumer with one delivery in flight, pinned to one replica at a
// time, so any number of replicas share the work while the deliveries of
// one merge request or issue run one at a time, in order, at least once.
//
// Use it as gitlabx.HooksConfig.Intake. gitlabx.Hooks calls its methods;
// the caller closes Config.Conn after Hooks.Shutdown.
type Intake struct {
	cfg    Config
	log    *slog.Logger
	js     js.JetStream
	stream js.Stream
	cons   []js.Consumer

	stopFetch context.CancelFunc // stops asking for deliveries
	fetchCtx  context.Context
	stopRun   context.CancelFunc // cancels running handlers
	runCtx    context.Context
	wg        sync.WaitGroup
	mu        sync.Mutex
	started   bool
	closed    bool // Shutdown was called: Start does nothing

	redelivered atomic.Int64
	pins        []atomic.Pointer[string] // per partition: the pin id JetStream gave this replica
}

const group = "gitlabx"

// New creates or updates the stream and its consumers and returns an
// Intake that hands out nothing until Start. If the configuration is
// invalid, the error wraps ErrConfig; other errors come from JetStream.
func New(ctx context.Context, cfg Config) (*Intake, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrConfig)
	}
	if cfg.Stream == "" {
		cfg.Stream = "GITLAB_HOOKS"
	}
	if cfg.Subject == "" {
		cfg.Subject = "gitlab.hooks"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 32
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = time.Hour
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.PinnedTTL <= 0 {
		cfg.PinnedTTL = 15 * time.Second
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 20
	}
	in := &Intake{cfg: cfg, log: cfg.Logger}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if in.js, err = js.New(cfg.Conn); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := js.FileStorage
	if cfg.MemoryStorage {
		storage = js.MemoryStorage
	}
	in.stream, err = in.js.CreateOrUpdateStream(ctx, js.StreamConfig{
		Name:        cfg.Stream,
		Description: "GitLab webhook deliveries accepted by gitlabx.Hooks, until handled",
		Subjects:    []string{cfg.Subject + ".>"},
		Retention:   js.WorkQueuePolicy,
		Storage:     storage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DedupWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", cfg.Stream, err)
	}
	for p := range cfg.Partitions {
		name := partitionName(p)
		c, err := in.stream.CreateOrUpdateConsumer(ctx, js.ConsumerConfig{
			Durable:        name,
			Description:    "gitlabx partition " + strconv.Itoa(p),
			FilterSubject:  in.subject(p),
			AckPolicy:      js.AckExplicitPolicy,
			AckWait:        cfg.AckWait,
			MaxAckPending:  1, // one delivery at a time per partition: per-MR and per-issue order
			MaxDeliver:     cfg.MaxDeliver,
			PriorityGroups: []string{group},
			PriorityPolicy: js.PriorityPolicyPinned,
			PinnedTTL:      cfg.PinnedTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("jetstream: consumer %s: %w", name, err)
		}
		in.cons = append(in.cons, c)
	}
	in.pins = make([]atomic.Pointer[string], len(in.cons))
	return in, nil
}

func partitionName(p int) string { return fmt.Sprintf("p%03d", p) }

func (in *Intake) subject(p int) string { return in.cfg.Subject + "." + strconv.Itoa(p) }

// partition maps a serialization key to a partition; deliveries without
// one spread by their dedupe key.
func (in *Intake) partition(e *gitlabx.Envelope) int {
	k := e.Partition
	if k == "" {
		k = e.DedupKey
	}
	h := fnv.New32a()
	h.Write([]byte(k))
	return int(h.Sum32() % uint32(in.cfg.Partitions))
}

// pinHeader carries the pin id on the deliveries of a pinned consumer.
const pinHeader = "Nats-Pin-Id"

// Headers of a stored delivery.
const (
	hEvent       = "Gitlab-Event"
	hEventUUID   = "Gitlab-Event-Uuid"
	hWebhookUUID = "Gitlab-Webhook-Uuid"
	hIdempotency = "Idempotency-Key"
	hPartition   = "Opskit-Partition"
)

// Enqueue publishes e and waits for JetStream's acknowledgement. It returns
// gitlabx.ErrDuplicate when JetStream already holds a delivery with e's
// dedupe key within DedupWindow, an error wrapping gitlabx.ErrTooLarge when
// e exceeds the server's max_payload (set it above
// gitlabx.HooksConfig.MaxBodyBytes: nats-server's default is 1 MiB), and an
// error from NATS when the delivery could not be stored.
func (in *Intake) Enqueue(ctx context.Context, e *gitlabx.Envelope) error {
	m := nats.NewMsg(in.subject(in.partition(e)))
	m.Data = e.Body
	m.Header.Set(hEvent, string(e.Event))
	m.Header.Set(hEventUUID, e.EventUUID)
	m.Header.Set(hWebhookUUID, e.WebhookUUID)
	m.Header.Set(hIdempotency, e.IdempotencyKey)
	m.Header.Set(hPartition, e.Partition)
	ack, err := in.js.PublishMsg(ctx, m, js.WithMsgID(e.DedupKey), js.WithExpectStream(in.cfg.Stream))
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: jetstream: delivery of %d bytes exceeds the server's max_payload: %w", gitlabx.ErrTooLarge, len(e.Body), err)
	}
	if err != nil {
		return fmt.Errorf("jetstream: storing delivery: %w", err)
	}
	if ack.Duplicate {
		return gitlabx.ErrDuplicate
	}
	return nil
}

func decode(m js.Msg) *gitlabx.Envelope {
	h := m.Headers()
	e := &gitlabx.Envelope{Body: m.Data(), Partition: h.Get(hPartition), DedupKey: h.Get(nats.MsgIdHdr)}
	e.Event = gitlab.EventType(h.Get(hEvent))
	e.EventUUID = h.Get(hEventUUID)
	e.WebhookUUID = h.Get(hWebhookUUID)
	e.IdempotencyKey = h.Get(hIdempotency)
	return e
}

// Start asks every partition for deliveries and hands them to handle, one
// at a time per partition. Only the partitions pinned to this replica
// deliver; the others take over when their replica stops. After Shutdown it
// does nothing.
func (in *Intake) Start(handle gitlabx.HandleFunc) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.started || in.closed {
		return nil
	}
	in.started = true
	in.fetchCtx, in.stopFetch = context.WithCancel(context.Background())
	in.runCtx, in.stopRun = context.WithCancel(context.Background())
	for p, c := range in.cons {
		in.wg.Go(func() { in.consume(p, c, handle) })
	}
	return nil
}

// fetchWait is how long one pull request waits for a delivery; it is
// below PinnedTTL so a live replica keeps its partitions.
func (in *Intake) fetchWait() time.Duration {
	return min(5*time.Second, in.cfg.PinnedTTL/3)
}

func (in *Intake) consume(p int, c js.Consumer, handle gitlabx.HandleFunc) {
	for in.fetchCtx.Err() == nil {
		ctx, cancel := context.WithTimeout(in.fetchCtx, in.fetchWait())
		m, err := c.Next(js.FetchPriorityGroup(group), js.FetchContext(ctx))
		cancel()
		if err != nil {
			if in.fetchCtx.Err() != nil || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue // the pull request waited fetchWait for nothing
			}
			if !errors.Is(err, js.ErrNoMessages) && !errors.Is(err, js.ErrPinIDMismatch) {
				in.log.Debug("jetstream: asking for deliveries", "consumer", c.CachedInfo().Name, "err", err)
			}
			select { // do not spin on an error the server answers at once
			case <-in.fetchCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if pin := m.Headers().Get(pinHeader); pin != "" {
			in.pins[p].Store(&pin)
		}
		in.process(m, handle)
	}
}

// process runs one delivery, reporting progress while it runs, and acks
// it; when Shutdown cancelled it, it is handed back (Nak) for another
// replica or the next start.
func (in *Intake) process(m js.Msg, handle gitlabx.HandleFunc) {
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		in.redelivered.Add(1)
	}
	ctx, cancel := context.WithCancel(in.runCtx)
	defer cancel()
	go func() {
		t := time.NewTicker(in.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()
	handle(ctx, decode(m)) // gitlabx.Hooks logs and counts the outcome
	if in.runCtx.Err() != nil {
		if err := m.Nak(); err != nil {
			in.log.Warn("jetstream: handing back an unfinished delivery", "err", err)
		}
		return
	}
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	if err := m.DoubleAck(actx); err != nil {
		in.log.Warn("jetstream: acknowledging a handled delivery (it will run again)", "err", err)
	}
}

// Idle returns nil once no partition holds a delivery that is waiting or
// being handled, by this replica or another; or ctx's error.
func (in *Intake) Idle(ctx context.Context) error {
	for {
		busy := false
		for _, c := range in.cons {
			ci, err := c.Info(ctx)
			if err != nil {
				return fmt.Errorf("jetstream: idle: %w", err)
			}
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream: idle: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Shutdown stops asking for deliveries and waits for the running handlers
// to finish and be acknowledged. If ctx ends first, it cancels them: their
// deliveries are handed back to JetStream (nothing is lost; another
// replica, or this one after a restart, handles them) and the error wraps
// ctx's error. It then unpins this replica's partitions, so other replicas
// take them over at once. It does not close Config.Conn.
func (in *Intake) Shutdown(ctx context.Context) error {
	in.mu.Lock()
	started := in.started
	in.closed = true
	in.mu.Unlock()
	if !started {
		return nil
	}
	in.stopFetch()
	done := make(chan struct{})
	go func() { in.wg.Wait(); close(done) }()
	select {
	case <-done:
		in.unpin()
		return nil
	case <-ctx.Done():
		in.stopRun()
		<-done // handlers see the cancellation; their deliveries are handed back
		in.unpin()
		return fmt.Errorf("jetstream: shutdown: unfinished deliveries handed back to the stream: %w", ctx.Err())
	}
}

// unpin releases the partitions still pinned to this replica, so that
// another replica takes them at once instead of after PinnedTTL (a rolling
// restart then stalls nothing). Failures only delay that hand-over.
func (in *Intake) unpin() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for p, c := range in.cons {
		pin := in.pins[p].Load()
		if pin == nil {
			continue
		}
		ci, err := c.Info(ctx)
		if err != nil {
			in.log.Debug("jetstream: unpinning at shutdown", "consumer", partitionName(p), "err", err)
			continue
		}
		for _, g := range ci.PriorityGroups {
			if g.Group == group && g.PinnedClientID == *pin {
				if err := in.stream.UnpinConsumer(ctx, partitionName(p), group); err != nil {
					in.log.Debug("jetstream: unpinning at shutdown", "consumer", partitionName(p), "err", err)
				}
			}
		}
	}
}

// Stats reports the stream's depth (deliveries stored and not yet handled,
// across every replica) and the deliveries this replica was handed again.
// When JetStream cannot be asked within a second, Pending is -1.
func (in *Intake) Stats() gitlabx.IntakeStats {
	s := gitlabx.IntakeStats{Pending: -1, PendingBytes: -1, Redelivered: in.redelivered.Load()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if si, err := in.stream.Info(ctx); err == nil {
		s.Pending, s.PendingBytes = int64(si.State.Msgs), int64(si.State.Bytes)
	}
	return s
}

var _ gitlabx.Intake = (*Intake)(nil)
