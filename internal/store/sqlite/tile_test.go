package sqlite

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// TestPartialLeafTile checks that commits store level-0 tiles only once
// full, and that Tile computes the rightmost partial one from the events:
// when no row holds it, when an older version's row is too narrow, and up
// to the first damaged event.
func TestPartialLeafTile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t)})
	pauseIndexer(s) // it would meet the event deleted below
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(300, 31)
	for _, n := range []int{100, 156, 30, 14} {
		w.Append(t, s, t0, evs[:n]...)
		evs = evs[n:]
	}
	log := w.Info.ID
	leaves := func(from, to int) []byte {
		var out, buf []byte
		for _, e := range w.Events[from:to] {
			buf = canon.Append(buf[:0], e)
			h := tlog.RecordHash(buf)
			out = append(out, h[:]...)
		}
		return out
	}
	rows := func(level int, index int64) int {
		var n int
		if err := s.r.QueryRow("SELECT count(*) FROM tiles WHERE k = ?", tileKey(log, level, index)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if rows(0, 0) != 1 {
		t.Errorf("full tile 0/0 is not stored")
	}
	if rows(0, 1) != 0 {
		t.Errorf("partial tile 0/1 (%d of 256 leaves) is stored; commits should leave it to Tile", w.Size()-256)
	}
	check := func(what string, want []byte) {
		t.Helper()
		got, err := s.Tile(ctx, log, 0, 1)
		if err != nil {
			t.Fatalf("Tile(0, 1) %s = %v", what, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Tile(0, 1) %s = %d hashes, want the %d leaf hashes of events 256 to %d", what, len(got)/32, len(want)/32, 255+len(want)/32)
		}
	}
	check("with no row", leaves(256, 300))

	// A row written by a version that stored partial tiles, since outgrown.
	if _, err := s.w.Exec("INSERT INTO tiles (k, data) VALUES (?, ?)", tileKey(log, 0, 1), leaves(256, 270)); err != nil {
		t.Fatal(err)
	}
	check("with a narrower row", leaves(256, 300))

	// Event 290 cannot be decoded: the tile stops before it.
	if _, err := s.w.Exec("DELETE FROM tiles WHERE k = ?", tileKey(log, 0, 1)); err != nil {
		t.Fatal(err)
	}
	err := editEvents(s.w, log, 290, 291, func(evs []*event.Event) []*event.Event { return nil })
	if err != nil {
		t.Fatal(err)
	}
	check("with event 290 deleted", leaves(256, 290))
	// The store still opens read-only, for Verify, without a right edge.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := open(t, path, Options{ReadOnly: true})
	st, err := ro.State(ctx, log)
	if err != nil {
		t.Fatalf("State of the damaged log = %v", err)
	}
	if st.Rightmost != nil {
		t.Errorf("State of the damaged log has rightmost tiles %v, want none", st.Rightmost)
	}
}
