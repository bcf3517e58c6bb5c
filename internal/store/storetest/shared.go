package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// RunShared runs the suite of stores that share one database, as
// processes do on one data directory (trail append beside trail serve) or
// the nodes of a cluster: what one store commits, the other reads,
// searches, indexes and counts, and a batch built before the other's
// commit conflicts. open must return two stores on one new, empty
// database and close them when the test ends (t.Cleanup).
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	tests := []struct {
		name string
		test func(t *testing.T, a, b store.Store)
	}{
		{"Commits", testSharedCommits},
		{"LogCreatedByOther", testSharedNewLog},
		{"Search", testSharedSearch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			tt.test(t, a, b)
		})
	}
}

// checkSize fails t unless s says w's log holds what w committed.
func checkSize(t *testing.T, name string, s store.Log, w *Writer) {
	t.Helper()
	size, err := s.Size(context.Background(), w.Info.ID)
	if err != nil || size != w.Size() {
		t.Fatalf("store %s: Size(%q) = %d, %v; want %d", name, w.Info.Name, size, err, w.Size())
	}
}

// testSharedCommits commits batches of one log through either store, in
// turn, across tile boundaries: after each, both stores tell its size and
// a State that resumes the tree; a batch built before the other store's
// commit conflicts; and both read all of it.
func testSharedCommits(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	stores := []store.Store{a, b}
	names := []string{"a", "b"}
	w := NewWriter(t, a, "audit")
	evs := Events(1400, 160)
	for i, n := range []int{1, 254, 3, 300, 1, 255, 256, 130} {
		w.Append(t, stores[i%2], recvAt(i), evs[:n]...)
		evs = evs[n:]
		for j, s := range stores {
			checkSize(t, names[j], s, w)
			st, err := s.State(ctx, w.Info.ID)
			if err != nil {
				t.Fatalf("store %s: State = %v", names[j], err)
			}
			app, err := merkle.NewAppender(st.Size, st.Rightmost)
			if err != nil {
				t.Fatalf("store %s: NewAppender(State at size %d) = %v", names[j], st.Size, err)
			}
			if st.Size != w.Size() || app.Root() != w.Root() {
				t.Fatalf("store %s: State resumes a tree of size %d with root %v, want %d, %v", names[j], st.Size, app.Root(), w.Size(), w.Root())
			}
			checkCheckpoint(t, fmt.Sprintf("store %s: State.Checkpoint", names[j]), st.Checkpoint, w.Checkpoints[len(w.Checkpoints)-1])
		}
	}
	// Both build on the same state; the one that commits second loses.
	first := w.Batch(t, recvAt(20), Events(4, 161)...)
	second := w.Batch(t, recvAt(20), Events(2, 162)...)
	if err := b.Commit(ctx, []store.Batch{first}); err != nil {
		t.Fatal(err)
	}
	w.Committed(t, first)
	if err := a.Commit(ctx, []store.Batch{second}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("store a: Commit of a batch built before store b's commit = %v, want an error wrapping store.ErrConflict", err)
	}
	w.Append(t, a, recvAt(21), Events(3, 163)...)
	for j, s := range stores {
		checkSize(t, names[j], s, w)
		CheckLog(t, s, w)
	}
}

// testSharedNewLog creates a log through one store after the other had
// read the logs, and reads, searches and counts it through that other.
func testSharedNewLog(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	early := NewWriter(t, a, "early")
	early.Append(t, a, recvAt(0), Events(10, 170)...)
	if _, err := a.Logs(ctx); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(t, b, "late")
	w.Append(t, b, recvAt(1), Events(300, 171)...)
	li, err := a.Log(ctx, "late")
	if err != nil || li.ID != w.Info.ID || li.VerifierKey != w.Info.VerifierKey {
		t.Fatalf("store a: Log(%q) created by store b = %+v, %v; want %+v", "late", li, err, w.Info)
	}
	checkSize(t, "a", a, w)
	CheckLog(t, a, w)
	CheckSearch(t, a, w, store.Query{Actor: "alice", To: -1}, false)
	CheckSearch(t, a, w, store.Query{Text: "audit", To: -1}, false)
	checkActions(t, a, w)
	waitIndexed(t, a, w)
	CheckSearch(t, a, w, store.Query{Actor: "alice", To: -1}, false)
	CheckSearch(t, a, w, store.Query{ActionLike: "user.", To: -1}, false)
	checkActions(t, a, w)
	w.Append(t, a, recvAt(2), Events(20, 172)...)
	CheckLog(t, b, w)
}

// testSharedSearch commits events through both stores, some with actions
// only one of them uses, and searches and counts them through each:
// before anything is indexed, once the other store's indexer indexed
// them, and once the store's own indexer indexed what the other
// committed.
func testSharedSearch(t *testing.T, a, b store.Store) {
	stores := []store.Store{a, b}
	names := []string{"a", "b"}
	w := NewWriter(t, a, "audit")
	// own returns n events whose action only store s commits.
	own := func(s string, n int, seed uint64) []event.Event {
		evs := Events(n, seed)
		for i := range evs {
			evs[i].Action = "only." + s
		}
		return evs
	}
	queries := []store.Query{
		{Actor: "alice", To: -1},
		{Text: "audit", To: -1},
		{Actions: []string{"only.a"}, To: -1},
		{Actions: []string{"only.b"}, To: -1},
		{ActionLike: "only.", To: -1},
		{NotActionLike: "only.", To: -1},
		{Actions: []string{"only.b"}, Actor: "bob", To: -1},
		{TargetType: "document", TargetID: "doc-3", To: -1},
	}
	check := func(when string) {
		t.Helper()
		for j, s := range stores {
			t.Run(when+"/store "+names[j], func(t *testing.T) {
				checkSize(t, names[j], s, w)
				for _, q := range queries {
					CheckSearch(t, s, w, q, false)
				}
				checkActions(t, s, w)
			})
		}
	}
	// The store that commits after the other meets seqs it did not
	// commit itself, in its own indexing.
	w.Append(t, a, recvAt(0), Events(250, 180)...)
	w.Append(t, b, recvAt(1), own("b", 40, 181)...)
	w.Append(t, a, recvAt(2), own("a", 30, 182)...)
	w.Append(t, b, recvAt(3), Events(400, 183)...)
	check("at once")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("store a: WaitIndexed = %v", err)
	}
	check("indexed by a")

	w.Append(t, b, recvAt(4), own("b", 300, 184)...)
	w.Append(t, a, recvAt(5), Events(100, 185)...)
	w.Append(t, b, recvAt(6), Events(700, 186)...)
	check("more, at once")
	if err := b.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("store b: WaitIndexed = %v", err)
	}
	check("indexed by b")
	for j, s := range stores {
		for _, q := range []store.RollupQuery{{From: 0, To: 1 << 30, Bucket: 24, Top: 100}, {From: 0, To: 1 << 30, Bucket: 1, Top: 5, NotActions: []string{"only.a", "only.b"}}} {
			if r := CheckRollup(t, s, w, q); r.IndexedTo != w.Size() {
				t.Errorf("store %s: Rollup(%+v).IndexedTo = %d after WaitIndexed, want %d", names[j], q, r.IndexedTo, w.Size())
			}
		}
	}
}
