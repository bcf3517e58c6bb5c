package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The background indexer adds committed events to the indexes (by_action,
// by_outcome, by_actor, by_ip, by_target, events_fts), their counts to the
// rollup table (see rollup.go) and to the actions table, a chunk at a
// time: a quarter of the events
// waiting, at least minIndexChunk and at most Options.IndexChunk, never
// crossing a segment. It reads a chunk and prepares its posting lists
// (postings.go) and full-text rows without holding the write lock, so that
// work overlaps with commits, then writes it in two transactions
// (writeChunk). Each log's posted_size and indexed_size record how far it
// got, each in the same transaction as the entries it covers, so a crash
// loses only the chunk in flight, which is redone.
//
// After a commit wakes it, the indexer waits Options.IndexDelay so that
// small commits gather into one chunk.
//
// Searches never miss an event because of this: events at or above
// indexed_size are scanned directly (see Search). The lag only costs search
// time, and it is bounded: a Commit that finds a log more than
// Options.MaxIndexLag events behind indexes a chunk itself first.

func (s *Store) wakeIndexer() {
	select {
	case s.indexWake <- struct{}{}:
	default:
	}
}

func (s *Store) indexLoop() {
	defer close(s.done)
	ctx := context.Background()
	// After a failure the indexer tries again by itself, waiting longer
	// each time, so that it recovers without a commit to wake it.
	var retry <-chan time.Time
	var backoff time.Duration
	for {
		// Pending rollup counts are written once they are old enough.
		var flush <-chan time.Time
		s.wmu.Lock()
		if len(s.pending) > 0 {
			flush = time.After(rollupFlushDelay)
		}
		s.wmu.Unlock()
		select {
		case <-s.stop:
			return
		case <-flush:
			s.wmu.Lock()
			err := s.flushRollups(ctx, false)
			s.wmu.Unlock()
			if err != nil {
				s.indexTried(err)
				s.logger.ErrorContext(ctx, "writing event counts failed; they are counted again", "err", err)
			}
			continue
		case <-s.indexWake:
		case <-retry:
		}
		retry = nil
		// Let small commits gather into a chunk worth a transaction: each
		// chunk costs an fsync and a new full-text segment to merge.
		select {
		case <-s.stop:
			return
		case <-time.After(s.opts.IndexDelay):
		}
		for {
			more, err := s.indexNext(ctx)
			s.indexTried(err)
			if err != nil {
				backoff = min(max(2*backoff, minIndexRetry), maxIndexRetry)
				retry = time.After(backoff)
				s.logger.ErrorContext(ctx, "indexing failed; searches scan unindexed events instead", "err", err, "retry_in", backoff)
				break
			}
			backoff = 0
			if !more {
				break
			}
			select {
			case <-s.stop:
				return
			default:
			}
		}
	}
}

// How long the indexer waits before it tries again after a failure: the
// first time, and at most.
const (
	minIndexRetry = time.Second
	maxIndexRetry = 30 * time.Second
)

// indexTried records the outcome of one of the indexer's attempts.
func (s *Store) indexTried(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.indexFailures++
	}
	s.indexErr = err
}

// IndexStatus implements store.Indexer. Lag is read from the database, so
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
	s.mu.Lock()
	st.Failures, st.Err = s.indexFailures, s.indexErr
	s.mu.Unlock()
	return st, nil
}

// indexNext indexes a few chunks of the log that lags most, and reports
// whether there was anything to do.
func (s *Store) indexNext(ctx context.Context) (bool, error) {
	var log int64
	err := s.r.QueryRowContext(ctx, "SELECT id FROM logs WHERE indexed_size < size ORDER BY size - indexed_size DESC LIMIT 1").Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.indexLog(ctx, log, chunksPerTurn)
}

// maxIndexHold is how long the indexer holds the write connection before
// it lets waiting commits in, between the parts of a chunk.
const maxIndexHold = 4 * time.Millisecond

// chunksPerTurn is how many chunks the indexer adds to one log before it
// looks again for the log that lags most.
const chunksPerTurn = 8

// indexLog indexes up to max chunks of log (0: until it has caught up),
// preparing each chunk while the one before it is written, so that both
// run at once.
func (s *Store) indexLog(ctx context.Context, log int64, max int) error {
	c, err := s.prepareChunk(ctx, log)
	for n := 1; c != nil && err == nil; n++ {
		type prepared struct {
			c   *chunk
			err error
		}
		next := make(chan prepared, 1)
		more := max == 0 || n < max
		if more {
			go func(from int64) {
				c, err := s.prepareFrom(ctx, log, from)
				next <- prepared{c, err}
			}(c.to)
		}
		if s.beforeChunk != nil {
			s.beforeChunk(c)
		}
		s.wmu.Lock()
		err = s.writeChunk(ctx, c, false, s.lockPause())
		s.wmu.Unlock()
		stale := errors.Is(err, errStaleChunk)
		if stale {
			err = nil
		}
		if err == nil && !stale && c.completes() {
			err = s.mergeSegment(ctx, segOf(eventKey(c.log, c.from)))
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
			c, err = s.prepareChunk(ctx, log)
			continue
		}
		c, err = p.c, p.err
	}
	return err
}

// mergeSegment merges the tail of a segment that a chunk just completed
// into the index tables: read and sorted without the write lock, written
// with it, letting commits in between transactions.
func (s *Store) mergeSegment(ctx context.Context, seg int64) error {
	resets := s.resetCount()
	rows, err := readTail(ctx, s.r, seg)
	if err != nil {
		return fmt.Errorf("merge posting tail of segment %d: %w", seg, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.resetCount() != resets {
		return nil // the tail read was dropped; the segment is merged when indexed again
	}
	defer s.syncFull(ctx)
	if err := s.syncNormal(ctx); err != nil {
		return err
	}
	if err := s.writeMerge(ctx, seg, rows, s.yielder(ctx, s.lockPause())); err != nil {
		return fmt.Errorf("merge posting tail of segment %d: %w", seg, err)
	}
	return nil
}

// lockPause returns a pause for the indexer's writes (writeChunk,
// writeMerge), whose caller holds wmu: once it has been held long enough
// to show in the latency of waiting commits, it lets them take it.
func (s *Store) lockPause() func() {
	held := time.Now()
	return func() {
		if time.Since(held) >= maxIndexHold {
			s.wmu.Unlock()
			runtime.Gosched()
			s.wmu.Lock()
			held = time.Now()
		}
	}
}

// yielder returns what goes between two of the indexer's transactions:
// the write connection back at synchronous=FULL, which commits of events
// need, then pause, then NORMAL again. Without a pause it does nothing.
func (s *Store) yielder(ctx context.Context, pause func()) func() error {
	return func() error {
		if pause == nil {
			return nil
		}
		if err := s.syncFull(ctx); err != nil {
			return err
		}
		pause()
		return s.syncNormal(ctx)
	}
}

// errStaleChunk is writeChunk's answer for a chunk that no longer starts
// at the log's watermarks: another writer (Commit's backpressure) indexed
// it meanwhile, and the next chunk must be prepared from the watermarks.
var errStaleChunk = errors.New("index chunk prepared from an older watermark")

// indexLag reports how many events of log are not indexed yet, given its
// size.
func (s *Store) indexLag(log, size int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return size - s.indexed[log]
}

// minIndexChunk is the smallest chunk the indexer writes when more are
// waiting: about 10 ms of holding the write lock.
const minIndexChunk = 512

// indexEntry is one key of a background index: a and b are the value
// (b only for targets), k the event key. As a posting row (postings.go),
// ks lists the value's later keys.
type indexEntry struct {
	a, b string
	k    int64
	ks   []byte
}

// chunk is a prepared batch of index entries for events [from, to) of log.
type chunk struct {
	log, from, to int64
	// Posting rows, sorted by key.
	actions, outcomes, actors, ips, targets []indexEntry
	docs                                    []indexDoc
	counts                                  rollupCounts
	actionCounts                            map[string]int64
	// The chunk's tail rows, one per index (nil: none), when it covers
	// only part of its segment (tail.go); nil when it covers all of it.
	tails [][]byte
}

// indexDoc is one event's searchable text, for the full-text index.
type indexDoc struct {
	k    int64
	text string
}

// prepareChunk reads the next unindexed events of log and builds their
// index entries, sorted. It needs no lock; nil means nothing to do.
func (s *Store) prepareChunk(ctx context.Context, log int64) (*chunk, error) {
	var done int64
	if err := s.r.QueryRowContext(ctx, "SELECT indexed_size FROM logs WHERE id = ?", log).Scan(&done); err != nil {
		return nil, err
	}
	return s.prepareFrom(ctx, log, done)
}

// prepareFrom prepares the chunk of log that starts at seq done.
func (s *Store) prepareFrom(ctx context.Context, log, done int64) (*chunk, error) {
	var size, posted int64
	if err := s.r.QueryRowContext(ctx, "SELECT size, posted_size FROM logs WHERE id = ?", log).Scan(&size, &posted); err != nil {
		return nil, err
	}
	if done >= size {
		return nil, nil
	}
	// A chunk holds the write lock while it is written, and commits wait:
	// keep chunks small while the indexer keeps up, big when it lags.
	n := min(int64(s.opts.IndexChunk), max(minIndexChunk, (size-done)/4))
	end := min(size, done+n, (done>>segBits+1)<<segBits)
	if posted > done {
		// A chunk cut off after its posting lists were written: redo the
		// rest of that very chunk.
		end = posted
	}
	var actions, outs, actors, ips, targets []indexEntry
	var docs []indexDoc
	counts, actionCounts := rollupCounts{}, map[string]int64{}
	// What each event adds is derive's to say; here it becomes rows.
	lists := [...]*[]indexEntry{store.IndexAction: &actions, store.IndexOutcome: &outs, store.IndexActor: &actors, store.IndexIP: &ips, store.IndexTarget: &targets}
	add := func(k int64, e *event.Event) {
		counts.add(e)
		actionCounts[e.Action]++
		derive.Postings(e, func(ix store.Index, a, b string) {
			if ix == store.IndexOutcome {
				a = strconv.FormatInt(outcomeCode(event.Outcome(a)), 10)
			}
			*lists[ix] = append(*lists[ix], indexEntry{a: a, b: b, k: k})
		})
		docs = append(docs, indexDoc{k, derive.Text(e)})
	}
	if evs := s.recent.get(log, done, end); evs != nil {
		// Committed by this process moments ago: no need to read them back.
		for _, e := range evs {
			add(eventKey(log, e.Seq), e)
		}
	} else if err := s.readForIndex(ctx, log, done, end, add); err != nil {
		return nil, err
	}
	if int64(len(docs)) != end-done {
		return nil, fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", log, end-done, done, end, len(docs))
	}
	for _, es := range [][]indexEntry{actions, outs, actors, ips, targets} {
		sortEntries(es)
	}
	c := &chunk{
		log: log, from: done, to: end,
		actions: postings(actions), outcomes: postings(outs), actors: postings(actors), ips: postings(ips), targets: postings(targets),
		docs: docs, counts: counts, actionCounts: actionCounts,
	}
	c.tails = chunkTails(c)
	return c, nil
}

// readForIndex reads events [from, to) of log back from the database.
func (s *Store) readForIndex(ctx context.Context, log, from, to int64, add func(int64, *event.Event)) error {
	for e, err := range s.Scan(ctx, log, from, to) {
		if err != nil {
			return err
		}
		add(eventKey(log, e.Seq), e)
	}
	return nil
}

// recentEvents keeps, per log, the events committed by this process that
// the indexer has not reached, so that it need not read them back. It is
// bounded; past the bound the indexer reads from the database.
type recentEvents struct {
	mu    sync.Mutex
	logs  map[int64]*recentLog
	total int // events held, all logs
}

type recentLog struct {
	first int64 // seq of events[0]
	evs   []*event.Event
}

// maxRecent bounds the events held, all logs together.
const maxRecent = 50000

// add records events committed at seqs first, first+1, ….
func (r *recentEvents) add(log int64, evs []*event.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logs == nil {
		r.logs = map[int64]*recentLog{}
	}
	l := r.logs[log]
	if l != nil && l.first+int64(len(l.evs)) != evs[0].Seq {
		r.total -= len(l.evs) // not contiguous: start over
		l = nil
	}
	if l == nil {
		l = &recentLog{first: evs[0].Seq}
		r.logs[log] = l
	}
	if r.total+len(evs) > maxRecent {
		// Too many held: this log's indexer reads from the database
		// until it catches up.
		r.total -= len(l.evs)
		delete(r.logs, log)
		return
	}
	l.evs = append(l.evs, evs...)
	r.total += len(evs)
}

// get returns the events [from, to) of log if they are all held.
func (r *recentEvents) get(log, from, to int64) []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[log]
	if l == nil || from < l.first || to > l.first+int64(len(l.evs)) {
		return nil
	}
	return l.evs[from-l.first : to-l.first]
}

// drop forgets the events of log below seq.
func (r *recentEvents) drop(log, seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.logs[log]
	if l == nil {
		return
	}
	n := min(max(seq-l.first, 0), int64(len(l.evs)))
	l.evs = append([]*event.Event(nil), l.evs[n:]...)
	l.first += n
	r.total -= int(n)
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

// writeChunk stores a prepared chunk. The caller holds wmu; between the
// chunk's parts writeChunk calls pause, which may let commits take the
// write connection meanwhile (nil: no pause).
//
// A chunk is written in two parts, each a transaction of its own with a
// watermark of its own, so that a commit waits for one part at most:
// first the posting lists (as tail rows when the chunk covers only part
// of its segment, tail.go), moving posted_size, then the full-text
// entries, moving indexed_size, while the chunk's rollup counts join the
// log's pending ones (rollup.go). Searches use no entry past indexed_size.
// The caller merges the tail of a segment the chunk completes (tail.go);
// writeChunk first finishes any merge of the log a crash cut off. When
// the pending counts are due, or flush is set, they are written after
// another pause, in a transaction of their own. A part already done
// (before the process stopped) is skipped; a chunk that no longer starts
// at the watermarks, because Commit's backpressure indexed it meanwhile,
// is refused with errStaleChunk.
//
// The index is derived data, redone from the events after a crash, so its
// transactions commit with synchronous=NORMAL: no fsync of their own. The
// next commit of events, at FULL, makes them durable with it.
func (s *Store) writeChunk(ctx context.Context, c *chunk, flush bool, pause func()) error {
	seg := segOf(eventKey(c.log, c.from))
	yield := s.yielder(ctx, pause)
	defer s.syncFull(ctx) // if it fails, Commit tries again, and fails closed
	if err := s.syncNormal(ctx); err != nil {
		return err
	}
	// A merge of an earlier segment's tail cut off by a crash.
	if err := s.mergeTails(ctx, c.log, seg, yield); err != nil {
		return err
	}
	for i := range 2 {
		last := i == 1
		if i > 0 {
			if err := yield(); err != nil {
				return err
			}
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var indexed, posted int64
		if err := tx.QueryRowContext(ctx, "SELECT indexed_size, posted_size FROM logs WHERE id = ?", c.log).Scan(&indexed, &posted); err != nil {
			tx.Rollback()
			return err
		}
		if indexed != c.from {
			tx.Rollback()
			return errStaleChunk // indexed meanwhile by Commit's backpressure
		}
		if !last {
			if posted == c.to {
				tx.Rollback() // posted before
				continue
			}
			if posted != c.from {
				tx.Rollback()
				return errStaleChunk // another chunk's posting lists
			}
		} else if posted < c.to {
			tx.Rollback()
			return errStaleChunk // its posting lists are not all there
		}
		if !last {
			if err := s.writePostings(ctx, tx, c, seg); err != nil {
				tx.Rollback()
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE logs SET posted_size = ? WHERE id = ?", c.to, c.log); err != nil {
				tx.Rollback()
				return fmt.Errorf("index: %w", err)
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			continue
		}
		if err := s.writeText(ctx, tx, c); err != nil {
			tx.Rollback()
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE logs SET indexed_size = ? WHERE id = ?", c.to, c.log); err != nil {
			tx.Rollback()
			return fmt.Errorf("index: %w", err)
		}
		count := tx.StmtContext(ctx, s.ins.count)
		for a, n := range c.actionCounts {
			if _, err := count.ExecContext(ctx, c.log, a, n); err != nil {
				tx.Rollback()
				return fmt.Errorf("count actions: %w", err)
			}
		}
		pending, due, err := s.addRollup(ctx, tx, c)
		if err != nil {
			tx.Rollback()
			delete(s.pending, c.log) // recounted next time
			return err
		}
		if err := tx.Commit(); err != nil {
			delete(s.pending, c.log)
			return err
		}
		s.pending[c.log] = pending
		flush = flush || due
	}
	s.mu.Lock()
	s.indexed[c.log] = c.to
	s.mu.Unlock()
	s.recent.drop(c.log, c.to)
	if !flush {
		return nil
	}
	// The counts in a transaction of their own, which can take as long as
	// a part: let waiting commits in first.
	if err := yield(); err != nil {
		return err
	}
	return s.flushRollup(ctx, c.log)
}

// writePostings writes c's posting lists: as rows of the index tables
// when c covers its whole segment, else as tail rows (tail.go).
func (s *Store) writePostings(ctx context.Context, tx *sql.Tx, c *chunk, seg int64) error {
	if c.tails == nil {
		for t, es := range c.postings() {
			if err := s.insertPostings(ctx, tx, seg, t, es); err != nil {
				return err
			}
		}
		return nil
	}
	for t, data := range c.tails {
		if data == nil {
			continue
		}
		if _, err := tx.StmtContext(ctx, s.ins.tail).ExecContext(ctx, seg, t, eventKey(c.log, c.from), data); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// writeText adds c's events to the full-text index: in one statement for
// the chunk, however long, as FTS5 writes a segment at the end of each.
func (s *Store) writeText(ctx context.Context, tx *sql.Tx, c *chunk) error {
	args := make([]any, 0, 2*len(c.docs))
	for _, d := range c.docs {
		args = append(args, d.k, d.text)
	}
	for off := 0; off < len(c.docs); off += maxFTSRows {
		n := min(maxFTSRows, len(c.docs)-off)
		if _, err := tx.ExecContext(ctx, indexInsert(ftsIndex, n), args[2*off:2*(off+n)]...); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// syncNormal switches the write connection to synchronous=NORMAL, for the
// indexer's transactions. The caller holds wmu.
func (s *Store) syncNormal(ctx context.Context) error {
	s.notFull = true
	_, err := s.w.ExecContext(ctx, "PRAGMA synchronous = NORMAL")
	return err
}

// syncFull switches the write connection back to synchronous=FULL, which
// every commit of events needs. The caller holds wmu.
func (s *Store) syncFull(ctx context.Context) error {
	if !s.notFull {
		return nil
	}
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); err != nil {
		return fmt.Errorf("restore synchronous=FULL: %w", err)
	}
	s.notFull = false
	return nil
}

// indexChunk indexes one chunk of log while the caller holds wmu, and
// reports whether it did any work.
func (s *Store) indexChunk(ctx context.Context, log int64) (bool, error) {
	c, err := s.prepareChunk(ctx, log)
	if err != nil || c == nil {
		return false, err
	}
	if err := s.writeChunk(ctx, c, true, nil); err != nil {
		return false, err
	}
	if c.completes() {
		if err := s.mergeTail(ctx, segOf(eventKey(c.log, c.from)), nil); err != nil {
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
	if err := s.indexLog(ctx, log, 0); err != nil {
		return err
	}
	s.wmu.Lock()
	err := s.flushRollup(ctx, log)
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	p, err := s.recountIndexed(ctx, log)
	if err != nil || p.to == p.from {
		return err
	}
	// Counts the indexer gathered meanwhile are dropped and counted
	// again, as after a stale write.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.pending[log] = p
	return s.flushRollup(ctx, log)
}

// recountIndexed counts the events of log from its rolled_size up to its
// indexed_size, which another process's indexer indexed. Written, they
// make that process's counts of the same events stale (writeRollup).
func (s *Store) recountIndexed(ctx context.Context, log int64) (*pendingRollup, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var indexed int64
	if err := tx.QueryRowContext(ctx, "SELECT indexed_size FROM logs WHERE id = ?", log).Scan(&indexed); err != nil {
		return nil, err
	}
	return s.recount(ctx, tx, log, indexed)
}
