package sqlitetest

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// TestCodec holds this package's reading and writing of event bundles to
// the store's: every bundle the store wrote decodes here into the events
// committed, and packs again into the same bytes.
func TestCodec(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s, err := sqlite.Create(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := storetest.NewWriter(t, s, "audit")
	recv := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	w.Append(t, s, recv, event.Event{
		Actor: event.Actor{ID: "alice", Type: event.ActorUser, Name: "Alice", Email: "alice@example.com", Role: "owner"}, Action: "document.update",
		Targets: []event.Target{{Type: "document", ID: "doc-1", Name: "Plan"}, {Type: "org", ID: "org-1"}}, Outcome: event.Failure,
		Reason: "conflicting edit", Source: event.Source{IP: "2001:db8::a", UserAgent: "curl/8.0"}, RequestID: "req-123", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Changes:  &event.Changes{Before: json.RawMessage(`{"a":1}`), After: json.RawMessage(`{"a":2}`)},
		Metadata: json.RawMessage(`{"k":"v"}`), Time: recv.Add(-time.Hour),
	}, event.Event{Actor: event.Actor{ID: "bob"}, Action: "x", Outcome: event.Denied, Changes: &event.Changes{After: json.RawMessage(`[]`)}})
	w.Append(t, s, recv.Add(time.Second), storetest.Events(700, 3)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tp, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	rows, err := tp.db.Query("SELECT k, data FROM events ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var k int64
		var data []byte
		if err := rows.Scan(&k, &data); err != nil {
			t.Fatal(err)
		}
		first := k & (1<<seqBits - 1)
		if k>>seqBits != w.Info.ID || first != n {
			t.Fatalf("bundle at key %#x: want the bundle of log %d from seq %d", k, w.Info.ID, n)
		}
		evs, err := decodeBundle("audit", first, data)
		if err != nil {
			t.Fatalf("decodeBundle(bundle of seq %d) = %v", first, err)
		}
		for _, e := range evs {
			if got, want := canon.Append(nil, e), canon.Append(nil, w.Events[e.Seq]); !bytes.Equal(got, want) || e.ID != w.Events[e.Seq].ID {
				t.Fatalf("seq %d decodes as %s (%s), want %s (%s)", e.Seq, got, e.ID, want, w.Events[e.Seq].ID)
			}
		}
		if _, again := packBundles(evs); len(again) != 1 || !bytes.Equal(again[0], data) {
			t.Fatalf("the events of the bundle of seq %d pack into %d bundles, not the same bytes", first, len(again))
		}
		n += int64(len(evs))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != w.Size() {
		t.Errorf("the bundles hold %d events, want %d", n, w.Size())
	}
}
