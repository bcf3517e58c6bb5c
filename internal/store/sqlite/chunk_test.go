package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// While the indexer keeps up, its chunks stay small, so that a commit never
// waits long for the write lock; when it lags, they grow to catch up.
func TestIndexChunksFollowTheLag(t *testing.T) {
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(1000, 1)
	chunk := func() int64 {
		t.Helper()
		c, err := s.ix.prepareChunk(ctx, w.Info.ID)
		if err != nil || c == nil {
			t.Fatalf("prepareChunk: %v, %v", c, err)
		}
		return c.to - c.from
	}
	w.Append(t, s, t0, evs[:300]...)
	if got := chunk(); got != 300 {
		t.Errorf("300 events waiting: a chunk of %d, want all 300", got)
	}
	w.Append(t, s, t0, evs[300:]...)
	if got := chunk(); got != minIndexChunk {
		t.Errorf("1,000 events waiting: a chunk of %d, want %d", got, minIndexChunk)
	}
	for range 7 {
		w.Append(t, s, t0, evs...)
	}
	if got := chunk(); got != 2000 {
		t.Errorf("8,000 events waiting: a chunk of %d, want a quarter of them", got)
	}
}

// firstChunk creates a store with its indexer paused and a log "audit"
// holding evs, and prepares the log's first index chunk.
func firstChunk(t *testing.T, opts Options, evs []event.Event) (*Store, *storetest.Writer, *chunk) {
	t.Helper()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), opts)
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, evs...)
	c, err := s.ix.prepareChunk(context.Background(), w.Info.ID)
	if err != nil || c == nil {
		t.Fatalf("prepareChunk: %v, %v", c, err)
	}
	return s, w, c
}

// A chunk is written in parts, its rollup counts last, each a transaction
// of its own, so that commits can go in between them (holdWriter lets them
// in: TestHoldWriterLetsCommitsIn), and the connection is back at
// synchronous=FULL after it.
func TestChunkPartsLetCommitsIn(t *testing.T) {
	ctx := context.Background()
	evs := storetest.Events(700, 2)
	s, w, c := firstChunk(t, Options{}, evs[:500])
	synchronous := func() int {
		t.Helper()
		var n int
		if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	parts := 0
	var err error
	s.wmu.Lock()
	for tx := range s.ix.chunkTxs(ctx, c, true) {
		if parts > 0 {
			// A commit between two parts.
			s.wmu.Unlock()
			w.Append(t, s, t0, evs[500+parts])
			s.wmu.Lock()
		}
		if err = tx(); err != nil {
			break
		}
		parts++
	}
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if parts != 3 {
		t.Errorf("a chunk and its counts were written in %d parts, want 3", parts)
	}
	var rolled int64
	if err := s.r.QueryRowContext(ctx, "SELECT rolled_size FROM logs WHERE id = ?", w.Info.ID).Scan(&rolled); err != nil || rolled != c.to {
		t.Errorf("rolled_size after the chunk = %d, %v; want %d", rolled, err, c.to)
	}
	if got := synchronous(); got != 2 {
		t.Errorf("synchronous = %d after a chunk, want 2 (FULL)", got)
	}
	if got := s.indexedSize(w.Info.ID); got != c.to {
		t.Errorf("indexed %d events, want %d", got, c.to)
	}
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)
	storetest.CheckSearch(t, s, w, store.Query{Text: "audit", To: -1}, false)
}

// A chunk cut off after its first part (the process stopped) leaves posting
// lists past the watermark; indexing again, in chunks of another size,
// finishes that chunk first, adds no duplicates, and no search sees the
// difference.
func TestChunkCutOffIsRedone(t *testing.T) {
	ctx := context.Background()
	s, w, c := firstChunk(t, Options{IndexChunk: 700}, storetest.Events(1500, 4))
	// The chunk's first transaction only, as if the process stopped then.
	var err error
	s.wmu.Lock()
	for tx := range s.ix.chunkTxs(ctx, c, false) {
		err = tx()
		break
	}
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	count := func(table string) int64 { return int64(len(postingKeys(t, s.r, table))) }
	if got := s.indexedSize(w.Info.ID); got != 0 {
		t.Fatalf("indexed %d events after a cut-off chunk, want 0", got)
	}
	var posted int64
	if err := s.r.QueryRowContext(ctx, "SELECT posted_size FROM logs WHERE id = ?", w.Info.ID).Scan(&posted); err != nil || posted != c.to {
		t.Fatalf("posted_size after the first part = %d, %v; want %d", posted, err, c.to)
	}
	var text int64
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'user'").Scan(&text); err != nil {
		t.Fatal(err)
	}
	if count("by_actor") == 0 || text != 0 {
		t.Fatalf("after the first part: %d actor entries, %d full-text matches; want some and none", count("by_actor"), text)
	}
	s.ix.chunk = 256
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"by_actor", "by_action"} {
		if got, want := count(table), w.Size(); got != want {
			t.Errorf("%s lists %d events of %d", table, got, want)
		}
	}
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'user'").Scan(&text); err != nil || text == 0 {
		t.Fatalf("full-text matches for 'user' once indexed: %d, %v; want some", text, err)
	}
	for _, q := range []store.Query{
		{Actor: "alice"}, {Actions: []string{"user.login"}}, {Outcome: event.Denied},
		{IP: "10.0.0.1"}, {TargetType: "document", TargetID: "doc-3"}, {Text: "audit"},
	} {
		q.To = -1
		storetest.CheckSearch(t, s, w, q, false)
	}
}

// postingKeys returns the event keys table's posting lists hold, in order,
// failing if one is listed twice.
func postingKeys(t *testing.T, db *sql.DB, table string) []int64 {
	t.Helper()
	rows, err := db.Query("SELECT k, ks FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []int64
	for rows.Next() {
		var k int64
		var ks []byte
		if err := rows.Scan(&k, &ks); err != nil {
			t.Fatal(err)
		}
		if keys, err = appendPosting(keys, k, ks, 0, math.MaxInt64); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, tailEntries(t, db, table)...)
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			t.Fatalf("%s lists key %d twice", table, keys[i])
		}
	}
	return keys
}

// tailEntries returns the keys the posting tail lists for table, one of
// postingIndexes, in its order.
func tailEntries(t *testing.T, db *sql.DB, table string) []int64 {
	t.Helper()
	ix := slices.IndexFunc(postingIndexes, func(p struct{ table, cols string }) bool { return p.table == table })
	rows, err := db.Query("SELECT seg, data FROM posting_tail WHERE t = ? ORDER BY seg, k", ix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []int64
	for rows.Next() {
		var seg int64
		var data []byte
		if err := rows.Scan(&seg, &data); err != nil {
			t.Fatal(err)
		}
		err := decodeTail(seg, data, func(_, _ []byte, k int64, ks []byte) error {
			var err error
			keys, err = appendPosting(keys, k, ks, 0, math.MaxInt64)
			return err
		})
		if err != nil {
			t.Fatalf("posting tail of %s, segment %d: %v", table, seg, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A chunk indexed by another writer while it was prepared (Commit's
// backpressure) is refused as stale, writes nothing, and the indexer goes
// on from the watermarks.
func TestStaleChunk(t *testing.T) {
	ctx := context.Background()
	s, w, c := firstChunk(t, Options{IndexChunk: 600}, storetest.Events(1500, 5))
	s.wmu.Lock()
	more, err := s.ix.indexChunkHeld(ctx, w.Info.ID) // the other writer
	if err != nil || !more {
		s.wmu.Unlock()
		t.Fatalf("indexChunkHeld = %v, %v", more, err)
	}
	err = s.ix.runHeld(ctx, s.ix.chunkTxs(ctx, c, false))
	s.wmu.Unlock()
	if !errors.Is(err, errStaleChunk) {
		t.Fatalf("writeChunk of a chunk indexed meanwhile = %v, want errStaleChunk", err)
	}
	if got := s.indexedSize(w.Info.ID); got != c.to {
		t.Fatalf("indexed %d events, want the other writer's %d", got, c.to)
	}
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if got := s.indexedSize(w.Info.ID); got != w.Size() {
		t.Fatalf("indexed %d events after WaitIndexed, want %d", got, w.Size())
	}
	if got, want := int64(len(postingKeys(t, s.r, "by_actor"))), w.Size(); got != want {
		t.Errorf("by_actor lists %d events of %d", got, want)
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)
	storetest.CheckSearch(t, s, w, store.Query{Text: "audit", To: -1}, false)
}

// The indexer goes on from the watermarks when the chunk it is about to
// write went stale: more events came, and another writer indexed a bigger
// chunk from the same place meanwhile, so the chunk prepared after the
// stale one starts at the wrong place too. Every event ends up indexed,
// once.
func TestIndexLogStaleChunk(t *testing.T) {
	ctx := context.Background()
	evs := storetest.Events(6000, 5)
	s, w, first := firstChunk(t, Options{}, evs[:2000])
	var staled *chunk
	var other int64 // the watermark the other writer left
	s.ix.beforeChunk = func(c *chunk) {
		if staled != nil {
			return
		}
		staled = c
		w.Append(t, s, t0, evs[2000:]...)
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if _, err := s.ix.indexChunkHeld(ctx, w.Info.ID); err != nil { // the other writer
			t.Fatal(err)
		}
		other = s.indexedSize(w.Info.ID)
	}
	if err := s.ix.indexLog(ctx, w.Info.ID, 0); err != nil {
		t.Fatal(err)
	}
	if staled == nil || staled.from != first.from || staled.to != first.to {
		t.Fatalf("the indexer's first chunk was %+v, want [%d, %d)", staled, first.from, first.to)
	}
	if other <= staled.to {
		t.Fatalf("the other writer left the watermark at %d, not past the stale chunk's end %d", other, staled.to)
	}
	if got := s.indexedSize(w.Info.ID); got != w.Size() {
		t.Fatalf("indexed %d events of %d", got, w.Size())
	}
	for _, table := range []string{"by_actor", "by_action"} {
		if got, want := int64(len(postingKeys(t, s.r, table))), w.Size(); got != want {
			t.Errorf("%s lists %d events of %d", table, got, want)
		}
	}
	storetest.CheckSearch(t, s, w, store.Query{Actor: "alice", To: -1}, false)
	storetest.CheckSearch(t, s, w, store.Query{Text: "audit", To: -1}, false)
}
