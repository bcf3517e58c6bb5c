package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trail-audit/trail/internal/store/storetest"
)

// Chunks that cover part of a segment keep their posting lists in the
// posting tail, which searches read; the chunk that completes the segment
// merges the tail into the index tables, one row per value. A merge cut
// off half-way leaves searches right, and the log's next chunk finishes
// it.
func TestPostingTail(t *testing.T) {
	ctx := context.Background()
	segSize := int64(1) << segBits
	s, w := segmentLog(t, int(segSize)+3000, 7)
	log := w.Info.ID
	seg0 := segOf(eventKey(log, 0))
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.r.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	checkSearches := func(when string) {
		t.Helper()
		for _, q := range searchQueries {
			if q.Text == "" { // the posting lists' queries
				storetest.CheckSearch(t, s, w, q, false)
			}
		}
		if t.Failed() {
			t.Fatalf("searches went wrong %s", when)
		}
	}

	tailRows := func(seg int64) int {
		t.Helper()
		return count("SELECT count(*) FROM posting_tail WHERE seg = ?", seg)
	}
	indexTo(t, s, log, 5000)
	indexTo(t, s, log, segSize-300)
	rows, chunks := tailRows(seg0), count("SELECT count(DISTINCT k) FROM posting_tail WHERE seg = ?", seg0)
	if chunks < 2 || rows != chunks*tailIndexes {
		t.Errorf("%d chunks of part of a segment left %d tail rows, want %d each", chunks, rows, tailIndexes)
	}
	for _, ix := range postingIndexes {
		if n := count("SELECT count(*) FROM "+ix.table+" WHERE seg = ?", seg0); n != 0 {
			t.Errorf("%s holds %d rows of an incomplete segment, want none", ix.table, n)
		}
	}
	checkSearches("with chunks in the tail")

	// The chunk that completes the segment, then its merge, cut off after
	// its first transaction.
	c, err := s.ix.prepareChunk(ctx, log)
	if err != nil || c == nil || c.to != segSize || !c.completes() {
		t.Fatalf("prepareChunk = %v, %v; want the rest of the segment, as tails", c, err)
	}
	if err := s.ix.writeChunk(ctx, c); err != nil {
		t.Fatalf("writing the chunk = %v", err)
	}
	resets := s.ix.resetCount()
	merged, err := readTail(ctx, s.r, seg0)
	if err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	for tx := range s.ix.mergeTxs(ctx, seg0, merged, resets) {
		err = tx()
		break // the process stopped
	}
	s.wmu.Unlock()
	if err != nil {
		t.Fatalf("the merge's first transaction = %v", err)
	}
	if n := s.indexedSize(log); n != segSize {
		t.Fatalf("indexed %d events, want %d", n, segSize)
	}
	if n := count("SELECT count(*) FROM by_action WHERE seg = ?", seg0); n == 0 {
		t.Fatal("the merge's first transaction wrote no by_action rows")
	}
	if n := tailRows(seg0); n != rows+tailIndexes {
		t.Fatalf("after a cut-off merge %d tail rows are left, want all %d", n, rows+tailIndexes)
	}
	checkSearches("in the middle of a merge")

	// The next chunk finishes the merge.
	indexTo(t, s, log, segSize+1000)
	if n := tailRows(seg0); n != 0 {
		t.Errorf("the next chunk left %d tail rows of the segment before, want none", n)
	}
	for _, ix := range postingIndexes {
		if n := count("SELECT count(*) FROM (SELECT 1 FROM "+ix.table+" WHERE seg = ? GROUP BY "+ix.cols+" HAVING count(*) > 1)", seg0); n != 0 {
			t.Errorf("%s holds %d values of the complete segment in more than one row, want one row each", ix.table, n)
		}
	}
	for _, table := range []string{"by_actor", "by_action"} {
		want := make([]int64, 0, segSize+1000)
		for seq := range segSize + 1000 {
			want = append(want, eventKey(log, seq))
		}
		if got := postingKeys(t, s.r, table); !slices.Equal(got, want) {
			t.Errorf("%s lists %d events, want the %d indexed", table, len(got), len(want))
		}
	}
	if n := tailRows(seg0 + 1); n == 0 || n%tailIndexes != 0 {
		t.Errorf("the next segment's first chunks left %d tail rows, want %d a chunk", n, tailIndexes)
	}
	checkSearches("after the merge")
}

// A chunk that covers a whole segment, as chunks do when the indexer lags
// by four segments or more, writes the index tables directly.
func TestWholeSegmentChunk(t *testing.T) {
	if raceEnabled {
		t.Skip("fills a whole index segment: too slow with the race detector")
	}
	segSize := 1 << segBits
	s, w, c := firstChunk(t, Options{}, storetest.Events(4*segSize, 3))
	if c.to != int64(segSize) || c.tails != nil {
		t.Fatalf("first chunk [%d, %d) with tails %v; want the whole segment, no tails", c.from, c.to, c.tails != nil)
	}
	indexTo(t, s, w.Info.ID, int64(segSize))
	var n int
	if err := s.r.QueryRow("SELECT count(*) FROM posting_tail").Scan(&n); err != nil || n != 0 {
		t.Errorf("posting_tail holds %d rows (%v), want none", n, err)
	}
	if got := postingKeys(t, s.r, "by_actor"); len(got) != segSize {
		t.Errorf("by_actor lists %d events, want %d", len(got), segSize)
	}
}

// Damaged tail data is an error, never a panic or a wrong key.
func TestDecodeTailDamage(t *testing.T) {
	seg := int64(5)
	rows := []indexEntry{
		{a: "alice", k: seg<<segBits + 3, ks: []byte{2, 7}},
		{a: "bob", b: "x", k: seg<<segBits + 4},
	}
	data := encodeTail(seg, rows)
	var got []indexEntry
	err := decodeTail(seg, data, func(a, b []byte, k int64, ks []byte) error {
		got = append(got, indexEntry{a: string(a), b: string(b), k: k, ks: slices.Clone(ks)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].a != "alice" || got[0].k != rows[0].k || !slices.Equal(got[0].ks, rows[0].ks) ||
		got[1].a != "bob" || got[1].b != "x" || got[1].k != rows[1].k || len(got[1].ks) != 0 {
		t.Fatalf("decoded %+v, want %+v", got, rows)
	}
	for cut := range len(data) {
		if err := decodeTail(seg, data[:cut], func([]byte, []byte, int64, []byte) error { return nil }); err == nil && cut > 0 && cut < len(data) {
			// A cut at a row boundary is a shorter valid list.
			if cut != len(encodeTail(seg, rows[:1])) {
				t.Errorf("data cut at byte %d decoded without error", cut)
			}
		}
	}
	bad := slices.Clone(data)
	bad[0] = 0xff // a length running past the end
	if err := decodeTail(seg, bad, func([]byte, []byte, int64, []byte) error { return nil }); !errors.Is(err, errDamagedTail) {
		t.Errorf("a length past the end: %v, want errDamagedTail", err)
	}
}

func FuzzDecodeTail(f *testing.F) {
	f.Add(encodeTail(1, []indexEntry{{a: "alice", k: 1<<segBits + 2, ks: []byte{1}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var keys []int64
		err := decodeTail(1, data, func(a, b []byte, k int64, ks []byte) error {
			if k < 1<<segBits || k >= 2<<segBits {
				t.Fatalf("key %d outside segment 1", k)
			}
			var err error
			keys, err = appendPosting(keys, k, ks, 0, 1<<62)
			return err
		})
		for _, k := range keys {
			if err == nil && (k < 1<<segBits || k >= 2<<segBits) {
				t.Fatalf("key %d outside segment 1", k)
			}
		}
	})
}

// A search reads a segment's posting tail before its index tables, so a
// merge that completes between the two reads (moving the tail's entries
// into the index tables, then deleting the tail) cannot hide an event:
// the first read found the tail whole, or the second finds the merged
// rows.
func TestMergeDuringSearch(t *testing.T) {
	ctx := context.Background()
	segSize := int64(1) << segBits
	s, w := segmentLog(t, int(segSize), 5)
	log := w.Info.ID
	indexTo(t, s, log, 6000)
	c, err := s.ix.prepareChunk(ctx, log)
	for err == nil && c != nil && !c.completes() {
		err = s.ix.writeChunk(ctx, c)
		if err == nil {
			c, err = s.ix.prepareChunk(ctx, log)
		}
	}
	if err != nil || c == nil {
		t.Fatalf("indexing up to the segment's last chunk: %v, %v", c, err)
	}
	err = s.ix.writeChunk(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	seg := segOf(eventKey(log, 0))
	// The segment's tail, to put back before each query.
	type tailRow struct {
		t    int
		k    int64
		data []byte
	}
	var tail []tailRow
	rows, err := s.r.Query("SELECT t, k, data FROM posting_tail WHERE seg = ?", seg)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r tailRow
		if err := rows.Scan(&r.t, &r.k, &r.data); err != nil {
			t.Fatal(err)
		}
		tail = append(tail, r)
	}
	if err := rows.Err(); err != nil || len(tail) == 0 {
		t.Fatalf("the complete segment's tail: %d rows, %v", len(tail), err)
	}
	rows.Close()
	queries := 0
	for _, q := range searchQueries {
		p, err := s.plan(ctx, log, q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Text != "" || p.drive == "" {
			continue // not a posting-list query
		}
		queries++
		s.wmu.Lock()
		for _, ix := range postingIndexes {
			if _, err := s.w.Exec("DELETE FROM "+ix.table+" WHERE seg = ?", seg); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range tail {
			if _, err := s.w.Exec("INSERT OR IGNORE INTO posting_tail (seg, t, k, data) VALUES (?, ?, ?, ?)", seg, r.t, r.k, r.data); err != nil {
				t.Fatal(err)
			}
		}
		s.wmu.Unlock()
		merged := false
		s.afterTail = func(sg int64) {
			if sg != seg || merged {
				return
			}
			merged = true
			resets := s.ix.resetCount()
			rows, err := readTail(ctx, s.r, seg)
			if err == nil {
				err = s.ix.holdWriter(ctx, s.ix.mergeTxs(ctx, seg, rows, resets))
			}
			if err != nil {
				t.Fatalf("merge during a search: %v", err)
			}
		}
		storetest.CheckSearch(t, s, w, q, false)
		s.afterTail = nil
		if !merged {
			t.Errorf("%+v: the search read no posting tail", q)
		}
	}
	if queries == 0 {
		t.Fatal("no posting-list queries")
	}
}

// segmentLog creates a store with its indexer paused and a log "audit"
// holding n events, appended 1,000 at a time. It skips t under the race
// detector: the tests that use it fill whole index segments.
func segmentLog(t *testing.T, n int, seed uint64) (*Store, *storetest.Writer) {
	t.Helper()
	if raceEnabled {
		t.Skip("fills a whole index segment: too slow with the race detector")
	}
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(n, seed)
	for off := 0; off < len(evs); off += 1000 {
		w.Append(t, s, t0, evs[off:min(off+1000, len(evs))]...)
	}
	return s, w
}
