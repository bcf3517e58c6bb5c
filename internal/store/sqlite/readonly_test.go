package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// A read-only store reads everything, including events the indexer has not
// reached, and changes nothing on disk: verifying or searching a log must
// not write to the evidence.
func TestReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	var evs []event.Event
	for i := range 50 {
		evs = append(evs, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login", Reason: "pending", Targets: []event.Target{{Type: "user", ID: string(rune('a' + i%26))}}})
	}
	w.Append(t, s, t0, evs...)
	indexTo(t, s, w.Info.ID, 20) // 30 events left for the indexer
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(path)

	ro, err := Open(ctx, path, Options{ReadOnly: true, IndexDelay: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ro.Search(ctx, w.Info.ID, store.Query{Actor: "alice", Text: "pending", To: -1, Limit: 100})
	if err != nil || len(got) != 50 {
		t.Fatalf("read-only Search = %d events, %v; want 50", len(got), err)
	}
	if err := ro.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("read-only WaitIndexed = %v", err)
	}
	b := w.Batch(t, t0, evs[0])
	if err := ro.Commit(ctx, []store.Batch{b}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Commit = %v, want ErrReadOnly", err)
	}
	if _, err := ro.CreateLog(ctx, "other", "o", "k"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only CreateLog = %v, want ErrReadOnly", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	unchanged(t, path, before)
}

// snapshot returns the bytes of the database at path and of its WAL.
func snapshot(path string) map[string][]byte {
	m := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(path + suffix); err == nil {
			m[suffix] = b
		}
	}
	return m
}

// unchanged fails t unless the database at path and its WAL hold what
// they held in before.
func unchanged(t *testing.T, path string, before map[string][]byte) {
	t.Helper()
	after := snapshot(path)
	for _, suffix := range []string{"", "-wal"} {
		if !bytes.Equal(before[suffix], after[suffix]) {
			t.Errorf("trail.db%s changed while open read-only", suffix)
		}
	}
}

// TestReadOnlyOlderSchema: a read-only store reads a database of an older
// schema that it can read as it is (readableFrom: schema 2 lacks only an
// index) without upgrading or otherwise writing to it, and refuses one it
// cannot (schema 1 lacks the table of cosigned checkpoints) with
// ErrNeedsUpgrade, naming the command that upgrades it.
func TestReadOnlyOlderSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{})
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login", Reason: "pending"}, event.Event{Actor: event.Actor{ID: "bob"}, Action: "user.logout"})
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	exec(t, db,
		fmt.Sprintf("INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at) VALUES ('k1', 'a', %d, x'01', '[]', 10)", w.Info.ID),
		"DROP INDEX idempotency_created_at", // as schema 2 had it
		"PRAGMA user_version = 2",
		"PRAGMA wal_checkpoint(TRUNCATE)")
	db.Close()
	before := snapshot(path)

	ro, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of schema 2 = %v, want it read as it is", err)
	}
	got, err := ro.Search(ctx, w.Info.ID, store.Query{Actor: "alice", Text: "pending", To: -1, Limit: 10})
	if err != nil || len(got) != 1 || got[0].Actor.ID != "alice" {
		t.Errorf("read-only Search of schema 2 = %v, %v; want alice's event", got, err)
	}
	rs, err := ro.IdempotencyOf(ctx, w.Info.ID, time.Unix(0, 5), nil, 10)
	if err != nil || len(rs) != 1 || rs[0].Scope+rs[0].Key != "k1a" {
		t.Errorf("read-only IdempotencyOf of schema 2 = %+v, %v; want k1/a", rs, err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	unchanged(t, path, before)
	db = rawDB(t, path)
	if v := userVersion(t, db); v != 2 {
		t.Errorf("user_version after a read-only open = %d, want 2", v)
	}

	exec(t, db, "DROP TABLE witnessed", "PRAGMA user_version = 1", "PRAGMA wal_checkpoint(TRUNCATE)")
	db.Close()
	before = snapshot(path)
	if ro, err := Open(ctx, path, Options{ReadOnly: true}); !errors.Is(err, ErrNeedsUpgrade) || !strings.Contains(err.Error(), "trail migrate") {
		if ro != nil {
			ro.Close()
		}
		t.Errorf("read-only Open of schema 1 = %v, want ErrNeedsUpgrade naming trail migrate", err)
	}
	unchanged(t, path, before)
}

// TestSearchIndexPastEnd: index progress raised past the log's end in
// the database would hide every event appended after it from searches
// through the indexes; a search fails as damaged instead.
func TestSearchIndexPastEnd(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{})
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(10, 1)...)
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	exec(t, db, fmt.Sprintf("UPDATE logs SET indexed_size = 500 WHERE id = %d", w.Info.ID))
	db.Close()
	ro := open(t, path, Options{ReadOnly: true})
	_, err := ro.Search(ctx, w.Info.ID, store.Query{To: -1})
	var de *store.DamagedError
	if !errors.As(err, &de) || !strings.Contains(de.Problem, "past the log's 10") {
		t.Errorf("Search with indexed_size 500 = %v, want a *store.DamagedError saying the indexes go past the log's end", err)
	}
}
