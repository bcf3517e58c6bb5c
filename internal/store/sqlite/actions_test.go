package sqlite

import (
	"context"
	"database/sql"
	"errors"
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

// toSchema5 takes a closed database back to schema version 5, whose action
// counts also counted the events the indexer had not reached.
func toSchema5(t *testing.T, path string) {
	t.Helper()
	s := open(t, path, Options{Logger: testLogger(t), IndexDelay: time.Hour})
	pauseIndexer(s)
	type lag struct{ log, indexed, size int64 }
	var lags []lag
	rows, err := s.r.Query("SELECT id, indexed_size, size FROM logs WHERE indexed_size < size")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l lag
		if err := rows.Scan(&l.log, &l.indexed, &l.size); err != nil {
			t.Fatal(err)
		}
		lags = append(lags, l)
	}
	rows.Close()
	add := map[int64]map[string]int64{}
	for _, l := range lags {
		add[l.log] = map[string]int64{}
		for e, err := range s.Scan(context.Background(), l.log, l.indexed, l.size) {
			if err != nil {
				t.Fatal(err)
			}
			add[l.log][e.Action]++
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	defer db.Close()
	for log, counts := range add {
		for a, n := range counts {
			if _, err := db.Exec("UPDATE actions SET count = count + ? WHERE log = ? AND action = ?", n, log, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec(t, db, "PRAGMA user_version = 5")
}

// TestUpgradeTo6 checks that a schema 5 database, whose action counts
// include events the indexer has not reached, upgrades to counts the
// indexer then completes without counting any event twice.
func TestUpgradeTo6(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t)})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	other := storetest.NewWriter(t, s, "other")
	evs := storetest.Events(2500, 22)
	w.Append(t, s, t0, evs[:1000]...)
	other.Append(t, s, t0, evs[1000:1300]...)
	w.Append(t, s, t0, evs[1300:]...)
	indexTo(t, s, w.Info.ID, 900)
	indexTo(t, s, other.Info.ID, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	toSchema5(t, path)
	db := rawDB(t, path)
	if got, want := tableCounts(t, db, w.Info.ID), actionCounts(w.Events); !maps.Equal(got, want) {
		t.Fatalf("schema 5 counts = %v, want every event counted: %v", got, want)
	}
	db.Close()

	if _, err := Open(ctx, path, Options{ReadOnly: true}); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("read-only Open of schema 5 = %v, want ErrNeedsUpgrade", err)
	}
	s = open(t, path, Options{Logger: testLogger(t), IndexDelay: time.Hour})
	if v := userVersion(t, s.r); v != schemaVersion {
		t.Errorf("user_version after the upgrade = %d, want %d", v, schemaVersion)
	}
	checkActionCounts(t, s, w, 900)
	checkActionCounts(t, s, other, 300)
	for _, l := range []*storetest.Writer{w, other} {
		if err := s.WaitIndexed(ctx, l.Info.ID); err != nil {
			t.Fatal(err)
		}
		checkActionCounts(t, s, l, len(l.Events))
	}
}
