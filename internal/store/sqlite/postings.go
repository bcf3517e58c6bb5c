package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
)

// Posting lists. The segment-keyed indexes (by_action, by_outcome,
// by_actor, by_ip, by_target) hold one row per value and segment (one per
// value and index chunk in databases indexed before schema 5) rather than
// one per event: k is the key of the value's first event in the segment,
// and ks lists the keys of its later events there as uvarint deltas, each
// from the key before (NULL when there are none). A segment holds a few
// dozen actions and some thousands of actors, so the indexer writes
// several times fewer B-tree rows, and a search reads all of a value's
// events in a segment from one row. Until a segment is complete, its
// posting lists are kept in the posting tail (tail.go).
//
// Rows of one value never overlap: they cover disjoint key ranges within
// a segment. Rows of several values (an action filter matching more than
// one action) do, so a search sorts the keys it gathers from a segment,
// as it does when it reads the tail too.

// postings turns index entries sorted by value, then key, into posting
// rows, one per value. Repeated keys of a value (an event naming the same
// target twice) are listed once.
func postings(es []indexEntry) []indexEntry {
	var out []indexEntry
	for i := 0; i < len(es); {
		p := indexEntry{a: es[i].a, b: es[i].b, k: es[i].k}
		last, j := p.k, i+1
		for ; j < len(es) && es[j].a == p.a && es[j].b == p.b; j++ {
			if k := es[j].k; k != last {
				p.ks = binary.AppendUvarint(p.ks, uint64(k-last))
				last = k
			}
		}
		out = append(out, p)
		i = j
	}
	return out
}

// appendPosting appends to keys the keys of the posting row (k, ks) that
// lie in [lo, hi], in ascending order.
func appendPosting(keys []int64, k int64, ks []byte, lo, hi int64) ([]int64, error) {
	end := uint64(segOf(k)+1) << segBits // a row's keys stay in its segment
	if k >= lo && k <= hi {
		keys = append(keys, k)
	}
	for at, off := k, 0; off < len(ks) && at <= hi; {
		d, n := binary.Uvarint(ks[off:])
		if n <= 0 || d == 0 || d >= end-uint64(at) {
			return keys, fmt.Errorf("posting list of key %d is damaged at byte %d", k, off)
		}
		at += int64(d)
		off += n
		if at >= lo && at <= hi {
			keys = append(keys, at)
		}
	}
	return keys, nil
}

// segmentKeys runs sq, a posting-list query, for segment seg and returns
// the keys in [lo, hi] it lists, ascending, reusing keys' storage. With
// tail set it reads the segment's posting tail too, first: a merge moves
// entries from the tail to the index tables (tail.go), so whatever the
// tail no longer lists, the index tables do by the time they are read.
func (s *Store) segmentKeys(ctx context.Context, sq sqlQuery, seg, lo, hi int64, tail bool, keys []int64) ([]int64, error) {
	keys = keys[:0]
	if tail {
		var err error
		if keys, err = s.tailKeys(ctx, sq.index, sq.match, seg, lo, hi, keys); err != nil {
			return nil, err
		}
		if s.afterTail != nil {
			s.afterTail(seg)
		}
	}
	args := make([]any, 0, len(sq.head)+2)
	args = append(append(append(args, seg), sq.head...), hi)
	rows, err := s.r.QueryContext(ctx, sq.text, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	sorted := len(keys) == 0
	for rows.Next() {
		var k int64
		var ks sql.RawBytes
		if err := rows.Scan(&k, &ks); err != nil {
			return nil, err
		}
		n := len(keys)
		if keys, err = appendPosting(keys, k, ks, lo, hi); err != nil {
			return nil, fmt.Errorf("search: %s: %w", sq.table, err)
		}
		if n > 0 && len(keys) > n && keys[n] <= keys[n-1] {
			sorted = false // rows of several values
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if !sorted {
		slices.Sort(keys)
		keys = slices.Compact(keys)
	}
	return keys, nil
}
