package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// testIdempotency: records commit atomically with their batch, are found
// by scope and key within the window asked for, and expire.
func testIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := NewWriter(t, s, "idem")
	ev := event.Event{Actor: event.Actor{ID: "ana"}, Action: "user.delete"}
	rec := store.Idempotency{Scope: "key1", Key: "k", Fingerprint: []byte{1, 2, 3}, Receipts: []byte(`[{"id":"x","seq":0}]`), CreatedAt: epoch}

	// A batch that fails to commit leaves no record.
	bad := w.BatchAt(t, 5, epoch, ev)
	bad.Idempotency = []store.Idempotency{rec}
	if err := s.Commit(ctx, []store.Batch{bad}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit(batch at seq 5 of an empty log) = %v, want ErrConflict", err)
	}
	if _, err := s.Idempotency(ctx, "key1", "k", epoch.Add(-time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Idempotency after a failed commit = %v, want ErrNotFound", err)
	}

	b := w.Batch(t, epoch, ev)
	b.Idempotency = []store.Idempotency{rec}
	if err := s.Commit(ctx, []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	w.Committed(t, b)
	got, err := s.Idempotency(ctx, "key1", "k", epoch.Add(-time.Hour))
	if err != nil {
		t.Fatalf("Idempotency = %v", err)
	}
	if !bytes.Equal(got.Fingerprint, rec.Fingerprint) || !bytes.Equal(got.Receipts, rec.Receipts) || !got.CreatedAt.Equal(epoch) {
		t.Errorf("Idempotency = %+v, want %+v", got, rec)
	}
	for _, q := range []struct{ scope, key string }{{"key2", "k"}, {"key1", "K"}} {
		if _, err := s.Idempotency(ctx, q.scope, q.key, epoch.Add(-time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Idempotency(%q, %q) = %v, want ErrNotFound", q.scope, q.key, err)
		}
	}
	// Outside the window asked for, or expired, it is gone.
	if _, err := s.Idempotency(ctx, "key1", "k", epoch.Add(time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Idempotency since after the record = %v, want ErrNotFound", err)
	}
	if err := s.ExpireIdempotency(ctx, epoch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Idempotency(ctx, "key1", "k", epoch.Add(-time.Hour)); err != nil {
		t.Errorf("record expired by a cutoff equal to its creation: %v", err)
	}
	if err := s.ExpireIdempotency(ctx, epoch.Add(time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Idempotency(ctx, "key1", "k", epoch.Add(-time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Idempotency after expiry = %v, want ErrNotFound", err)
	}
}
