package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strings"
	"time"
)

// The indexer's writes. Each is a list of transactions (iter.Seq[writeTx]):
// a chunk's (chunkTxs), a merge of a segment's posting tail (mergeTxs,
// tail.go). The function that holds the write connection runs the list:
// holdWriter, which takes wmu for the indexer's own loop and lets commits
// in between two transactions, or runHeld, for Commit, which holds wmu
// already. So wmu is taken and released in one function, and a list can be
// cut off between any two of its transactions, as a crash would.
//
// The index is derived data, redone from the events after a crash, so its
// transactions commit with synchronous=NORMAL: no fsync of their own. The
// next commit of events, at FULL, makes them durable with it.

// writeTx is one of the indexer's transactions on the write connection. It
// runs while wmu is held and the connection is at synchronous=NORMAL.
type writeTx func() error

// failedTx is a transaction that only fails with err: it ends a list that
// cannot go on.
func failedTx(err error) writeTx { return func() error { return err } }

// maxIndexHold is how long the indexer holds the write connection before
// it lets waiting commits in, between two of its transactions.
const maxIndexHold = 4 * time.Millisecond

// holdWriter runs txs in order, holding wmu, with the write connection at
// synchronous=NORMAL. Between two of them, once it has held wmu for
// maxIndexHold, it lets waiting commits take it: it puts the connection
// back at synchronous=FULL, which their commits need, releases wmu, yields
// and takes it again. It stops at the first error and returns it; it
// leaves the connection at FULL.
func (ix *indexer) holdWriter(ctx context.Context, txs iter.Seq[writeTx]) error {
	s := ix.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer s.syncFull(ctx) // if it fails, Commit tries again, and fails closed
	if err := s.syncNormal(ctx); err != nil {
		return err
	}
	held, first := time.Now(), true
	for tx := range txs {
		if !first && time.Since(held) >= maxIndexHold {
			if err := s.syncFull(ctx); err != nil {
				return err
			}
			s.wmu.Unlock()
			runtime.Gosched()
			s.wmu.Lock()
			held = time.Now()
			if err := s.syncNormal(ctx); err != nil {
				return err
			}
		}
		first = false
		if err := tx(); err != nil {
			return err
		}
	}
	return nil
}

// runHeld runs txs in order for a caller that holds wmu (Commit), with the
// write connection at synchronous=NORMAL, and leaves it at FULL. It stops
// at the first error and returns it.
func (ix *indexer) runHeld(ctx context.Context, txs iter.Seq[writeTx]) error {
	s := ix.s
	defer s.syncFull(ctx)
	if err := s.syncNormal(ctx); err != nil {
		return err
	}
	for tx := range txs {
		if err := tx(); err != nil {
			return err
		}
	}
	return nil
}

// errStaleChunk is the answer of a chunk's transactions for a chunk that
// no longer starts at the log's watermarks: another writer (Commit's
// keepUp, or another process) indexed it meanwhile, and the next chunk
// must be prepared from the watermarks.
var errStaleChunk = errors.New("index chunk prepared from an older watermark")

// chunkTxs lists the transactions that store chunk c, in order: the merge
// of any earlier segment's tail of the log that a crash cut off
// (cutOffMerges), c's posting transaction (postingTx), its text
// transaction (textTx) and, when its log's pending counts are due or flush
// is set, the counts' (flushRollup). A stale chunk ends the list with
// errStaleChunk. The caller merges the tail of a segment c completes.
func (ix *indexer) chunkTxs(ctx context.Context, c *chunk, flush bool) iter.Seq[writeTx] {
	return func(yield func(writeTx) bool) {
		for tx := range ix.cutOffMerges(ctx, c.log, segOf(eventKey(c.log, c.from))) {
			if !yield(tx) {
				return
			}
		}
		if !yield(func() error { return ix.postingTx(ctx, c) }) {
			return
		}
		due := false
		if !yield(func() (err error) { due, err = ix.textTx(ctx, c); return err }) {
			return
		}
		if flush || due {
			yield(func() error { return ix.flushRollup(ctx, c.log) })
		}
	}
}

// watermarks reads, in tx, how far the indexes of log go: all of them
// (indexed_size) and the segment-keyed ones (posted_size).
func watermarks(ctx context.Context, tx *sql.Tx, log int64) (indexed, posted int64, err error) {
	err = tx.QueryRowContext(ctx, "SELECT indexed_size, posted_size FROM logs WHERE id = ?", log).Scan(&indexed, &posted)
	return indexed, posted, err
}

// postingTx is the first of a chunk's two transactions. It holds the
// chunk's posting lists, as rows of the index tables when the chunk covers
// its whole segment and as tail rows when it covers part of it (tail.go),
// and moves posted_size to the chunk's end: the segment-keyed indexes'
// own watermark, so that a chunk cut off after this transaction is not
// posted twice. A chunk posted already (before the process stopped) is
// skipped; one that does not start at the watermarks is stale.
func (ix *indexer) postingTx(ctx context.Context, c *chunk) error {
	return inTx(ctx, ix.s.w, func(tx *sql.Tx) error {
		indexed, posted, err := watermarks(ctx, tx, c.log)
		switch {
		case err != nil:
			return err
		case indexed != c.from:
			return errStaleChunk // indexed meanwhile by another writer
		case posted == c.to:
			return nil // posted before
		case posted != c.from:
			return errStaleChunk // another chunk's posting lists
		}
		if err := ix.writePostings(ctx, tx, c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE logs SET posted_size = ? WHERE id = ?", c.to, c.log); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		return nil
	})
}

// textTx is the second of a chunk's two transactions, the one that makes
// it visible. It holds the chunk's full-text rows, which are most of an
// index chunk's work, and moves indexed_size to the chunk's end, with the
// chunk's action counts, which count the events below indexed_size: a
// search uses the indexes up to indexed_size, so it finds all of them or
// none. The chunk's rollup counts join the log's pending ones (rollup.go),
// and textTx reports whether those are due to be written. A chunk whose
// posting lists are not all written is stale.
func (ix *indexer) textTx(ctx context.Context, c *chunk) (due bool, err error) {
	var pending *pendingRollup
	counted := false
	err = inTx(ctx, ix.s.w, func(tx *sql.Tx) error {
		indexed, posted, err := watermarks(ctx, tx, c.log)
		switch {
		case err != nil:
			return err
		case indexed != c.from:
			return errStaleChunk // indexed meanwhile by another writer
		case posted < c.to:
			return errStaleChunk // its posting lists are not all there
		}
		if err := writeText(ctx, tx, c.docs); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE logs SET indexed_size = ? WHERE id = ?", c.to, c.log); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		count := tx.StmtContext(ctx, ix.s.ins.count)
		for a, n := range c.actionCounts {
			if _, err := count.ExecContext(ctx, c.log, a, n); err != nil {
				return fmt.Errorf("count actions: %w", err)
			}
		}
		counted = true
		pending, due, err = ix.addRollup(ctx, tx, c)
		return err
	})
	if err != nil {
		if counted {
			delete(ix.pending, c.log) // recounted next time
		}
		return false, err
	}
	ix.pending[c.log] = pending
	ix.setIndexed(c.log, c.to)
	ix.recent.Drop(c.log, c.to)
	return due, nil
}

// writePostings writes c's posting lists in tx: as rows of the index
// tables when c covers its whole segment, else as tail rows (tail.go).
func (ix *indexer) writePostings(ctx context.Context, tx *sql.Tx, c *chunk) error {
	seg := segOf(eventKey(c.log, c.from))
	if c.tails == nil {
		for t, es := range c.postings() {
			if err := ix.insertPostings(ctx, tx, seg, t, es); err != nil {
				return err
			}
		}
		return nil
	}
	for t, data := range c.tails {
		if data == nil {
			continue
		}
		if _, err := tx.StmtContext(ctx, ix.s.ins.tail).ExecContext(ctx, seg, t, eventKey(c.log, c.from), data); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// indexRowsPerInsert are the sizes of the segment-keyed indexes' multi-row
// inserts, prepared once, from the largest; a chunk's rows go in as many of
// the largest as fit, then smaller ones.
var indexRowsPerInsert = []int{256, 16, 1}

// maxFTSRows bounds the rows of one full-text insert, whose two values a
// row keep it below SQLite's limit of 32,766 variables.
const maxFTSRows = 16000

// indexTables are the index tables' inserts: the statement's head and the
// values per row after the segment (?1), which the full-text table has
// not (its inserts are not prepared ahead).
var indexTables = []struct {
	head    string
	cols    int
	withSeg bool
}{
	{"INSERT OR IGNORE INTO by_action (seg, action, k, ks) VALUES ", 3, true},
	{"INSERT OR IGNORE INTO by_outcome (seg, outcome, k, ks) VALUES ", 3, true},
	{"INSERT OR IGNORE INTO by_actor (seg, actor_id, k, ks) VALUES ", 3, true},
	{"INSERT OR IGNORE INTO by_ip (seg, ip, k, ks) VALUES ", 3, true},
	{"INSERT OR IGNORE INTO by_target (seg, type, id, k, ks) VALUES ", 4, true},
	{"INSERT INTO events_fts (rowid, text) VALUES ", 2, false},
}

// ftsIndex is the full-text table's number in indexTables.
const ftsIndex = 5

// indexInsert is the multi-row insert of rows rows into indexTables[t].
func indexInsert(t, rows int) string {
	var q strings.Builder
	q.WriteString(indexTables[t].head)
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		if indexTables[t].withSeg {
			q.WriteString("?1,")
		}
		q.WriteString(strings.TrimSuffix(strings.Repeat("?,", indexTables[t].cols), ","))
		q.WriteByte(')')
	}
	return q.String()
}

// insertPostings inserts the posting rows es of index t, segment seg, in
// multi-row statements prepared once (indexRowsPerInsert): per statement
// overhead, not B-tree work, dominates row-at-a-time inserts. Rows already
// there are left alone.
func (ix *indexer) insertPostings(ctx context.Context, tx *sql.Tx, seg int64, t int, es []indexEntry) error {
	for off := 0; off < len(es); {
		size := len(indexRowsPerInsert) - 1
		for i, r := range indexRowsPerInsert {
			if r <= len(es)-off {
				size = i
				break
			}
		}
		rows := indexRowsPerInsert[size]
		args := make([]any, 0, 1+rows*indexTables[t].cols)
		args = append(args, seg)
		for _, e := range es[off : off+rows] {
			args = append(args, e.a)
			if t == targetIndex {
				args = append(args, e.b)
			}
			args = append(args, e.k, e.ks)
		}
		stmt := ix.s.ins.index[t*len(indexRowsPerInsert)+size]
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		off += rows
	}
	return nil
}

// writeText adds docs to the full-text index in tx: in one statement for
// a chunk, however long, as FTS5 writes a segment at the end of each.
func writeText(ctx context.Context, tx *sql.Tx, docs []indexDoc) error {
	args := make([]any, 0, 2*len(docs))
	for _, d := range docs {
		args = append(args, d.k, d.text)
	}
	for off := 0; off < len(docs); off += maxFTSRows {
		n := min(maxFTSRows, len(docs)-off)
		if _, err := tx.ExecContext(ctx, indexInsert(ftsIndex, n), args[2*off:2*(off+n)]...); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}
