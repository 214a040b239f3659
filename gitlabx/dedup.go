package gitlabx

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// dedup is a bounded TTL set of delivery keys. It remembers at most max keys,
// each for ttl; when full, the oldest key is forgotten first. Keys are kept
// as their SHA-256, so memory is bounded by max whatever the keys' size.
type dedup struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	order *list.List // of dedupEntry, oldest first
	keys  map[[sha256.Size]byte]*list.Element
}

type dedupEntry struct {
	key     [sha256.Size]byte
	expires time.Time
}

func newDedup(max int, ttl time.Duration, now func() time.Time) *dedup {
	return &dedup{ttl: ttl, max: max, now: now, order: list.New(), keys: make(map[[sha256.Size]byte]*list.Element)}
}

// add records key and reports whether it was new (not seen within ttl).
func (d *dedup) add(key string) bool {
	sum := sha256.Sum256([]byte(key))
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for e := d.order.Front(); e != nil; e = d.order.Front() {
		if en := e.Value.(dedupEntry); now.Before(en.expires) {
			break
		}
		d.remove(e)
	}
	if _, ok := d.keys[sum]; ok {
		return false
	}
	for d.order.Len() >= d.max {
		d.remove(d.order.Front())
	}
	d.keys[sum] = d.order.PushBack(dedupEntry{key: sum, expires: now.Add(d.ttl)})
	return true
}

// forget removes key, so a redelivery of a delivery we refused is accepted.
func (d *dedup) forget(key string) {
	sum := sha256.Sum256([]byte(key))
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.keys[sum]; ok {
		d.remove(e)
	}
}

func (d *dedup) remove(e *list.Element) {
	delete(d.keys, e.Value.(dedupEntry).key)
	d.order.Remove(e)
}
