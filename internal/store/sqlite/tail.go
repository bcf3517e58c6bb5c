package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"
)

// The posting tail. An index chunk that covers only part of a segment
// stores its posting rows for each segment-keyed index as one row of
// posting_tail, keyed (seg, index, the chunk's first key), so that it
// lands at the end of that table. Written as rows of the index tables,
// keyed (seg, value, k), they would land all over the segment's part of
// each index: under a stream of single events, chunks of a few hundred
// events each rewrote most of the segment's pages of by_actor, by_ip and
// by_target.
//
// Once a segment is complete, the indexer writes its tail as rows of the
// index tables, one per value, which then grow at their right edge, and
// deletes it: it reads and sorts the tail without holding the write lock
// (readTail), then writes it in several transactions (mergeTxs), so a
// commit waits for one at most; until the last, which deletes the tail,
// searches find some events both ways and list them once (segmentKeys
// sorts and compacts). A merge cut off by a crash is redone before the
// next chunk of the log (cutOffMerges); its rows are the same, so those
// already there are left as they are.
//
// A chunk that covers a whole segment, as chunks do when the indexer lags,
// writes the index tables' rows directly.

// tailIndexes are the segment-keyed indexes, numbered as in indexTables,
// and posting_tail's t column.
const tailIndexes = 5

// targetIndex is the number of by_target, the one index with two value
// columns.
const targetIndex = 4

// encodeTail encodes the posting rows es of one index, sorted by value,
// as the data of a tail row of segment seg: for each row, its value a and
// b, each as a uvarint length and the bytes, then k as a uvarint offset
// from the segment's first key, then ks as a uvarint length and the bytes.
func encodeTail(seg int64, es []indexEntry) []byte {
	var b []byte
	base := seg << segBits
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.a)))
		b = append(b, e.a...)
		b = binary.AppendUvarint(b, uint64(len(e.b)))
		b = append(b, e.b...)
		b = binary.AppendUvarint(b, uint64(e.k-base))
		b = binary.AppendUvarint(b, uint64(len(e.ks)))
		b = append(b, e.ks...)
	}
	return b
}

// errDamagedTail reports tail data that does not decode.
var errDamagedTail = errors.New("posting tail is damaged")

// decodeTail calls f for each posting row in data, the data of a tail row
// of segment seg, in order. a and b are only valid during the call.
func decodeTail(seg int64, data []byte, f func(a, b []byte, k int64, ks []byte) error) error {
	base := seg << segBits
	field := func(off int) ([]byte, int, error) {
		n, w := binary.Uvarint(data[off:])
		if w <= 0 || n > uint64(len(data)-off-w) {
			return nil, 0, fmt.Errorf("%w at byte %d", errDamagedTail, off)
		}
		off += w
		return data[off : off+int(n)], off + int(n), nil
	}
	for off := 0; off < len(data); {
		a, next, err := field(off)
		if err != nil {
			return err
		}
		b, next, err := field(next)
		if err != nil {
			return err
		}
		d, w := binary.Uvarint(data[next:])
		if w <= 0 || d >= 1<<segBits {
			return fmt.Errorf("%w at byte %d", errDamagedTail, next)
		}
		ks, next, err := field(next + w)
		if err != nil {
			return err
		}
		if !utf8.Valid(a) || !utf8.Valid(b) {
			return fmt.Errorf("%w at byte %d", errDamagedTail, off)
		}
		if err := f(a, b, base+int64(d), ks); err != nil {
			return err
		}
		off = next
	}
	return nil
}

// chunkTails encodes c's posting rows as its tail rows, one per index
// (nil where it has none), when c covers only part of its segment; nil
// when it covers all of it.
func chunkTails(c *chunk) [][]byte {
	seg := segOf(eventKey(c.log, c.from))
	if eventKey(c.log, c.from) == seg<<segBits && eventKey(c.log, c.to) == (seg+1)<<segBits {
		return nil
	}
	tails := make([][]byte, tailIndexes)
	for t, es := range c.postings() {
		if len(es) > 0 {
			tails[t] = encodeTail(seg, es)
		}
	}
	return tails
}

// postings lists c's posting rows by index, numbered as in indexTables.
func (c *chunk) postings() [][]indexEntry {
	return [][]indexEntry{c.actions, c.outcomes, c.actors, c.ips, c.targets}
}

// cutOffMerges lists the transactions that merge the tail of every
// segment of log below segment below: merges a crash cut off, redone
// before the next chunk of the log. The caller holds wmu.
func (ix *indexer) cutOffMerges(ctx context.Context, log, below int64) iter.Seq[writeTx] {
	return func(yield func(writeTx) bool) {
		segs, err := ix.tailSegments(ctx, log, below)
		if err != nil {
			yield(failedTx(err))
			return
		}
		for _, seg := range segs {
			for tx := range ix.tailMergeTxs(ctx, seg) {
				if !yield(tx) {
					return
				}
			}
		}
	}
}

// tailSegments returns the segments of log below segment below that have
// a posting tail, read on the write connection.
func (ix *indexer) tailSegments(ctx context.Context, log, below int64) ([]int64, error) {
	rows, err := ix.s.w.QueryContext(ctx, "SELECT DISTINCT seg FROM posting_tail WHERE seg >= ? AND seg < ?", segOf(eventKey(log, 0)), below)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var segs []int64
	for rows.Next() {
		var seg int64
		if err := rows.Scan(&seg); err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, rows.Err()
}

// mergeRowsPerTx is how many index rows one transaction of a merge writes:
// about 2 ms of holding the write lock.
const mergeRowsPerTx = 1024

// tailMergeTxs lists the transactions that merge the tail of segment seg
// into the index tables, reading it, when the first runs, on the write
// connection: for a caller that holds wmu throughout.
func (ix *indexer) tailMergeTxs(ctx context.Context, seg int64) iter.Seq[writeTx] {
	return func(yield func(writeTx) bool) {
		resets := ix.resetCount()
		rows, err := readTail(ctx, ix.s.w, seg)
		if err != nil {
			yield(failedTx(fmt.Errorf("merge posting tail of segment %d: %w", seg, err)))
			return
		}
		for tx := range ix.mergeTxs(ctx, seg, rows, resets) {
			if !yield(tx) {
				return
			}
		}
	}
}

// readTail reads the tail of segment seg from db and returns it as the
// index tables' rows, one per value, by index. A complete segment's tail
// changes only when it is merged, so the indexer reads it without holding
// wmu (mergeSegment).
func readTail(ctx context.Context, db *sql.DB, seg int64) ([][]indexEntry, error) {
	entries := make([][]indexEntry, tailIndexes)
	rows, err := db.QueryContext(ctx, "SELECT t, data FROM posting_tail WHERE seg = ?", seg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []int64
	for rows.Next() {
		var t int
		var data sql.RawBytes
		if err := rows.Scan(&t, &data); err != nil {
			return nil, err
		}
		if t < 0 || t >= tailIndexes {
			return nil, fmt.Errorf("%w: index %d", errDamagedTail, t)
		}
		err := decodeTail(seg, data, func(a, b []byte, k int64, ks []byte) error {
			var err error
			if keys, err = appendPosting(keys[:0], k, ks, 0, 1<<62); err != nil {
				return err
			}
			sa, sb := string(a), string(b)
			for _, k := range keys {
				entries[t] = append(entries[t], indexEntry{a: sa, b: sb, k: k})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for t, es := range entries {
		sortEntries(es)
		entries[t] = postings(es)
	}
	return entries, nil
}

// mergeTxs lists the transactions that write rows, segment seg's tail
// as readTail returned it after resetCount returned resets, into the index
// tables, mergeRowsPerTx rows each, then the one that deletes the tail.
// Each first checks that ResetIndex has not run since: if it has, the
// tail it was merging is gone, and the rest of the list does nothing.
func (ix *indexer) mergeTxs(ctx context.Context, seg int64, rows [][]indexEntry, resets int64) iter.Seq[writeTx] {
	return func(yield func(writeTx) bool) {
		for t, es := range rows {
			for off := 0; off < len(es); off += mergeRowsPerTx {
				part := es[off:min(off+mergeRowsPerTx, len(es))]
				write := func() error {
					if ix.resetCount() != resets {
						return nil
					}
					return inTx(ctx, ix.s.w, func(tx *sql.Tx) error {
						return ix.insertPostings(ctx, tx, seg, t, part)
					})
				}
				if !yield(write) {
					return
				}
			}
		}
		yield(func() error {
			if ix.resetCount() != resets {
				return nil
			}
			_, err := ix.s.w.ExecContext(ctx, "DELETE FROM posting_tail WHERE seg = ?", seg)
			return err
		})
	}
}

// completes reports whether c is the chunk that completes its segment and
// has left it a tail to merge.
func (c *chunk) completes() bool {
	return c.tails != nil && eventKey(c.log, c.to)&(1<<segBits-1) == 0
}

// sortEntries sorts index entries by value, then key.
func sortEntries(es []indexEntry) {
	slices.SortFunc(es, func(x, y indexEntry) int {
		if c := strings.Compare(x.a, y.a); c != 0 {
			return c
		}
		if c := strings.Compare(x.b, y.b); c != 0 {
			return c
		}
		return cmp.Compare(x.k, y.k)
	})
}

// tailMatcher reports whether a tail row's value is one a posting-list
// query wants.
type tailMatcher func(a, b []byte) bool

// tailFrom returns the first segment in [first, last] with a posting tail,
// or -1 if none has.
func (s *Store) tailFrom(ctx context.Context, first, last int64) (int64, error) {
	var seg sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT min(seg) FROM posting_tail WHERE seg BETWEEN ? AND ?", first, last).Scan(&seg); err != nil {
		return 0, fmt.Errorf("search: %w", err)
	}
	if !seg.Valid {
		return -1, nil
	}
	return seg.Int64, nil
}

// tailKeys appends to keys the keys in [lo, hi] that segment seg's tail
// of index t lists for the values match wants, in no particular order.
func (s *Store) tailKeys(ctx context.Context, t int, match tailMatcher, seg, lo, hi int64, keys []int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT data FROM posting_tail WHERE seg = ? AND t = ? AND k <= ?", seg, t, hi)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var data sql.RawBytes
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		err := decodeTail(seg, data, func(a, b []byte, k int64, ks []byte) error {
			if !match(a, b) {
				return nil
			}
			var err error
			keys, err = appendPosting(keys, k, ks, lo, hi)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("search: posting tail of segment %d: %w", seg, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return keys, nil
}
