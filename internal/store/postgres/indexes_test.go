package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestIndexes(t *testing.T) {
	storetest.RunIndexes(t, func(t *testing.T) storetest.LogIndexes { return newStore(t) })
}

// TestSearchDamaged checks that a search meeting an event that is missing
// or cannot be decoded fails with a *store.DamagedError at its seq, rather
// than skip it, and that SeqAtTime does too.
func TestSearchDamaged(t *testing.T) {
	t.Run("indexed", func(t *testing.T) { testSearchDamaged(t, true) })
	// Read from the log, past the indexed size, by a Store without an
	// indexer.
	t.Run("not indexed", func(t *testing.T) { testSearchDamaged(t, false) })
}

func testSearchDamaged(t *testing.T, index bool) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	if !index {
		var err error
		if s, err = Open(ctx, url, Options{NoIndexer: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(30, 1)...)
	w.Append(t, s, t0.Add(time.Second), storetest.Events(30, 2)...)
	if index {
		indexed(t, s, w)
	} else if st, err := s.IndexStatus(ctx); err != nil || st.Lag[w.Info.ID] != 60 {
		t.Fatalf("IndexStatus = %+v, %v; want a lag of 60 events", st, err)
	}
	conn := raw(t, url)
	editRecords(t, conn, w.Info.ID, 40, func(recs [][]byte) [][]byte { recs[40-32] = nil; return recs })
	editRecords(t, conn, w.Info.ID, 10, func(recs [][]byte) [][]byte { recs[10] = []byte("{{"); return recs })
	cases := []struct {
		name    string
		q       store.Query
		seq     int64
		problem string
	}{
		{"missing, newest first", store.Query{To: -1}, 40, store.ProblemMissing},
		{"undecodable, oldest first", store.Query{To: -1, Asc: true}, 10, store.ProblemUndecodable},
		{"undecodable, newest first", store.Query{To: 30}, 10, store.ProblemUndecodable},
	}
	for _, c := range cases {
		_, err := s.Search(ctx, w.Info.ID, c.q)
		var de *store.DamagedError
		if !errors.As(err, &de) || de.Seq != c.seq || de.Problem != c.problem {
			t.Errorf("%s: Search = %v, want a *store.DamagedError at seq %d: %s", c.name, err, c.seq, c.problem)
		}
	}
	if got, err := s.Search(ctx, w.Info.ID, store.Query{From: 11, To: 39}); err != nil || len(got) != 29 {
		t.Errorf("Search(seqs 11 to 39) = %d events, %v; want 29", len(got), err)
	}
	// The events of the second batch were received at t0+1s; seq 30 is
	// intact, seq 40 is missing, and neither is on the way.
	if got, err := s.SeqAtTime(ctx, w.Info.ID, t0.Add(time.Second)); err != nil || got != 30 {
		t.Errorf("SeqAtTime(second batch) = %d, %v; want 30", got, err)
	}
	if got, err := s.SeqAtTime(ctx, w.Info.ID, t0); err != nil || got != 0 {
		t.Errorf("SeqAtTime(first batch) = %d, %v; want 0", got, err)
	}
	if got, err := s.SeqAtTime(ctx, w.Info.ID, t0.Add(time.Hour)); err != nil || got != 60 {
		t.Errorf("SeqAtTime(after the log) = %d, %v; want 60", got, err)
	}
	editRecords(t, conn, w.Info.ID, 30, func(recs [][]byte) [][]byte { recs[30-16] = nil; return recs })
	_, err := s.SeqAtTime(ctx, w.Info.ID, t0.Add(time.Second))
	var de *store.DamagedError
	if !errors.As(err, &de) || de.Seq != 30 || de.Problem != store.ProblemMissing {
		t.Errorf("SeqAtTime(second batch) after deleting seq 30 = %v, want a *store.DamagedError at seq 30", err)
	}
	// A bundle cut short: none of its records can be told apart.
	if _, err := conn.Exec(ctx, "UPDATE event_bundles SET data = substring(data FROM 1 FOR length(data) - 3) WHERE log = $1 AND first_seq = 48", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.Query{{From: 41, To: 59}, {From: 41, To: 59, Actor: storetest.Events(30, 2)[29].Actor.ID}} {
		_, err = s.Search(ctx, w.Info.ID, q)
		if !errors.As(err, &de) || de.Seq < 48 || de.Seq > 59 || de.Problem != store.ProblemUndecodable {
			t.Errorf("Search(%+v) with bundle 48 cut short = %v, want a *store.DamagedError in seqs 48 to 59: %s", q, err, store.ProblemUndecodable)
		}
	}
}

// TestSearchLongWords checks free text with words longer than the index
// keeps of them: committing them works, and searches for them, or for
// their starts, find exactly the events that hold them.
func TestSearchLongWords(t *testing.T) {
	s := newStore(t)
	w := storetest.NewWriter(t, s, "audit")
	// 3000 bytes of letters that do not compress, as a btree entry may.
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 1500 {
		b.WriteRune([]rune("éàüøßñçœ")[r.IntN(8)])
	}
	long := b.String()
	random := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		return b.String()
	}
	ab := random(4000)
	var evs []event.Event
	for i, r := range []string{
		long + "a", long + "b", long, long[:998] + "x", long[:996] + "xy", "short " + long[:1200],
		long[:998], ab, "x" + long, "x" + long[:998] + "y",
	} {
		evs = append(evs, event.Event{Action: "doc.read", Actor: event.Actor{ID: fmt.Sprint("u", i)}, Outcome: event.Success, Reason: r})
	}
	evs = append(evs, storetest.Events(50, 3)...)
	w.Append(t, s, t0, evs...)
	// Found in the events past the indexed size, then in the index.
	for _, index := range []bool{false, true} {
		if index {
			indexed(t, s, w)
		}
		checkLongWords(t, s, w, long, ab)
	}
}

func checkLongWords(t *testing.T, s *Store, w *storetest.Writer, long, ab string) {
	t.Helper()
	for _, text := range []string{
		long + "a", long + "b", long, long + "*", long[:998], long[:998] + "*", long[:996] + "*", long[:996] + "x*",
		long[:1200], long[:1200] + "*", long[:998] + "x", "short " + long[:1200] + "*", ab, ab[:2000] + "*",
		long + "c", ab + "q", "x" + long, "x" + long[:998] + "*", "x" + long[:998] + "y", "x" + long[:998] + "z*",
	} {
		storetest.CheckSearch(t, s, w, store.Query{Text: text, To: -1}, true)
	}
}

// TestCommitPastIndexDamage: a log that cannot be indexed, for an event
// damaged before it was, still takes commits once its indexes trail it by
// more than maxIndexLag, and its searches report the damage.
func TestCommitPastIndexDamage(t *testing.T) {
	defer func(n int64) { maxIndexLag = n }(maxIndexLag)
	maxIndexLag = 40
	ctx := context.Background()
	url := pgtest.DB(t)
	open(t, url).Close() // migrates
	noIndexer := func() *Store {
		s, err := Open(ctx, url, Options{NoIndexer: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// Committed by another node, which had them in memory: this one
	// reads them back to index them.
	other := noIndexer()
	w := storetest.NewWriter(t, other, "audit")
	w.Append(t, other, t0, storetest.Events(30, 1)...)
	editRecords(t, raw(t, url), w.Info.ID, 5, func(recs [][]byte) [][]byte { recs[5] = []byte("{{"); return recs })
	s := noIndexer()
	for i := range 3 {
		w.Append(t, s, t0, storetest.Events(30, uint64(2+i))...)
	}
	if st, err := s.IndexStatus(ctx); err != nil || st.Lag[w.Info.ID] != 120 {
		t.Errorf("IndexStatus = %+v, %v; want a lag of 120 events", st, err)
	}
	_, err := s.Search(ctx, w.Info.ID, store.Query{To: -1, Limit: 1000})
	var de *store.DamagedError
	if !errors.As(err, &de) || de.Seq != 5 {
		t.Errorf("Search(all) = %v, want a *store.DamagedError at seq 5", err)
	}

	// An indexer that cannot index the log indexes the others, and
	// says why it fails.
	second := storetest.NewWriter(t, other, "second")
	second.Append(t, other, t0, storetest.Events(10, 9)...)
	ix := open(t, url)
	var st store.IndexStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st, err = ix.IndexStatus(ctx); err == nil && st.Lag[second.Info.ID] == 0 && st.Err != nil {
			break
		}
	}
	if st.Lag[second.Info.ID] != 0 || !errors.As(st.Err, &de) || de.Seq != 5 || st.Lag[w.Info.ID] == 0 {
		t.Errorf("IndexStatus of an indexer = %+v, %v; want the second log indexed, and a *store.DamagedError at seq 5 of the first", st, err)
	}
}

// TestIndexHalves: the fields and the words of a log are indexed by two
// transactions at once, each moving how far its half goes (indexed,
// text_indexed). When one half trails the other (its transaction failed,
// say), searches through either are exact, and indexing brings the
// trailing half up without writing the other again; the words' half
// moves its size only from where it found it.
func TestIndexHalves(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	open(t, url).Close() // migrates
	s, err := Open(ctx, url, Options{NoIndexer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(300, 1)...)
	id := w.Info.ID
	if err := s.WaitIndexed(ctx, id); err != nil {
		t.Fatal(err)
	}
	conn := raw(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	count := func(sql string) (n int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, sql, id).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	sizes := func() string {
		return fmt.Sprintf("indexed %d, text_indexed %d", count("SELECT size FROM indexed WHERE log = $1"), count("SELECT size FROM text_indexed WHERE log = $1"))
	}
	if got := sizes(); got != "indexed 300, text_indexed 300" {
		t.Fatalf("after indexing: %s, want both 300", got)
	}
	textRows := count("SELECT count(*) FROM bundle_text WHERE log = $1")
	last := w.Events[290]
	queries := []store.Query{
		{Text: derive.Words(last)[0], To: -1},
		{Actor: last.Actor.ID, To: -1},
		{Actions: []string{last.Action}, Text: derive.Words(last)[1], To: -1},
	}
	for _, c := range []struct {
		name  string
		sqls  []string
		trail int64
	}{
		// The words behind the fields, as when the words' transaction
		// failed after the fields' committed (the counts, which go
		// with the words, are left as they are here).
		{"words behind", []string{
			"DELETE FROM bundle_text WHERE log = $1 AND first_seq >= 256",
			"UPDATE text_indexed SET size = 256 WHERE log = $1",
		}, 44},
		// The fields behind the words and the counts behind both, as
		// in a database migrated from schema 5.
		{"fields behind", []string{
			"DELETE FROM event_fields WHERE log = $1 AND seq >= 100",
			"DELETE FROM event_targets WHERE log = $1 AND seq >= 100",
			"UPDATE indexed SET size = 100 WHERE log = $1",
			"DELETE FROM counts WHERE log = $1",
			"UPDATE counted SET size = 0, rolled = 0 WHERE log = $1",
		}, 300},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, sql := range c.sqls {
				exec(sql, id)
			}
			if st, err := s.IndexStatus(ctx); err != nil || st.Lag[id] != c.trail {
				t.Errorf("IndexStatus = %+v, %v; want a lag of %d", st, err, c.trail)
			}
			for _, q := range queries {
				storetest.CheckSearch(t, s, w, q, false)
			}
			if err := s.WaitIndexed(ctx, id); err != nil {
				t.Fatal(err)
			}
			if got := sizes(); got != "indexed 300, text_indexed 300" {
				t.Errorf("after indexing again: %s, want both 300", got)
			}
			if n := count("SELECT count(*) FROM event_fields WHERE log = $1"); n != 300 {
				t.Errorf("event_fields holds %d rows, want 300", n)
			}
			if c.name == "fields behind" {
				if n := count("SELECT count(*) FROM bundle_text WHERE log = $1"); n != textRows {
					t.Errorf("bundle_text holds %d rows, want the %d it held: the words were not behind", n, textRows)
				}
			}
			storetest.CheckPostings(t, s, w, 0, 300)
			storetest.CheckWords(t, s, w, 300)
			if to := storetest.CheckCounts(t, s, w); to != (store.CountsTo{Indexed: 300, Rolled: 300}) {
				t.Errorf("Counts go to %+v, want 300 and 300", to)
			}
			for _, q := range queries {
				storetest.CheckSearch(t, s, w, q, false)
			}
		})
	}

	// The words and counts commit only with the fields: the counts
	// never pass what the indexes cover (store.CountsTo).
	t.Run("fields fail", func(t *testing.T) {
		w2 := storetest.NewWriter(t, s, "second")
		w2.Append(t, s, t0, storetest.Events(50, 7)...)
		exec(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`)
		exec(`CREATE TRIGGER refuse BEFORE INSERT ON event_fields FOR EACH ROW EXECUTE FUNCTION refuse()`)
		if err := s.WaitIndexed(ctx, w2.Info.ID); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("WaitIndexed with the fields refused = %v, want the refusal", err)
		}
		var words, counts int64
		err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM bundle_text WHERE log = $1), (SELECT count(*) FROM counts WHERE log = $1)",
			w2.Info.ID).Scan(&words, &counts)
		if err != nil || words != 0 || counts != 0 {
			t.Errorf("with the fields refused: %d bundle_text rows, %d counts, %v; want none", words, counts, err)
		}
		if to := storetest.CheckCounts(t, s, w2); to != (store.CountsTo{}) {
			t.Errorf("Counts go to %+v with the fields refused, want 0", to)
		}
		exec("DROP TRIGGER refuse ON event_fields")
		if err := s.WaitIndexed(ctx, w2.Info.ID); err != nil {
			t.Fatal(err)
		}
		storetest.CheckPostings(t, s, w2, 0, 50)
		storetest.CheckWords(t, s, w2, 50)
		if to := storetest.CheckCounts(t, s, w2); to != (store.CountsTo{Indexed: 50, Rolled: 50}) {
			t.Errorf("Counts go to %+v, want 50 and 50", to)
		}
	})

	t.Run("words moved meanwhile", func(t *testing.T) {
		rows := count("SELECT count(*) FROM bundle_text WHERE log = $1")
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		var r indexRows
		r.addText(id, w.Events[299])
		r.addActionCount(id, w.Events[299])
		// As an indexer that read text_indexed at 299 would: it is at 300.
		err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error { return writeTextTx(ctx, tx, id, &r, 299, 300, 300, 300) })
		if !errors.Is(err, errTextMoved) {
			t.Errorf("writeText from 299 = %v, want errTextMoved", err)
		}
		if n := count("SELECT count(*) FROM bundle_text WHERE log = $1"); n != rows {
			t.Errorf("bundle_text holds %d rows after the refused write, want %d", n, rows)
		}
		storetest.CheckWords(t, s, w, 300)
		storetest.CheckCounts(t, s, w)
	})
}

// TestIndexOneConnection: a Store whose pool holds one connection
// (pool_max_conns=1) indexes both halves in one transaction rather than
// wait for a second connection.
func TestIndexOneConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.DB(t)
	open(t, url).Close() // migrates
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := Open(ctx, url+sep+"pool_max_conns=1", Options{NoIndexer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if n := s.pool.Config().MaxConns; n != 1 {
		t.Fatalf("pool of %d connections, want 1", n)
	}
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(100, 1)...)
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("WaitIndexed = %v", err)
	}
	if st, err := s.IndexStatus(ctx); err != nil || st.Lag[w.Info.ID] != 0 {
		t.Errorf("IndexStatus = %+v, %v; want no lag", st, err)
	}
	storetest.CheckPostings(t, s, w, 0, 100)
	storetest.CheckWords(t, s, w, 100)
	storetest.CheckCounts(t, s, w)
}

// TestSearchIndexPastEnd: index progress raised past the log's end, in
// the database, would hide every event appended after it from searches
// through the indexes; a search fails as damaged instead.
func TestSearchIndexPastEnd(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(10, 1)...)
	indexed(t, s, w)
	for _, table := range []string{"indexed", "text_indexed"} {
		conn := raw(t, url)
		if _, err := conn.Exec(ctx, "UPDATE "+table+" SET size = 500 WHERE log = $1", w.Info.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.Search(ctx, w.Info.ID, store.Query{To: -1})
		var de *store.DamagedError
		if !errors.As(err, &de) || !strings.Contains(de.Problem, "past the log's 10") {
			t.Errorf("%s at 500: Search = %v, want a *store.DamagedError saying the indexes go past the log's end", table, err)
		}
		if _, err := conn.Exec(ctx, "UPDATE "+table+" SET size = 10 WHERE log = $1", w.Info.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Search(ctx, w.Info.ID, store.Query{To: -1}); err != nil || len(got) != 10 {
		t.Errorf("Search once restored = %d events, %v; want 10", len(got), err)
	}
}
