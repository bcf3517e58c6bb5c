package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// The indexer is a follower of the log. Commits store events, tiles and a
// checkpoint and nothing else (write.go); the indexer reads the committed
// events and adds them to the indexes (by_action, by_outcome, by_actor,
// by_ip, by_target, events_fts), their counts to the rollup table
// (rollup.go) and to the actions table, a chunk at a time: a quarter of
// the events waiting, at least minIndexChunk and at most
// Options.IndexChunk, never crossing a segment.
//
// A chunk goes through two steps:
//
//   - readChunk reads its events, those this process committed from
//     memory (store.Recent), and prepares its posting lists (postings.go),
//     full-text rows and counts. It holds no lock, so that work overlaps
//     with commits and with the writing of the chunk before it
//     (index_chunk.go).
//   - chunkTxs lists the transactions that write it, which whoever holds
//     the write connection runs (index_write.go): its posting transaction
//     (postingTx), then its text transaction (textTx), each with a
//     watermark of its own (posted_size, indexed_size), so that a commit
//     waits for one of them at most and a crash loses only the one in
//     flight, which is redone.
//
// A chunk that completes a segment is followed by the merge of that
// segment's posting tail into the index tables (mergeSegment, tail.go),
// and the counts gathered are written once they are due (rollup.go).
//
// Searches use no index entry past indexed_size, and scan the events past
// it instead (see Search): the lag costs search time, never results. It is
// bounded: a Commit that finds a log more than Options.MaxIndexLag events
// behind indexes chunks itself first (keepUp).
//
// Progress and failures are observable: indexed_size per log, read by
// IndexStatus as a lag, and the indexer's failed attempts with the latest
// error (IndexStatus, behind /readyz and the trail_index_lag_events and
// trail_index_failures_total metrics). After a failure it tries again by
// itself, waiting longer each time.
//
// This file holds the indexer's loop, its status and what it knows of each
// log's progress; index_chunk.go its reads; index_write.go its
// transactions and how they take the write connection.

// indexer is the store's follower of its committed events. Its loop (run)
// starts with the store unless it is read-only; Commit feeds it the
// events it commits and wakes it.
type indexer struct {
	s      *Store // the events, read through s.r, and the write connection, s.w under s.wmu
	logger *slog.Logger
	chunk  int           // Options.IndexChunk
	delay  time.Duration // Options.IndexDelay
	maxLag int64         // Options.MaxIndexLag

	wakeup chan struct{}
	// The loop started by start: cancel stops it, done is closed once it
	// has stopped. Both nil while it does not run.
	cancel context.CancelFunc
	done   chan struct{}

	recent store.Recent // committed by this process, not yet indexed

	// pending is what the indexer has counted per log and not written to
	// the rollup table yet (rollup.go). Guarded by s.wmu.
	pending map[int64]*pendingRollup

	mu sync.Mutex
	// indexed is, per log, how many events this process knows are
	// indexed: its own chunks, and what Size and logName read of other
	// processes'. Search uses the indexes below it.
	indexed map[int64]int64
	resets  int64 // ResetIndex calls so far
	// failures counts failed attempts; lastErr is the latest one's error,
	// nil once one has succeeded since.
	failures int64
	lastErr  error

	// beforeChunk, when set (by tests), is called by indexLog with each
	// prepared chunk just before it writes it.
	beforeChunk func(*chunk)
}

func newIndexer(s *Store) *indexer {
	return &indexer{
		s: s, logger: s.logger,
		chunk: s.opts.IndexChunk, delay: s.opts.IndexDelay, maxLag: s.opts.MaxIndexLag,
		wakeup:  make(chan struct{}, 1),
		pending: map[int64]*pendingRollup{},
		indexed: map[int64]int64{},
	}
}

// start runs the indexer's loop in a goroutine of its own until stop, and
// wakes it.
func (ix *indexer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ix.cancel, ix.done = cancel, done
	go func() {
		defer close(done)
		ix.run(ctx)
	}()
	ix.wake()
}

// stop stops the loop started by start, if it runs, and waits for it. The
// loop finishes the chunk it is writing first.
func (ix *indexer) stop() {
	if ix.cancel == nil {
		return
	}
	ix.cancel()
	<-ix.done
	ix.cancel, ix.done = nil, nil
}

// wake tells the loop that there may be events to index.
func (ix *indexer) wake() {
	select {
	case ix.wakeup <- struct{}{}:
	default:
	}
}

// How long the indexer waits before it tries again after a failure: the
// first time, and at most.
const (
	minIndexRetry = time.Second
	maxIndexRetry = 30 * time.Second
)

// run indexes what commits add, and writes pending counts once they are
// old enough, until ctx is done. Its database work does not stop with ctx:
// it runs to the end of a transaction, and ctx is checked between them.
func (ix *indexer) run(ctx context.Context) {
	work := context.WithoutCancel(ctx)
	var retry <-chan time.Time
	var backoff time.Duration
	for {
		// Pending rollup counts are written once they are old enough.
		var flush <-chan time.Time
		ix.s.wmu.Lock()
		if len(ix.pending) > 0 {
			flush = time.After(rollupFlushDelay)
		}
		ix.s.wmu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-flush:
			ix.s.wmu.Lock()
			err := ix.flushRollups(work, false)
			ix.s.wmu.Unlock()
			if err != nil {
				ix.tried(err)
				ix.logger.ErrorContext(work, "writing event counts failed; they are counted again", "err", err)
			}
			continue
		case <-ix.wakeup:
		case <-retry:
		}
		retry = nil
		// Let small commits gather into a chunk worth a transaction: each
		// chunk costs an fsync and a new full-text segment to merge.
		select {
		case <-ctx.Done():
			return
		case <-time.After(ix.delay):
		}
		for {
			more, err := ix.indexNext(work)
			ix.tried(err)
			if err != nil {
				backoff = min(max(2*backoff, minIndexRetry), maxIndexRetry)
				retry = time.After(backoff)
				ix.logger.ErrorContext(work, "indexing failed; searches scan unindexed events instead", "err", err, "retry_in", backoff)
				break
			}
			backoff = 0
			if !more {
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// tried records the outcome of one of the indexer's attempts.
func (ix *indexer) tried(err error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err != nil {
		ix.failures++
	}
	ix.lastErr = err
}

// IndexStatus implements store.Indexes. Lag is read from the database, so
// that it counts the events of other processes too (trail append beside
// trail serve).
func (s *Store) IndexStatus(ctx context.Context) (store.IndexStatus, error) {
	st := store.IndexStatus{Lag: map[int64]int64{}}
	rows, err := s.r.QueryContext(ctx, "SELECT id, size - indexed_size FROM logs")
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, lag int64
		if err := rows.Scan(&id, &lag); err != nil {
			return st, err
		}
		st.Lag[id] = lag
	}
	if err := rows.Err(); err != nil {
		return st, err
	}
	ix := s.ix
	ix.mu.Lock()
	st.Failures, st.Err = ix.failures, ix.lastErr
	ix.mu.Unlock()
	return st, nil
}

// indexedTo returns how many events of log this process knows are
// indexed.
func (ix *indexer) indexedTo(log int64) int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.indexed[log]
}

// setIndexed records that the events of log below n are indexed: a new
// log's none, the watermark read when the store opens, a chunk written.
func (ix *indexer) setIndexed(log, n int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.indexed[log] = n
}

// learn raises what this process knows is indexed of log to n, read from
// the database (another process's indexer may have got further) after
// resetCount returned resets. A reset since then makes n stale.
func (ix *indexer) learn(log, n, resets int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.resets == resets && n > ix.indexed[log] {
		ix.indexed[log] = n
	}
}

// reset records that ResetIndex dropped the indexes of log.
func (ix *indexer) reset(log int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.indexed[log] = 0
	ix.resets++
}

// resetCount returns how many times ResetIndex has run: what was read of
// the indexes before a reset must not be written or trusted after it.
func (ix *indexer) resetCount() int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.resets
}

// indexNext indexes a few chunks of the log that lags most, and reports
// whether there was anything to do.
func (ix *indexer) indexNext(ctx context.Context) (bool, error) {
	var log int64
	err := ix.s.r.QueryRowContext(ctx, "SELECT id FROM logs WHERE indexed_size < size ORDER BY size - indexed_size DESC LIMIT 1").Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ix.recountLost(ctx)
	}
	if err != nil {
		return false, err
	}
	return true, ix.indexLog(ctx, log, chunksPerTurn)
}

// chunksPerTurn is how many chunks the indexer adds to one log before it
// looks again for the log that lags most.
const chunksPerTurn = 8

// indexLog indexes up to max chunks of log (0: until it has caught up),
// reading each chunk while the one before it is written, so that both
// run at once.
func (ix *indexer) indexLog(ctx context.Context, log int64, max int) error {
	c, err := ix.prepareChunk(ctx, log)
	for n := 1; c != nil && err == nil; n++ {
		type prepared struct {
			c   *chunk
			err error
		}
		next := make(chan prepared, 1)
		more := max == 0 || n < max
		if more {
			go func(from int64) {
				c, err := ix.readChunk(ctx, log, from)
				next <- prepared{c, err}
			}(c.to)
		}
		if ix.beforeChunk != nil {
			ix.beforeChunk(c)
		}
		err = ix.writeChunk(ctx, c)
		stale := errors.Is(err, errStaleChunk)
		if stale {
			err = nil
		}
		if err == nil && !stale && c.completes() {
			err = ix.mergeSegment(ctx, segOf(eventKey(c.log, c.from)))
		}
		if !more {
			return err
		}
		p := <-next
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if stale {
			// Indexed meanwhile by another writer: the chunk prepared
			// after it starts at the wrong place too.
			c, err = ix.prepareChunk(ctx, log)
			continue
		}
		c, err = p.c, p.err
	}
	return err
}

// writeChunk writes chunk c, taking wmu for its transactions and letting
// commits in between them (holdWriter).
func (ix *indexer) writeChunk(ctx context.Context, c *chunk) error {
	return ix.holdWriter(ctx, ix.chunkTxs(ctx, c, false))
}

// mergeSegment merges the tail of a segment that a chunk just completed
// into the index tables (tail.go): read and sorted without the write
// lock, written with it, letting commits in between transactions.
func (ix *indexer) mergeSegment(ctx context.Context, seg int64) error {
	resets := ix.resetCount()
	rows, err := readTail(ctx, ix.s.r, seg)
	if err == nil {
		err = ix.holdWriter(ctx, ix.mergeTxs(ctx, seg, rows, resets))
	}
	if err != nil {
		return fmt.Errorf("merge posting tail of segment %d: %w", seg, err)
	}
	return nil
}

// keepUp indexes chunks of log for Commit, which holds wmu, until at most
// maxLag of its size events are not indexed (or there is nothing it can
// do). Indexing trouble must not stop ingest: it is logged and counted
// as a failed attempt.
func (ix *indexer) keepUp(ctx context.Context, log, size int64) {
	for size-ix.indexedTo(log) > ix.maxLag {
		more, err := ix.indexChunkHeld(ctx, log)
		if err != nil {
			ix.tried(err)
			ix.logger.ErrorContext(ctx, "indexing before a commit failed", "err", err)
		}
		if err != nil || !more {
			return
		}
	}
}

// indexChunkHeld indexes one chunk of log, and merges the tail of the
// segment it completes, while the caller holds wmu, and reports whether
// it did any work.
func (ix *indexer) indexChunkHeld(ctx context.Context, log int64) (bool, error) {
	c, err := ix.prepareChunk(ctx, log)
	if err != nil || c == nil {
		return false, err
	}
	if err := ix.runHeld(ctx, ix.chunkTxs(ctx, c, true)); err != nil {
		return false, err
	}
	if c.completes() {
		seg := segOf(eventKey(c.log, c.from))
		if err := ix.runHeld(ctx, ix.tailMergeTxs(ctx, seg)); err != nil {
			return false, fmt.Errorf("merge posting tail: %w", err)
		}
	}
	return true, nil
}

// WaitIndexed implements store.Store. It indexes what is left itself
// rather than wait for the indexer's delay, and writes the counts of what
// is indexed: its own pending ones, and, for events another process
// indexed and holds the counts of (or stopped before it wrote them),
// counts it makes again from the events. A read-only store has no indexer
// and returns at once: its searches scan what is not indexed.
func (s *Store) WaitIndexed(ctx context.Context, log int64) error {
	if s.w == nil {
		return nil
	}
	ix := s.ix
	if err := ix.indexLog(ctx, log, 0); err != nil {
		return err
	}
	s.wmu.Lock()
	err := ix.flushRollup(ctx, log)
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	p, err := ix.recountIndexed(ctx, log)
	if err != nil || p.to == p.from {
		return err
	}
	// Counts the indexer gathered meanwhile are dropped and counted
	// again, as after a stale write.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ix.pending[log] = p
	return ix.flushRollup(ctx, log)
}

// recountLost counts again, from the events, the indexed events of every
// log whose counts no process holds: those a process indexed but was
// stopped before it wrote their counts (killed, say), which nothing else
// would count until the log's next events were indexed. Counts another
// process still holds and writes meanwhile are not counted twice: the
// first written makes the other stale (writeRollup).
func (ix *indexer) recountLost(ctx context.Context) error {
	rows, err := ix.s.r.QueryContext(ctx, "SELECT id FROM logs WHERE rolled_size < indexed_size")
	if err != nil {
		return err
	}
	var logs []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		logs = append(logs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, log := range logs {
		ix.s.wmu.Lock()
		held := ix.pending[log] != nil
		ix.s.wmu.Unlock()
		if held {
			continue // this process writes them soon
		}
		p, err := ix.recountIndexed(ctx, log)
		if err != nil {
			return err
		}
		if p.to == p.from {
			continue
		}
		ix.s.wmu.Lock()
		if ix.pending[log] == nil {
			ix.pending[log] = p
			err = ix.flushRollup(ctx, log)
		}
		ix.s.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// recountIndexed counts the events of log from its rolled_size up to its
// indexed_size, which another process's indexer indexed. Written, they
// make that process's counts of the same events stale (writeRollup).
func (ix *indexer) recountIndexed(ctx context.Context, log int64) (*pendingRollup, error) {
	tx, err := ix.s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var indexed int64
	if err := tx.QueryRowContext(ctx, "SELECT indexed_size FROM logs WHERE id = ?", log).Scan(&indexed); err != nil {
		return nil, err
	}
	return ix.recount(ctx, tx, log, indexed)
}
