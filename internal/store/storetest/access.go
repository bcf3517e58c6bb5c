package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// LogAccess is what RunAccess tests: a store's keys and idempotency
// records, for the logs it holds.
type LogAccess interface {
	store.Log
	store.Access
}

// RunAccess runs the conformance tests of store.Access, in parallel. open
// must return a new, empty store on each call and close it when the test
// ends (t.Cleanup); the tests create logs and commit through its Log.
func RunAccess(t *testing.T, open func(t *testing.T) LogAccess) {
	tests := []struct {
		name string
		test func(*testing.T, LogAccess)
	}{
		{"Keys", testKeys},
		{"Idempotency", testIdempotency},
		{"IdempotencyCopy", testIdempotencyCopy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, open(t))
		})
	}
}

func checkKey(t *testing.T, call string, got, want store.Key) {
	t.Helper()
	if got.ID != want.ID || got.Log != want.Log || got.Name != want.Name || !slices.Equal(got.Scopes, want.Scopes) ||
		!bytes.Equal(got.Hash, want.Hash) || !got.CreatedAt.Equal(want.CreatedAt) || !got.RevokedAt.Equal(want.RevokedAt) {
		t.Errorf("%s = %+v, want %+v", call, got, want)
	}
}

func keyIDs(ks []store.Key) []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ID
	}
	return ids
}

func testKeys(t *testing.T, s LogAccess) {
	ctx := context.Background()
	a, b := NewWriter(t, s, "alpha"), NewWriter(t, s, "beta")
	if ks, err := s.Keys(ctx, 0); err != nil || len(ks) != 0 {
		t.Fatalf("Keys(0) of a new store = %v, %v; want none", ks, err)
	}
	hash := func(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }
	keys := []store.Key{
		{ID: "k1", Log: a.Info.ID, Name: "ingest", Scopes: []string{"append"}, Hash: hash("s1"), CreatedAt: epoch},
		{ID: "k2", Log: b.Info.ID, Name: "", Scopes: []string{"read", "append"}, Hash: hash("s2"), CreatedAt: epoch.Add(time.Second)},
		{ID: "k3", Log: a.Info.ID, Name: "auditor ü", Scopes: []string{"admin"}, Hash: hash("s3"), CreatedAt: epoch.Add(2 * time.Second)},
	}
	for _, k := range keys {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey(%q) = %v", k.ID, err)
		}
	}
	for _, k := range keys {
		got, err := s.Key(ctx, k.ID)
		if err != nil {
			t.Fatalf("Key(%q) = %v", k.ID, err)
		}
		checkKey(t, "Key("+k.ID+")", got, k)
	}

	dup := keys[0]
	dup.Log, dup.Hash = b.Info.ID, hash("other")
	if err := s.CreateKey(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateKey(%q) again = %v, want an error wrapping store.ErrExists", dup.ID, err)
	}
	if got, err := s.Key(ctx, "k1"); err != nil || !bytes.Equal(got.Hash, keys[0].Hash) || got.Log != keys[0].Log {
		t.Errorf("Key(k1) after a failed CreateKey = %+v, %v; want it unchanged", got, err)
	}
	orphan := store.Key{ID: "k9", Log: a.Info.ID + b.Info.ID + 100, Scopes: []string{"read"}, Hash: hash("s9"), CreatedAt: epoch}
	err := s.CreateKey(ctx, orphan)
	isNotFound(t, "CreateKey for a missing log", err)
	_, err = s.Key(ctx, "k9")
	isNotFound(t, `Key("k9")`, err)

	for _, tc := range []struct {
		log  int64
		want []string
	}{
		{0, []string{"k1", "k2", "k3"}},
		{a.Info.ID, []string{"k1", "k3"}},
		{b.Info.ID, []string{"k2"}},
	} {
		ks, err := s.Keys(ctx, tc.log)
		if err != nil {
			t.Fatalf("Keys(%d) = %v", tc.log, err)
		}
		if got := keyIDs(ks); !slices.Equal(got, tc.want) {
			t.Errorf("Keys(%d) = %q, want %q", tc.log, got, tc.want)
		}
	}

	revoked := epoch.Add(time.Hour + 7)
	if err := s.RevokeKey(ctx, "k1", revoked); err != nil {
		t.Fatalf("RevokeKey(k1) = %v", err)
	}
	if err := s.RevokeKey(ctx, "k1", revoked.Add(time.Hour)); err != nil {
		t.Errorf("RevokeKey(k1) again = %v, want nil", err)
	}
	want := keys[0]
	want.RevokedAt = revoked
	got, err := s.Key(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	checkKey(t, "Key(k1) after RevokeKey", got, want)
	if got, _ := s.Key(ctx, "k3"); !got.RevokedAt.IsZero() {
		t.Errorf("Key(k3).RevokedAt = %v after revoking k1, want zero", got.RevokedAt)
	}
	err = s.RevokeKey(ctx, "nope", revoked)
	isNotFound(t, `RevokeKey("nope")`, err)
	_, err = s.Key(ctx, "nope")
	isNotFound(t, `Key("nope")`, err)

	// A key created revoked (copied so from another store) is revoked
	// from the start, at its time.
	copied := store.Key{ID: "k4", Log: b.Info.ID, Name: "copied", Scopes: []string{"read"}, Hash: hash("s4"), CreatedAt: epoch, RevokedAt: epoch.Add(time.Minute + 3)}
	if err := s.CreateKey(ctx, copied); err != nil {
		t.Fatalf("CreateKey(revoked k4) = %v", err)
	}
	got, err = s.Key(ctx, "k4")
	if err != nil {
		t.Fatal(err)
	}
	checkKey(t, "Key(k4) created revoked", got, copied)
}

// testIdempotency: records commit atomically with their batch, are found
// by scope and key within the window asked for, and expire.
func testIdempotency(t *testing.T, s LogAccess) {
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
	// A request under the same key, committed by another server since
	// this one looked, is not replaced: the commit fails and stores
	// nothing. An expired one is.
	again := w.Batch(t, epoch, ev)
	dup := rec
	dup.Fingerprint, dup.Replaces = []byte{9}, epoch
	again.Idempotency = []store.Idempotency{dup}
	if err := s.Commit(ctx, []store.Batch{again}); !errors.Is(err, store.ErrIdempotencyTaken) {
		t.Fatalf("Commit of a record whose key a record of its window holds = %v, want ErrIdempotencyTaken", err)
	}
	if size, err := s.Size(ctx, w.Info.ID); err != nil || size != 1 {
		t.Fatalf("log size after the refused commit = %d, %v; want 1", size, err)
	}
	if got, err := s.Idempotency(ctx, "key1", "k", epoch.Add(-time.Hour)); err != nil || !bytes.Equal(got.Fingerprint, rec.Fingerprint) {
		t.Fatalf("the first record after the refused commit = %+v, %v", got, err)
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

// testIdempotencyCopy: IdempotencyOf pages through one log's records in
// order of creation, scope and key, from a time on; ImportIdempotency
// stores records as given, and keeps a record already stored under the
// same scope and key.
func testIdempotencyCopy(t *testing.T, s LogAccess) {
	ctx := context.Background()
	a, b := NewWriter(t, s, "a"), NewWriter(t, s, "b")
	ev := event.Event{Actor: event.Actor{ID: "ana"}, Action: "user.delete"}
	rec := func(scope, key string, at time.Duration) store.Idempotency {
		return store.Idempotency{Scope: scope, Key: key, Fingerprint: []byte(scope + key), Receipts: []byte(`[{"id":"` + key + `","seq":0}]`), CreatedAt: epoch.Add(at)}
	}
	commit := func(w *Writer, rs ...store.Idempotency) {
		t.Helper()
		bt := w.Batch(t, epoch, ev)
		bt.Idempotency = rs
		if err := s.Commit(ctx, []store.Batch{bt}); err != nil {
			t.Fatal(err)
		}
		w.Committed(t, bt)
	}
	// Created out of order, in two commits, with one time shared.
	commit(a, rec("s2", "k", 2*time.Second), rec("s1", "old", 0))
	commit(a, rec("s2", "j", time.Second), rec("s1", "k", time.Second))
	commit(b, rec("s1", "b", time.Second))

	keys := func(rs []store.Idempotency) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Scope+"/"+r.Key)
		}
		return out
	}
	page, err := s.IdempotencyOf(ctx, a.Info.ID, epoch.Add(time.Second), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(page), []string{"s1/k", "s2/j"}; !slices.Equal(got, want) {
		t.Fatalf("IdempotencyOf(a, since 1s, first 2) = %v, want %v", got, want)
	}
	if r := page[0]; !bytes.Equal(r.Fingerprint, []byte("s1k")) || !bytes.Equal(r.Receipts, []byte(`[{"id":"k","seq":0}]`)) || !r.CreatedAt.Equal(epoch.Add(time.Second)) {
		t.Errorf("IdempotencyOf(a)[0] = %+v, want the record as committed", r)
	}
	page, err = s.IdempotencyOf(ctx, a.Info.ID, epoch.Add(time.Second), &page[1], 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(page), []string{"s2/k"}; !slices.Equal(got, want) {
		t.Fatalf("IdempotencyOf(a, since 1s, after s2/j) = %v, want %v", got, want)
	}
	page, err = s.IdempotencyOf(ctx, a.Info.ID, epoch, nil, 10)
	if err != nil || len(page) != 4 {
		t.Fatalf("IdempotencyOf(a, since 0) = %v, %v; want its 4 records", keys(page), err)
	}

	// Into b: one new, one under a key b holds already.
	in := []store.Idempotency{rec("s3", "new", 3*time.Second), rec("s1", "b", 5*time.Second)}
	in[1].Fingerprint = []byte("other")
	if n, err := s.ImportIdempotency(ctx, b.Info.ID, in); err != nil || n != 1 {
		t.Fatalf("ImportIdempotency(one new record, one taken) = %d, %v; want 1 stored", n, err)
	}
	got, err := s.Idempotency(ctx, "s3", "new", epoch)
	if err != nil || !bytes.Equal(got.Fingerprint, in[0].Fingerprint) || !bytes.Equal(got.Receipts, in[0].Receipts) || !got.CreatedAt.Equal(in[0].CreatedAt) {
		t.Errorf("Idempotency(s3, new) after ImportIdempotency = %+v, %v; want %+v", got, err, in[0])
	}
	got, err = s.Idempotency(ctx, "s1", "b", epoch)
	if err != nil || !bytes.Equal(got.Fingerprint, []byte("s1b")) || !got.CreatedAt.Equal(epoch.Add(time.Second)) {
		t.Errorf("Idempotency(s1, b) after importing another record under it = %+v, %v; want the first one kept", got, err)
	}
	if page, err := s.IdempotencyOf(ctx, b.Info.ID, epoch, nil, 10); err != nil || !slices.Equal(keys(page), []string{"s1/b", "s3/new"}) {
		t.Errorf("IdempotencyOf(b) = %v, %v; want [s1/b s3/new]", keys(page), err)
	}
	if _, err := s.ImportIdempotency(ctx, 1<<40, in); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ImportIdempotency(no such log) = %v, want ErrNotFound", err)
	}
}
