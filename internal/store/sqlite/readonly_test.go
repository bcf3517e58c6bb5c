package sqlite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err == nil {
				m[suffix] = b
			}
		}
		return m
	}
	before := snapshot()

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
	after := snapshot()
	for suffix, b := range before {
		if !bytes.Equal(b, after[suffix]) {
			t.Errorf("trail.db%s changed while open read-only", suffix)
		}
	}
}
