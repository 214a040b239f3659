package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
)

// ResultsConfig configures Results. Conn is required; the zero value of
// every other field selects the documented default. Every replica must use
// the same Bucket.
type ResultsConfig struct {
	// Conn is the connection to NATS, as in Config. The caller closes it.
	Conn *nats.Conn
	// Bucket is the key-value bucket's name. "" means "OPSKIT_RESULTS".
	Bucket string
	// TTL is how long a result is kept after its last Put; the bucket
	// stays bounded by what TTL lets accumulate. 0 means 24 hours.
	TTL time.Duration
	// Replicas is the bucket's replication factor in a cluster. 0 means 1.
	Replicas int
	// MemoryStorage keeps the bucket in memory instead of files: for tests
	// only.
	MemoryStorage bool
}

// Results is a small key-value store of job results in a JetStream
// key-value bucket whose entries expire after ResultsConfig.TTL, shared by
// every replica connected to the same NATS. It implements
// freshdesk.ResultStore, so that a status request answered by any replica
// sees the result of an escalation another replica ran. It holds no
// resources of its own.
type Results struct {
	kv js.KeyValue
}

// NewResults creates or updates the bucket. If Conn is nil, the error wraps
// ErrConfig; other errors come from JetStream.
func NewResults(ctx context.Context, cfg ResultsConfig) (*Results, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrConfig)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "OPSKIT_RESULTS"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	j, err := js.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := js.FileStorage
	if cfg.MemoryStorage {
		storage = js.MemoryStorage
	}
	kv, err := j.CreateOrUpdateKeyValue(ctx, js.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "opskit job results, kept for a TTL",
		History:     1,
		TTL:         cfg.TTL,
		Storage:     storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: results bucket %s: %w", cfg.Bucket, err)
	}
	return &Results{kv: kv}, nil
}

// Put stores value under key (letters, digits, '-', '_', '=', '.' and
// '/'), replacing what was there. Errors come from JetStream.
func (r *Results) Put(ctx context.Context, key string, value []byte) error {
	if _, err := r.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("jetstream: storing result %s: %w", key, err)
	}
	return nil
}

// Get returns the value stored under key; ok is false when there is none
// (never stored, or expired). Errors come from JetStream.
func (r *Results) Get(ctx context.Context, key string) (value []byte, ok bool, err error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, js.ErrKeyNotFound) || errors.Is(err, js.ErrInvalidKey) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("jetstream: reading result %s: %w", key, err)
	}
	return e.Value(), true, nil
}
