package sqlite

import (
	"context"
	"database/sql"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// actionCounts counts evs by action.
func actionCounts(evs []*event.Event) map[string]int64 {
	n := map[string]int64{}
	for _, e := range evs {
		n[e.Action]++
	}
	return n
}

// tableCounts reads log's rows of the actions table.
func tableCounts(t *testing.T, db *sql.DB, log int64) map[string]int64 {
	t.Helper()
	rows, err := db.Query("SELECT action, count FROM actions WHERE log = ?", log)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := map[string]int64{}
	for rows.Next() {
		var a string
		var c int64
		if err := rows.Scan(&a, &c); err != nil {
			t.Fatal(err)
		}
		n[a] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkActionCounts checks that Actions counts every event of w and that
// the table counts exactly its first indexed events, and lists every
// action.
func checkActionCounts(t *testing.T, s *Store, w *storetest.Writer, indexed int) {
	t.Helper()
	got, err := s.Actions(context.Background(), w.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := actionCounts(w.Events)
	gotMap := map[string]int64{}
	for _, a := range got {
		gotMap[a.Value] = a.Count
	}
	if !maps.Equal(gotMap, want) {
		t.Errorf("Actions with %d of %d events indexed = %v, want %v", indexed, len(w.Events), gotMap, want)
	}
	table := tableCounts(t, s.r, w.Info.ID)
	if keys := slices.Sorted(maps.Keys(table)); !slices.Equal(keys, slices.Sorted(maps.Keys(want))) {
		t.Errorf("actions table lists %v, want every action used: %v", keys, slices.Sorted(maps.Keys(want)))
	}
	wantTable := actionCounts(w.Events[:indexed])
	for a, n := range table {
		if n != wantTable[a] {
			t.Errorf("actions table counts %d events of %q, want the %d among the %d indexed", n, a, wantTable[a], indexed)
		}
	}
}

// TestActionCounts checks that commits add new actions uncounted, that the
// indexer counts them as it goes, and that Actions counts every committed
// event meanwhile, from the events this process committed or, after a
// restart, from the database.
func TestActionCounts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t)})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(3000, 21)
	off := 0
	for _, n := range []int{1, 2, 497, 1000, 1500} {
		w.Append(t, s, t0, evs[off:off+n]...)
		off += n
		checkActionCounts(t, s, w, 0)
	}
	indexTo(t, s, w.Info.ID, 1200)
	checkActionCounts(t, s, w, 1200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ro := open(t, path, Options{ReadOnly: true})
	checkActionCounts(t, ro, w, 1200)
	s = open(t, path, Options{Logger: testLogger(t), IndexDelay: time.Hour})
	checkActionCounts(t, s, w, 1200)
	// A restarted store knows no actions yet: a commit using only old
	// ones must not add them twice or count them.
	w.Append(t, s, t0, evs[0], evs[1])
	checkActionCounts(t, s, w, 1200)
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	checkActionCounts(t, s, w, len(w.Events))
}
