package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// Two stores on one file, as trail serve and trail append beside it.
func TestConformanceShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "trail.db")
		opts := Options{IndexChunk: 300, Logger: testLogger(t)}
		a := create(t, path, opts)
		return a, open(t, path, opts)
	})
}

// A store follows what another process commits and indexes through Size:
// its searches use the indexes as far as the other's indexer took them,
// and its own indexer indexes what the other did not, with no commit of
// its own to wake it.
func TestSizeFollowsOtherStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	a := create(t, path, Options{IndexDelay: 10 * time.Millisecond, Logger: testLogger(t)})
	w := storetest.NewWriter(t, a, "audit")
	w.Append(t, a, t0, storetest.Events(10, 1)...)
	if err := a.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a's indexer, woken by the commit, is idle again

	b := open(t, path, Options{Logger: testLogger(t)})
	w.Append(t, b, t0.Add(1), storetest.Events(700, 2)...)
	if err := b.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Size(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if got := a.indexedSize(w.Info.ID); got != w.Size() {
		t.Errorf("after Size, store a's searches use the indexes up to seq %d, want %d (store b indexed them)", got, w.Size())
	}

	// Committed by b, which closes before its indexer gets to them.
	w.Append(t, b, t0.Add(2), storetest.Events(900, 3)...)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Size(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := a.IndexStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Lag[w.Info.ID] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store a's indexer left %d events of store b unindexed for 5 s after Size saw them", st.Lag[w.Info.ID])
		}
		time.Sleep(20 * time.Millisecond)
	}
	storetest.CheckSearch(t, a, w, store.Query{Actor: "alice", To: -1}, false)
}
