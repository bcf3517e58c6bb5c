package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestDerivedConformance(t *testing.T) {
	storetest.RunDerived(t, func(t *testing.T) store.Store {
		// Small indexer chunks, so that the derived data is read while
		// partly written, and from the posting tail.
		return create(t, filepath.Join(t.TempDir(), "trail.db"), Options{IndexChunk: 300, Logger: testLogger(t)})
	})
}

// change runs query on db and fails t unless it changed a row.
func change(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s: no row changed", query)
	}
}

// postingsOf returns Postings(from, to) by key.
func postingsOf(t *testing.T, s *Store, log, from, to int64) map[storetest.PostingKey]store.Posting {
	t.Helper()
	ps, err := s.Postings(context.Background(), log, from, to, nil)
	if err != nil {
		t.Fatalf("Postings(%d, %d) = %v", from, to, err)
	}
	out := map[storetest.PostingKey]store.Posting{}
	for _, p := range ps {
		out[storetest.PostingKey{Index: p.Index, Value: p.Value, ID: p.ID}] = p
	}
	return out
}

// TestPostingsTampered reads posting lists changed behind the store's back,
// in the index tables of a complete segment and in the tail of the next:
// Postings says what a search would find, damage included, and ResetIndex
// has them derived again from the events.
func TestPostingsTampered(t *testing.T) {
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{Logger: testLogger(t)})
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(20000, 41)
	for i := 0; i < len(evs); i += 4000 {
		w.Append(t, s, t0.Add(time.Duration(i)*time.Millisecond), evs[i:i+4000]...)
	}
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	const seg1 = 1 << segBits
	storetest.CheckPostings(t, s, w, 0, seg1)
	storetest.CheckPostings(t, s, w, seg1, w.Size())
	want0 := storetest.WantDerived(w.Events, 0, seg1, 0, 0).Postings
	want1 := storetest.WantDerived(w.Events, seg1, w.Size(), 0, 0).Postings
	alice := storetest.PostingKey{Index: store.IndexActor, Value: "alice"}
	bob := storetest.PostingKey{Index: store.IndexActor, Value: "bob"}
	doc3 := storetest.PostingKey{Index: store.IndexTarget, Value: "document", ID: "doc-3"}
	if len(want0[alice]) < 100 || len(want1[bob]) < 100 || len(want0[doc3]) < 2 {
		t.Fatalf("alice has %d events in segment 0, bob %d in segment 1, doc-3 %d in segment 0; want more", len(want0[alice]), len(want1[bob]), len(want0[doc3]))
	}

	db := rawDB(t, s.path)
	seg := segOf(eventKey(w.Info.ID, 0))
	change(t, db, "DELETE FROM by_actor WHERE seg = ? AND actor_id = 'alice'", seg)
	change(t, db, "INSERT INTO by_ip (seg, ip, k, ks) VALUES (?, '203.0.113.99', ?, NULL)", seg, eventKey(w.Info.ID, 5))
	change(t, db, "UPDATE by_target SET ks = x'00' WHERE seg = ? AND type = 'document' AND id = 'doc-3'", seg)
	// The tail of segment 1 holds a row per chunk and index: take bob out
	// of every actor row by rewriting them without him.
	rows, err := db.Query("SELECT k, data FROM posting_tail WHERE seg = ? AND t = 2", seg+1)
	if err != nil {
		t.Fatal(err)
	}
	type tailRow struct {
		k    int64
		data []byte
	}
	var tails []tailRow
	for rows.Next() {
		var r tailRow
		if err := rows.Scan(&r.k, &r.data); err != nil {
			t.Fatal(err)
		}
		tails = append(tails, r)
	}
	rows.Close()
	if len(tails) == 0 {
		t.Fatal("segment 1 has no posting tail")
	}
	for _, r := range tails {
		var es []indexEntry
		err := decodeTail(seg+1, r.data, func(a, b []byte, k int64, ks []byte) error {
			if string(a) != "bob" {
				es = append(es, indexEntry{a: string(a), b: string(b), k: k, ks: slices.Clone(ks)})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		change(t, db, "UPDATE posting_tail SET data = ? WHERE seg = ? AND t = 2 AND k = ?", encodeTail(seg+1, es), seg+1, r.k)
	}

	got0 := postingsOf(t, s, w.Info.ID, 0, seg1)
	if p, ok := got0[alice]; ok {
		t.Errorf("segment 0 after deleting alice's row: Postings lists her at %d seqs", len(p.Seqs))
	}
	if p := got0[storetest.PostingKey{Index: store.IndexIP, Value: "203.0.113.99"}]; !slices.Equal(p.Seqs, []int64{5}) {
		t.Errorf("segment 0 after inserting an ip row: Postings lists it at %v, want [5]", p.Seqs)
	}
	if p := got0[doc3]; !p.Damaged || !slices.Equal(p.Seqs, want0[doc3][:1]) {
		t.Errorf("segment 0 after damaging doc-3's row: Postings gives %+v, want it damaged, with seq %d", p, want0[doc3][0])
	}
	got1 := postingsOf(t, s, w.Info.ID, seg1, w.Size())
	if p, ok := got1[bob]; ok {
		t.Errorf("segment 1 after taking bob out of the tail: Postings lists him at %d seqs", len(p.Seqs))
	}
	if p := got1[alice]; !slices.Equal(p.Seqs, want1[alice]) {
		t.Errorf("segment 1: alice at %d seqs, want %d", len(p.Seqs), len(want1[alice]))
	}

	if err := s.ResetIndex(ctx, w.Info.ID); err != nil {
		t.Fatalf("ResetIndex = %v", err)
	}
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	storetest.CheckPostings(t, s, w, 0, seg1)
	storetest.CheckPostings(t, s, w, seg1, w.Size())
	storetest.CheckWords(t, s, w, w.Size())
	if to := storetest.CheckCounts(t, s, w); to.Rolled != w.Size() {
		t.Errorf("Counts after ResetIndex and WaitIndexed go to %+v, want %d", to, w.Size())
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1, Limit: 10000}, false)
	storetest.CheckSearch(t, s, w, store.Query{Actor: "bob", To: -1, Limit: 10000}, false)
}

// TestRollupTwoIndexers has two stores on one database, as trail append
// beside trail serve are, index one chunk each while the other's counts
// are pending: the counts written must be those of the events, once each.
func TestRollupTwoIndexers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	a := create(t, path, Options{Logger: testLogger(t)})
	resumeA := pauseIndexer(a)
	w := storetest.NewWriter(t, a, "audit")
	w.Append(t, a, t0, storetest.RollupEvents(1000, 42)...)
	b := open(t, path, Options{Logger: testLogger(t)})
	resumeB := pauseIndexer(b)
	a.ix.chunk, b.ix.chunk = 500, 500
	for _, s := range []*Store{a, b} {
		c, err := s.ix.prepareChunk(ctx, w.Info.ID)
		if err != nil || c == nil {
			t.Fatalf("prepareChunk = %v, %v", c, err)
		}
		err = s.ix.writeChunk(ctx, c)
		if err != nil {
			t.Fatalf("writeChunk(%d to %d) = %v", c.from, c.to, err)
		}
	}
	// Both have counts pending: a of [0, 500), b of [0, 1000), having
	// counted a's chunk from the events as rolled_size was still 0.
	for _, s := range []*Store{b, a} {
		s.wmu.Lock()
		err := s.ix.flushRollups(ctx, true)
		s.wmu.Unlock()
		if err != nil {
			t.Fatalf("flushRollups = %v", err)
		}
	}
	q := store.RollupQuery{From: 0, To: 24 << 20, Bucket: 1, Top: 10}
	storetest.CheckRollup(t, a, w, q)
	storetest.CheckCounts(t, a, w)
	resumeA()
	resumeB()
	if err := b.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if got := storetest.CheckRollup(t, b, w, q); got.IndexedTo != w.Size() {
		t.Errorf("Rollup.IndexedTo = %d after WaitIndexed, want %d", got.IndexedTo, w.Size())
	}
	storetest.CheckCounts(t, b, w)
}
