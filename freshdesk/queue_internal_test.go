package freshdesk

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestMemoryResultsBounded: the in-memory result store keeps at most Max
// results, dropping the oldest, and forgets each after TTL.
func TestMemoryResultsBounded(t *testing.T) {
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	r := &MemoryResults{Max: 3, TTL: time.Minute, now: func() time.Time { return now }}
	ctx := context.Background()
	for i := range 5 {
		r.Put(ctx, fmt.Sprint(i), []byte{byte(i)})
	}
	r.Put(ctx, "4", []byte{44}) // replacing keeps one entry
	for i, want := range []bool{false, false, true, true, true} {
		v, ok, err := r.Get(ctx, fmt.Sprint(i))
		if err != nil || ok != want {
			t.Errorf("Get(%d) after 5 Puts into 3 places = %v, %v, %v; want ok %v", i, v, ok, err, want)
		}
	}
	if v, _, _ := r.Get(ctx, "4"); len(v) != 1 || v[0] != 44 {
		t.Errorf("Get(4) = %v; want the replaced value [44]", v)
	}
	if len(r.m) != 3 {
		t.Errorf("%d results held; want 3", len(r.m))
	}
	now = now.Add(time.Minute)
	if v, ok, _ := r.Get(ctx, "4"); ok {
		t.Errorf("Get(4) after TTL = %v; want expired", v)
	}
}

// TestMemoryResultsManyReplacements: replacing the same few results many
// times does not grow the store.
func TestMemoryResultsManyReplacements(t *testing.T) {
	r := &MemoryResults{Max: 4}
	for i := range 10000 {
		r.Put(context.Background(), fmt.Sprint(i%4), []byte("x"))
	}
	if len(r.order) > 8 || len(r.m) != 4 {
		t.Errorf("after 10000 replacements of 4 results: %d ids in order, %d results; want at most 8 and 4", len(r.order), len(r.m))
	}
}
