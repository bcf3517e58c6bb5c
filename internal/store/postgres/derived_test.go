package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestDerived(t *testing.T) {
	storetest.RunDerived(t, func(t *testing.T) store.Store { return newStore(t) })
}

// exec runs query on the raw database and fails t unless it changed a row.
func exec(t *testing.T, url, query string, args ...any) {
	t.Helper()
	tag, err := raw(t, url).Exec(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("%s: no row changed", query)
	}
}

// TestResetIndexRebuilds changes every table of derived data behind the
// store's back, and has ResetIndex write it all again from the events,
// over more events than it reads at a time, leaving the other log alone.
func TestResetIndexRebuilds(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.RollupEvents(2500, 51)
	for i := 0; i < len(evs); i += 500 {
		w.Append(t, s, t0.Add(time.Duration(i)*time.Minute), evs[i:i+500]...)
	}
	other := storetest.NewWriter(t, s, "other")
	other.Append(t, s, t0, storetest.Events(100, 52)...)
	indexed(t, s, w)
	indexed(t, s, other)
	id := w.Info.ID
	exec(t, url, "UPDATE event_fields SET actor = 'mallory' WHERE log = $1 AND seq < 1500", id)
	exec(t, url, "DELETE FROM event_targets WHERE log = $1 AND seq >= 1000", id)
	exec(t, url, "UPDATE event_fields SET target_type = '', target_id = '' WHERE log = $1 AND seq >= 1000", id)
	exec(t, url, "DELETE FROM bundle_text WHERE log = $1 AND first_seq % 112 = 0", id)
	exec(t, url, "INSERT INTO bundle_text (log, first_seq, words) VALUES ($1, 0, 'needlessly:4')", id)
	exec(t, url, "UPDATE counts SET total = total + 5 WHERE log = $1", id)
	exec(t, url, "DELETE FROM event_fields WHERE log = $1 AND seq = 2400", id)

	if err := s.ResetIndex(ctx, id); err != nil {
		t.Fatalf("ResetIndex = %v", err)
	}
	storetest.CheckPostings(t, s, w, 0, 1000)
	storetest.CheckPostings(t, s, w, 1000, w.Size())
	storetest.CheckWords(t, s, w, w.Size())
	storetest.CheckCounts(t, s, w)
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)
	if got, err := s.Search(ctx, id, store.Query{Actor: "mallory", To: -1}); err != nil || len(got) > 0 {
		t.Errorf("Search(actor mallory) after ResetIndex = %d events, %v; want none", len(got), err)
	}
	storetest.CheckSearch(t, s, w, store.Query{From: 2400, To: 2400}, false)
	storetest.CheckRollup(t, s, w, store.RollupQuery{From: 0, To: 24 << 20, Bucket: 24, Top: 5})
	storetest.CheckPostings(t, s, other, 0, other.Size())
	storetest.CheckCounts(t, s, other)
	// Commits go on from where the log is.
	w.Append(t, s, t0.Add(time.Hour*100), storetest.Events(10, 53)...)
	indexed(t, s, w)
	storetest.CheckPostings(t, s, w, 2000, w.Size())
	storetest.CheckCounts(t, s, w)
}

// TestResetIndexDamaged checks that ResetIndex over a log with an event
// missing or undecodable fails naming it, and changes nothing.
func TestResetIndexDamaged(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(1200, 54)...)
	indexed(t, s, w)
	id := w.Info.ID
	exec(t, url, "UPDATE event_fields SET actor = 'mallory' WHERE log = $1 AND seq = 5", id)
	conn := raw(t, url)
	for _, c := range []struct {
		seq   int64
		query string
		edit  func(recs [][]byte) [][]byte
	}{
		{1100, "the record of seq 1100 set to {", func(recs [][]byte) [][]byte { recs[1100-1088] = []byte("{"); return recs }},
		{1050, "the record of seq 1050 emptied", func(recs [][]byte) [][]byte { recs[1050-1040] = nil; return recs }},
	} {
		editRecords(t, conn, id, c.seq, c.edit)
		err := s.ResetIndex(ctx, id)
		var de *store.DamagedError
		if !errors.As(err, &de) || de.Seq != c.seq {
			t.Errorf("ResetIndex after %s = %v, want a *store.DamagedError at seq %d", c.query, err, c.seq)
		}
		ps, err := s.Postings(ctx, id, 5, 6, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ps, func(p store.Posting) bool { return p.Index == store.IndexActor && p.Value == "mallory" }) {
			t.Errorf("Postings(5, 6) after a failed ResetIndex = %+v, want the actor as it was, mallory", ps)
		}
	}
	if err := s.ResetIndex(ctx, 1<<20); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResetIndex(no such log) = %v, want store.ErrNotFound", err)
	}
}

// TestResetIndexBesideOpenCommit: ResetIndex does not wait for a commit
// that holds the log's row (on another node, say): it rebuilds what was
// committed before it, and the indexer indexes the rest after.
func TestResetIndexBesideOpenCommit(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(50, 55)...)
	tx, err := raw(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM logs WHERE id = $1 FOR NO KEY UPDATE", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = s.ResetIndex(tctx, w.Info.ID)
	cancel()
	if err != nil {
		t.Errorf("ResetIndex while a commit holds the log's row = %v, want it done without waiting", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	storetest.CheckPostings(t, s, w, 0, w.Size())
}

// TestDerivedLongWord checks that a word longer than bundle_text keeps
// reads back whole, from Words and from Postings.
func TestDerivedLongWord(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := storetest.NewWriter(t, s, "audit")
	long := strings.Repeat("é", maxWord) // 2000 bytes
	evs := storetest.Events(3, 56)
	evs[1].Reason = long + " short"
	w.Append(t, s, t0, evs...)
	indexed(t, s, w)
	storetest.CheckWords(t, s, w, w.Size())
	storetest.CheckPostings(t, s, w, 0, w.Size())
	ps, err := s.Postings(ctx, w.Info.ID, 0, w.Size(), []string{long})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(ps, func(p store.Posting) bool { return p.Index == store.IndexText }); i < 0 || ps[i].Value != long || !slices.Equal(ps[i].Seqs, []int64{1}) {
		t.Errorf("Postings(the long word) = %+v, want it at seq 1", ps)
	}
}

// TestResetIndexBesideCommits: a rebuild of a log's indexes, here waiting
// for an indexer that holds the log (another session, standing in for a
// long rebuild), does not hold the log's commits; and a commit to a log
// too far behind waits for that indexer at most keepUpWait.
func TestResetIndexBesideCommits(t *testing.T) {
	defer func(n int64, w time.Duration) { maxIndexLag, keepUpWait = n, w }(maxIndexLag, keepUpWait)
	maxIndexLag, keepUpWait = 40, 300*time.Millisecond
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(20, 1)...)
	indexed(t, s, w)

	// Another session holds the log's indexing.
	tx := holdIndexing(t, url, w.Info.ID)
	reset := make(chan error, 1)
	go func() { reset <- s.ResetIndex(ctx, w.Info.ID) }()
	time.Sleep(300 * time.Millisecond) // the rebuild waits for the holder

	// Commits go on beside it, more than maxIndexLag of them: each waits
	// for the holder at most keepUpWait.
	for i := range 3 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		b := w.Batch(t, t0.Add(time.Duration(i+1)*time.Second), storetest.Events(30, uint64(10+i))...)
		err := s.Commit(cctx, []store.Batch{b})
		cancel()
		if err != nil {
			t.Fatalf("commit %d beside a rebuild: %v", i, err)
		}
		w.Committed(t, b)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("commit %d beside a rebuild took %v, want well under 5 s", i, took)
		}
	}
	select {
	case err := <-reset:
		t.Fatalf("ResetIndex returned %v while another session held the log's indexing", err)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-reset; err != nil {
		t.Fatalf("ResetIndex: %v", err)
	}
	// The indexer indexes what was committed beside the rebuild.
	indexed(t, s, w)
	storetest.CheckLog(t, s, w)
	storetest.CheckSearch(t, s, w, store.Query{To: -1, Limit: 1000}, true)
}

// holdIndexing takes log's indexing in a transaction of its own, as an
// indexer or a rebuild does, and returns the transaction, to roll back.
func holdIndexing(t *testing.T, url string, log int64) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := raw(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2::integer)", indexLockSpace, log); err != nil {
		t.Fatal(err)
	}
	return tx
}
