package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// The search indexes (event_fields, event_targets, bundle_text) and the
// counts behind Rollup follow the log (0005_counted.sql,
// 0006_indexed.sql, 0008_text_indexed.sql): an indexer, in every Store,
// finds the logs whose indexes lag their size and indexes and counts the
// next events, up to indexChunk at a time, in two transactions at once
// (indexOnce): one writes the words and the counts and moves the log's
// text_indexed and counted sizes (and, twice a second, rolls the counts
// up into the hourly and daily ones), the other the fields and moves its
// indexed size. An advisory lock on the log, held by the first until
// both are done, lets one indexer at a time index a log, whichever node
// it runs on. A commit keeps its events in memory (store.Recent) and
// wakes its Store's indexer, which thus reads back only what other nodes
// committed.
//
// Searches read the events at and past the size of the index they use
// from the log (search.go), so the lag costs search time, never results;
// it is bounded, as a commit to a log more than maxIndexLag events behind
// indexes it first (keepUp). Rollup and Derived.Counts say how far the
// counts go; Actions adds the events not counted yet from the log itself.

// progress is the logs joined with how far their indexes and counts go
// (l, i, t and c): a log without a row in indexed, text_indexed or
// counted has none of its events indexed or counted there.
const progress = "logs l LEFT JOIN indexed i ON i.log = l.id LEFT JOIN text_indexed t ON t.log = l.id LEFT JOIN counted c ON c.log = l.id"

// indexChunk is how many events one indexing transaction reads at most.
const indexChunk = 16384

// indexEvery is how often the indexer looks for logs to index, and the
// least time between two of its passes: a pass after every commit of one
// event would cost each a second transaction (and WAL flush) of its own;
// this way a tenth of a second's commits are indexed at once, and the
// indexes trail the log by about that.
const indexEvery = 100 * time.Millisecond

// maxIndexLag is how far a log's indexes may trail its size before
// commits to it index it first: the bound on what a search reads past the
// indexed size. Below store.MaxRecent, so that the indexer of the node
// that commits has them in memory. A variable for tests.
var maxIndexLag int64 = 40000

// indexLockSpace is the first key of the advisory locks on logs being
// indexed (the second is the log's id).
const indexLockSpace = 0x7472_6c01

// indexer is a Store's indexing follower.
type indexer struct {
	stop context.CancelFunc
	done chan struct{}
	wake chan struct{}

	mu       sync.Mutex
	failures int64
	err      error
}

// startIndexer starts s's indexer.
func (s *Store) startIndexer() {
	ctx, cancel := context.WithCancel(context.Background())
	s.indexer = &indexer{stop: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go s.indexLoop(ctx)
}

// wakeIndexer tells s's indexer, if it has one, that there are events to
// index.
func (s *Store) wakeIndexer() {
	if s.indexer == nil {
		return
	}
	select {
	case s.indexer.wake <- struct{}{}:
	default:
	}
}

func (s *Store) indexLoop(ctx context.Context) {
	ix := s.indexer
	defer close(ix.done)
	tick := time.NewTicker(4 * indexEvery)
	defer tick.Stop()
	backoff := indexEvery
	for {
		start := time.Now()
		rolling, err := s.indexAll(ctx)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = &unavailableError{fmt.Sprintf("postgres: PostgreSQL at %s did not answer an indexing pass within %v (%v)", s.srv.addr, indexTimeout, err)}
		}
		switch {
		case err != nil && ctx.Err() == nil:
			s.indexFailed(ctx, err)
		case err == nil:
			ix.mu.Lock()
			ix.err = nil
			ix.mu.Unlock()
		}
		if err != nil {
			backoff = min(2*backoff, time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = indexEvery
		var soon <-chan time.Time
		if rolling {
			// A roll waits for rollEvery: look again in indexEvery,
			// so that the overview counts an event within about
			// rollEvery of its commit.
			soon = time.After(indexEvery - time.Since(start))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-soon:
		case <-ix.wake:
			// Commits go on meanwhile: the next pass indexes them all.
			select {
			case <-ctx.Done():
				return
			case <-time.After(indexEvery - time.Since(start)):
			}
		}
	}
}

// indexFailed counts a failed attempt at indexing, and logs it unless it
// failed as the one before did, or because PostgreSQL is down (which
// commits and readiness report; the indexes catch up once it is back).
func (s *Store) indexFailed(ctx context.Context, err error) {
	ix := s.indexer
	if ix == nil {
		return
	}
	err = s.explain(ctx, err)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.failures++
	if errors.Is(err, ErrUnavailable) {
		return
	}
	if ix.err == nil || ix.err.Error() != err.Error() {
		s.log.ErrorContext(ctx, "indexing events failed; searches read the events not indexed from the log, and the overview's counts trail it, until it succeeds", "err", err)
	}
	ix.err = err
}

// indexAll indexes the events of every log whose indexes or counts lag,
// as far as its size when read.
func (s *Store) indexAll(ctx context.Context) (rolling bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, indexTimeout)
	defer cancel()
	rows, err := s.pool.Query(lctx, `SELECT l.id, l.size FROM `+progress+`
		WHERE l.size > LEAST(COALESCE(i.size, 0), COALESCE(t.size, 0), COALESCE(c.size, 0), COALESCE(c.rolled, 0)) ORDER BY l.id`)
	if err != nil {
		return false, err
	}
	var logs, sizes []int64
	var log, size int64
	if _, err := pgx.ForEachRow(rows, []any{&log, &size}, func() error {
		logs, sizes = append(logs, log), append(sizes, size)
		return nil
	}); err != nil {
		return false, err
	}
	// A log that cannot be indexed (an event damaged before it was, say)
	// does not hold up the others.
	var errs []error
	for i, log := range logs {
		_, rolled, err := s.indexTo(ctx, log, sizes[i], false)
		if err != nil {
			errs = append(errs, err)
		}
		rolling = rolling || rolled < sizes[i]
	}
	return rolling, errors.Join(errs...)
}

// indexTo indexes the events of log up to to, a chunk per transaction,
// and returns how far its indexes and action counts go, and its rollups
// (the hourly and daily counts). Without force, it rolls up only when a
// roll is due (rollDue); with it, it goes on until the rollups reach to
// too. It returns early, with what it read, while another indexer holds
// the log.
func (s *Store) indexTo(ctx context.Context, log, to int64, force bool) (done, rolled int64, err error) {
	for {
		var busy bool
		done, rolled, busy, err = s.indexOnce(ctx, log, to, force)
		if err == nil {
			s.noteSizes(log, -1, done)
		}
		if err != nil || busy || done >= to && (!force || rolled >= to) {
			return done, rolled, err
		}
	}
}

// Rollups: the hourly and daily counts, which change for every event,
// are added to at most once every rollEvery per log, or once rollChunk
// events wait, rather than at every pass of the indexer: a count is
// rewritten, and leaves a dead row version behind, fewer times.
const (
	rollEvery = 500 * time.Millisecond
	rollChunk = indexChunk
)

// rollDue says whether the rollups of log are due, and if so, takes it
// that they are done now.
func (s *Store) rollDue(log int64) bool {
	l := &s.lags
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rolled == nil {
		l.rolled = map[int64]time.Time{}
	}
	if time.Since(l.rolled[log]) < rollEvery {
		return false
	}
	l.rolled[log] = time.Now()
	return true
}

// indexTimeout bounds each of an indexing pass's transactions, and its
// look at which logs lag: a node cut off from PostgreSQL without its
// connections closing (a network partition) fails the pass and tries
// again, rather than wait for the operating system to give up on the
// connection (about 15 minutes on Linux). A transaction indexes at most
// indexChunk events, well under a second here. A variable for tests.
var indexTimeout = time.Minute

// indexOnce indexes and counts the next events of log below to (at most
// indexChunk), and rolls them up if force or if due, and returns how far
// its indexes and action counts go, and its rollups. busy reports that
// another indexer holds the log.
//
// It writes in two transactions at once, on two connections: one the
// words (bundle_text) and the counts, and how far they go (text_indexed,
// counted), which takes the advisory lock first and commits last, so
// that the other writes while it holds it; the other the fields
// (event_fields, event_targets) and how far they go (indexed). Each is
// about half of the server's work, which PostgreSQL does one statement
// after the other within a transaction. The first commits only if the
// second did, so the counts never go past the fields (store.CountsTo):
// the fields go further when the first failed. Each event adds to what
// does not cover it yet, which also serves a database migrated from
// schema 5, whose commits indexed their events and left the counts to a
// follower.
func (s *Store) indexOnce(ctx context.Context, log, to int64, force bool) (done, rolledTo int64, busy bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, indexTimeout)
	defer cancel()
	wordsConn, fieldsConn, err := s.connPair(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	defer wordsConn.Release()
	if fieldsConn != nil {
		defer fieldsConn.Release()
	}
	err = pgx.BeginFunc(ctx, wordsConn, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, $2::integer)", indexLockSpace, log).Scan(&locked); err != nil {
			return err
		}
		var size, indexed, text, counted, rolled int64
		err := tx.QueryRow(ctx, `SELECT l.size, COALESCE(i.size, 0), COALESCE(t.size, 0), COALESCE(c.size, 0), COALESCE(c.rolled, 0)
			FROM `+progress+` WHERE l.id = $1`, log).Scan(&size, &indexed, &text, &counted, &rolled)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		done, rolledTo = min(indexed, text, counted), rolled
		if !locked {
			busy = true
			return nil
		}
		last := min(size, to)
		lo := done
		roll := rolled < last && (force || last-rolled >= rollChunk || s.rollDue(log))
		if roll {
			lo = min(lo, rolled)
		}
		end := min(last, lo+indexChunk)
		if end <= lo {
			return nil
		}
		var fields, words indexRows
		err = s.eachEvent(ctx, tx, log, lo, end, func(e *event.Event) {
			if e.Seq >= indexed {
				fields.addFields(log, e)
			}
			if e.Seq >= text {
				words.addText(log, e)
			}
			if e.Seq >= counted {
				words.addActionCount(log, e)
			}
			if roll && e.Seq >= rolled {
				words.addRollup(log, e)
			}
		})
		if err != nil {
			return fmt.Errorf("index the events of log %d from %d: %w", log, lo, err)
		}
		toIndexed := max(indexed, end)
		fieldsDone := make(chan error, 1)
		if fieldsConn == nil {
			// A pool of one connection: both halves in this
			// transaction, one after the other.
			fieldsDone <- writeFieldsTx(ctx, tx, log, &fields, toIndexed)
		} else {
			go func() {
				fieldsDone <- pgx.BeginFunc(ctx, fieldsConn, func(tx pgx.Tx) error {
					return writeFieldsTx(ctx, tx, log, &fields, toIndexed)
				})
			}()
		}
		toText, toCounted, toRolled := max(text, end), max(counted, end), rolled
		if roll {
			toRolled = max(rolled, end)
		}
		err = writeTextTx(ctx, tx, log, &words, text, toText, toCounted, toRolled)
		// Committed only once the fields are: so that the words and
		// counts never go past them.
		if ferr := <-fieldsDone; ferr != nil {
			return fmt.Errorf("store the fields of log %d: %w", log, ferr)
		}
		if err != nil {
			return fmt.Errorf("store the words and counts of log %d: %w", log, err)
		}
		done, rolledTo = min(toIndexed, toText, toCounted), toRolled
		return nil
	})
	if err == nil && !busy {
		// Kept until rolled up.
		s.recent.Drop(log, min(done, rolledTo))
	}
	return done, rolledTo, busy, err
}

// connPair acquires the two connections of an indexing pass, or only
// one (b nil) from a pool that holds no more.
func (s *Store) connPair(ctx context.Context) (a, b *pgxpool.Conn, err error) {
	s.pairs.Lock()
	defer s.pairs.Unlock()
	if a, err = s.pool.Acquire(ctx); err != nil {
		return nil, nil, err
	}
	if s.pool.Config().MaxConns < 2 {
		return a, nil, nil
	}
	if b, err = s.pool.Acquire(ctx); err != nil {
		a.Release()
		return nil, nil, err
	}
	return a, b, nil
}

// errTextMoved says that another indexer moved a log's text_indexed
// while this one wrote the words that would move it.
var errTextMoved = errors.New("another indexer indexed the words meanwhile")

// writeFieldsTx writes in tx the fields of r (event_fields,
// event_targets), which move the log's indexed size to toIndexed.
func writeFieldsTx(ctx context.Context, tx pgx.Tx, log int64, r *indexRows, toIndexed int64) error {
	var q pgx.Batch
	q.Queue("INSERT INTO indexed (log, size) VALUES ($1, $2) ON CONFLICT (log) DO UPDATE SET size = excluded.size", log, toIndexed)
	return r.write(ctx, tx, &q)
}

// writeTextTx writes in tx the words and counts of r, which move the
// log's text_indexed from text to toText, its counted size to toCounted
// and its rollups to toRolled. The move of text_indexed is checked: it
// fails with errTextMoved if the words no longer go to text, and the
// transaction must then be rolled back.
func writeTextTx(ctx context.Context, tx pgx.Tx, log int64, r *indexRows, text, toText, toCounted, toRolled int64) error {
	var q pgx.Batch
	q.Queue(`INSERT INTO text_indexed (log, size) VALUES ($1, $3) ON CONFLICT (log) DO UPDATE SET size = excluded.size
		WHERE text_indexed.size = $2`, log, text, toText)
	q.Queue(`INSERT INTO counted (log, size, rolled) VALUES ($1, $2, $3)
		ON CONFLICT (log) DO UPDATE SET size = excluded.size, rolled = excluded.rolled`, log, toCounted, toRolled)
	r.queue(&q)
	res := tx.SendBatch(ctx, &q)
	tag, err := res.Exec()
	if err == nil && tag.RowsAffected() != 1 {
		err = errTextMoved
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	return err
}

// eachEvent calls fn with each event of log in [from, to), in seq order:
// those this Store committed from memory (s.recent), the others read
// with q. An event missing, or one that cannot be decoded, is a
// *store.DamagedError at its seq.
func (s *Store) eachEvent(ctx context.Context, q querier, log, from, to int64, fn func(*event.Event)) error {
	lo, hi := s.recent.Held(log)
	lo, hi = max(lo, from), min(hi, to)
	var held []*event.Event
	if lo < hi {
		held = s.recent.Get(log, lo, hi)
	}
	each := func(e *event.Event) error {
		fn(e)
		return nil
	}
	if held == nil {
		return readEvents(ctx, q, log, from, to, each)
	}
	if err := readEvents(ctx, q, log, from, lo, each); err != nil {
		return err
	}
	for _, e := range held {
		fn(e)
	}
	return readEvents(ctx, q, log, hi, to, each)
}

// readEvents calls fn with each event of log in [from, to), in seq order,
// read with q, and stops at fn's first error, which it returns. An event
// missing, or one that cannot be decoded, is a *store.DamagedError at its
// seq.
func readEvents(ctx context.Context, q querier, log, from, to int64, fn func(*event.Event) error) error {
	if from >= to {
		return nil
	}
	next := from
	err := walkBundles(ctx, q, log, from, to, func(seq int64, data []byte) error {
		if seq != next {
			return &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
		}
		e, err := decode(seq, data)
		if err != nil {
			return err
		}
		next++
		return fn(e)
	})
	if err == nil && next != to {
		err = &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
	}
	return err
}

// keepUp indexes, before a commit to the logs ids, those more than
// maxIndexLag events behind, as far as it can: the indexer of another
// Store may hold one, which it then waits for. Indexing trouble does not
// stop ingest (searches read what is not indexed from the log, which
// stays complete): it is counted as the indexer's, and a log whose
// indexing failed is not tried again before a second has passed.
func (s *Store) keepUp(ctx context.Context, ids []int64) {
	for _, log := range ids {
		if s.lag(log) <= maxIndexLag || !s.keepUpDue(log) {
			continue
		}
		if err := s.catchUp(ctx, log); err != nil && ctx.Err() == nil {
			s.keepUpFailed(log)
			s.indexFailed(ctx, err)
		}
	}
}

// catchUp indexes log until it trails its size by at most keepUpLag(),
// waiting for another indexer (another node's, or a rebuild's: trail
// reindex) at most keepUpWait: past it the commit goes on, the log that
// much further behind.
func (s *Store) catchUp(ctx context.Context, log int64) error {
	giveUp := time.Now().Add(keepUpWait)
	for {
		var size, done int64
		err := s.pool.QueryRow(ctx, `SELECT l.size, LEAST(COALESCE(i.size, 0), COALESCE(t.size, 0), COALESCE(c.size, 0)) FROM `+progress+`
			WHERE l.id = $1`, log).Scan(&size, &done)
		if err != nil {
			return err
		}
		s.noteSizes(log, size, done)
		if size-done <= keepUpLag() {
			return nil
		}
		if done, _, err = s.indexTo(ctx, log, size-keepUpLag(), false); err != nil {
			return err
		}
		s.noteSizes(log, size, done)
		if size-done <= keepUpLag() {
			return nil
		}
		if time.Now().After(giveUp) {
			return nil
		}
		select { // another indexer holds the log
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// keepUpWait is how long a commit waits for another indexer to bring its
// log within keepUpLag. A variable for tests.
var keepUpWait = 2 * time.Second

// keepUpLag is how far behind catchUp leaves a log: a little under
// maxIndexLag, so that a commit that finds the indexes too far behind
// indexes a few thousand events, and its callers wait for that, not for
// half the bound.
func keepUpLag() int64 { return maxIndexLag - min(4096, maxIndexLag/2) }

// keepUpDue says whether keepUp may index log: not within a second of
// failing to.
func (s *Store) keepUpDue(log int64) bool {
	l := &s.lags
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().After(l.retry[log])
}

// keepUpFailed records that keepUp failed to index log.
func (s *Store) keepUpFailed(log int64) {
	l := &s.lags
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retry == nil {
		l.retry = map[int64]time.Time{}
	}
	l.retry[log] = time.Now().Add(time.Second)
}

// lags is what a Store knows of how far its logs' indexes trail them:
// the size of each after its latest commit, and how far its indexes went
// when last seen.
type lags struct {
	mu            sync.Mutex
	size, indexed map[int64]int64
	retry         map[int64]time.Time // keepUpFailed
	rolled        map[int64]time.Time // rollDue
}

// noteSizes records that log had size events, of which indexed were
// indexed (either may be -1: unknown).
func (s *Store) noteSizes(log, size, indexed int64) {
	l := &s.lags
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size == nil {
		l.size, l.indexed = map[int64]int64{}, map[int64]int64{}
	}
	if size >= 0 {
		l.size[log] = max(l.size[log], size)
	}
	if indexed >= 0 {
		l.indexed[log] = max(l.indexed[log], indexed)
	}
}

// lag returns how far log's indexes trail it, as far as s knows.
func (s *Store) lag(log int64) int64 {
	l := &s.lags
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size[log] - l.indexed[log]
}
