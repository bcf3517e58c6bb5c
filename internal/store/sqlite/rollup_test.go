package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// rawDB opens path with no Trail code in between, for editing it the way
// another version would have left it.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open(DriverName, WriterDSN(path, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func userVersion(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRollupQueryPlans checks that Rollup reads only the rows of its range:
// the bounds are one seek each, and the series and top lists search the
// primary key by log, dimension and hour.
func TestRollupQueryPlans(t *testing.T) {
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	cases := []struct {
		query string
		want  string
	}{
		{"SELECT min(hour) FROM rollup WHERE log = 1 AND dim = 0", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=?)"},
		{"SELECT max(hour) FROM rollup WHERE log = 1 AND dim = 0", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=?)"},
		{"SELECT hour, sum(n_total) FROM rollup WHERE log = 1 AND dim = 0 AND hour >= 5 AND hour < 9 GROUP BY hour", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=? AND hour>? AND hour<?)"},
		{"SELECT value, sum(n_total) AS n FROM rollup WHERE log = 1 AND dim = 2 AND hour >= 5 AND hour < 9 GROUP BY value ORDER BY n DESC, value LIMIT 10", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=? AND hour>? AND hour<?)"},
		// Leaving actions out (NotActions) reads the same rows.
		{"SELECT value, sum(n_total) AS n FROM rollup WHERE log = 1 AND dim = 1 AND hour >= 5 AND hour < 9 AND value NOT IN ('trail.search', 'trail.get') GROUP BY value ORDER BY n DESC, value LIMIT 10", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=? AND hour>? AND hour<?)"},
		{"SELECT hour, sum(n_total) FROM rollup WHERE log = 1 AND dim = 1 AND hour >= 5 AND hour < 9 AND value IN ('trail.search', 'trail.get') GROUP BY hour", "SEARCH rollup USING PRIMARY KEY (log=? AND dim=? AND hour>? AND hour<?"},
	}
	for _, c := range cases {
		plan := explain(t, s.r, c.query, nil)
		if !strings.HasPrefix(plan, c.want) {
			t.Errorf("plan of %s =\n%s\nwant it to start with %s", c.query, plan, c.want)
		}
	}
}

// TestRollupPending checks the rollup's own watermark: counts the indexer
// holds back are not visible until written, counts lost (as in a crash)
// are counted again from the events, and the background indexer writes
// what it holds once it is old enough.
func TestRollupPending(t *testing.T) {
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{Logger: testLogger(t), IndexChunk: 300})
	resume := pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.RollupEvents(3000, 5)
	for i := range 3 {
		w.Append(t, s, t0.Add(time.Duration(i)*time.Second), evs[i*1000:(i+1)*1000]...)
	}
	q := storetest.RollupQueries()[0]

	// Three chunks held back: the rollup shows none of them.
	if err := s.ix.indexLog(ctx, w.Info.ID, 3); err != nil {
		t.Fatal(err)
	}
	if got := s.indexedSize(w.Info.ID); got != 900 {
		t.Fatalf("indexed %d events, want 900", got)
	}
	if r := storetest.CheckRollup(t, s, w, q); r.IndexedTo != 0 {
		t.Fatalf("Rollup.IndexedTo = %d with every count pending, want 0", r.IndexedTo)
	}

	// Lost: the next chunk counts them again from the events.
	s.wmu.Lock()
	clear(s.ix.pending)
	s.wmu.Unlock()
	if err := s.ix.indexLog(ctx, w.Info.ID, 1); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	p := s.ix.pending[w.Info.ID]
	s.wmu.Unlock()
	if p == nil || p.from != 0 || p.to != 1200 {
		t.Fatalf("pending counts after a loss = %+v, want events [0, 1200)", p)
	}
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if r := storetest.CheckRollup(t, s, w, q); r.IndexedTo != 3000 {
		t.Fatalf("Rollup.IndexedTo after WaitIndexed = %d, want 3000", r.IndexedTo)
	}

	// The background indexer writes pending counts on its own.
	resume()
	w.Append(t, s, t0.Add(time.Hour), storetest.RollupEvents(100, 6)...)
	waitRolled(t, s, w, q, time.Minute, "the last append")
	storetest.CheckRollup(t, s, w, q)
}

// waitRolled waits until the counts of s cover every event of w's log,
// for up to d after what happened.
func waitRolled(t *testing.T, s *Store, w *storetest.Writer, q store.RollupQuery, d time.Duration, after string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := s.Rollup(context.Background(), w.Info.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		if r.IndexedTo == w.Size() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Rollup.IndexedTo = %d %v after %s, want %d", r.IndexedTo, d, after, w.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRollupLostAtRestart: counts a process indexed but never wrote (it
// was killed) are counted again by the next process to open the store,
// with nothing new appended.
func TestRollupLostAtRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t), IndexChunk: 300})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.RollupEvents(1000, 5)...)
	if err := s.ix.indexLog(ctx, w.Info.ID, 0); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	clear(s.ix.pending) // as a kill would
	s.wmu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := storetest.RollupQueries()[0]
	waitRolled(t, s, w, q, 30*time.Second, "the store was opened again")
	storetest.CheckRollup(t, s, w, q)
}
