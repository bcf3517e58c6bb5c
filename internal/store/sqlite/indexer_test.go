package sqlite

import (
	"context"
	"fmt"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// synchronousOf reads the write connection's synchronous setting (1
// NORMAL, 2 FULL). The caller holds wmu.
func synchronousOf(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.w.QueryRow("PRAGMA synchronous").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHoldWriterLetsCommitsIn runs transactions through holdWriter, each
// holding the write connection longer than maxIndexHold, while a writer
// waits for it from the first one on: the writer gets it before the last,
// with the connection at synchronous=FULL, which the indexer's own
// transactions run without. (When exactly depends on the scheduler: a
// Go mutex handed back is not always taken at once by its waiter.)
func TestHoldWriterLetsCommitsIn(t *testing.T) {
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	pauseIndexer(s)
	var order []string // appended to under wmu only
	writerDone := make(chan struct{})
	const n = 6
	txs := func(yield func(writeTx) bool) {
		for i := range n {
			tx := func() error {
				order = append(order, fmt.Sprintf("tx%d synchronous=%d", i, synchronousOf(t, s)))
				if i == 0 {
					waiting := make(chan struct{})
					go func() {
						defer close(writerDone)
						close(waiting)
						s.wmu.Lock()
						order = append(order, fmt.Sprintf("writer synchronous=%d", synchronousOf(t, s)))
						s.wmu.Unlock()
					}()
					<-waiting
				}
				// Each transaction outlasts maxIndexHold, so holdWriter
				// lets the writer in before the next one; a loaded machine
				// may take a turn or two to schedule it.
				time.Sleep(3 * maxIndexHold)
				return nil
			}
			if !yield(tx) {
				return
			}
		}
	}
	if err := s.ix.holdWriter(context.Background(), txs); err != nil {
		t.Fatal(err)
	}
	<-writerDone
	at := slices.Index(order, "writer synchronous=2")
	if len(order) != n+1 || at < 1 || at == n {
		t.Errorf("holdWriter ran\n%s\nwant the writer, at synchronous=2 (FULL), after tx0 and before tx%d", strings.Join(order, "\n"), n-1)
	}
	for i, o := range order {
		if i != at && !strings.HasSuffix(o, "synchronous=1") {
			t.Errorf("%s: want the indexer's transactions at synchronous=1 (NORMAL)", o)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if got := synchronousOf(t, s); got != 2 {
		t.Errorf("synchronous = %d after holdWriter, want 2 (FULL)", got)
	}
}

// TestHoldWriterStops checks that holdWriter stops at the first failing
// transaction, runs none after it, and still leaves the connection at
// synchronous=FULL and wmu free.
func TestHoldWriterStops(t *testing.T) {
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	pauseIndexer(s)
	ran := 0
	txs := func(yield func(writeTx) bool) {
		for i := range 3 {
			if !yield(func() error {
				ran++
				if i == 1 {
					return errStaleChunk
				}
				return nil
			}) {
				return
			}
		}
	}
	if err := s.ix.holdWriter(context.Background(), iter.Seq[writeTx](txs)); err != errStaleChunk {
		t.Errorf("holdWriter = %v, want the second transaction's error", err)
	}
	if ran != 2 {
		t.Errorf("holdWriter ran %d transactions, want 2", ran)
	}
	if !s.wmu.TryLock() {
		t.Fatal("wmu still held after holdWriter")
	}
	defer s.wmu.Unlock()
	if got := synchronousOf(t, s); got != 2 {
		t.Errorf("synchronous = %d after holdWriter failed, want 2 (FULL)", got)
	}
}

// TestIndexerFailuresObservable makes the indexer's writes fail, as a
// trigger of another program could, and checks that IndexStatus shows the
// lag, the failures and the cause while searches stay complete, and that
// the indexer, retrying by itself, catches up and clears the error.
func TestIndexerFailuresObservable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{IndexDelay: time.Millisecond, Logger: testLogger(t)})
	db := rawDB(t, path)
	exec(t, db, `CREATE TRIGGER refuse_index BEFORE UPDATE OF posted_size ON logs
		BEGIN SELECT RAISE(ABORT, 'index writes refused by a trigger'); END`)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(300, 6)...)

	status := func(until func(store.IndexStatus) bool, what string) store.IndexStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := s.IndexStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if until(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("IndexStatus = %+v after 10 s, want %s", st, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st := status(func(st store.IndexStatus) bool { return st.Failures > 0 }, "a failure")
	if st.Err == nil || !strings.Contains(st.Err.Error(), "refused by a trigger") {
		t.Errorf("IndexStatus.Err = %v, want the trigger's refusal", st.Err)
	}
	if st.Lag[w.Info.ID] != w.Size() {
		t.Errorf("IndexStatus.Lag = %d, want all %d events", st.Lag[w.Info.ID], w.Size())
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)

	exec(t, db, "DROP TRIGGER refuse_index")
	failures := st.Failures
	st = status(func(st store.IndexStatus) bool { return st.Lag[w.Info.ID] == 0 && st.Err == nil }, "no lag and no error")
	if st.Failures < failures {
		t.Errorf("IndexStatus.Failures went from %d to %d, want it to keep counting", failures, st.Failures)
	}
	if got := s.indexedSize(w.Info.ID); got != w.Size() {
		t.Errorf("the indexer reached %d, want %d", got, w.Size())
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)
}
