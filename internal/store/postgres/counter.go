package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store"
)

// The counts behind Rollup and Actions follow the log (0005_counted.sql):
// a counter, in every Store, finds the logs whose counts lag their size
// and adds the next events to them, up to countChunk at a time, in one
// transaction that also moves the log's counted size. An advisory lock on
// the log, held by that transaction, lets one counter at a time count a
// log, whichever node it runs on. Rollup and Derived.Counts say how far
// the counts go; Actions adds the events not counted yet from the log
// itself, so that it never trails commits.

// countChunk is how many events one counting transaction reads at most.
const countChunk = 16384

// countEvery is how often the counter looks for logs to count: every
// commit would cost each a second transaction (and WAL flush) of its
// own; a quarter of a second's commits are counted at once, and the
// counts trail the log by about that.
const countEvery = 250 * time.Millisecond

// countLockSpace is the first key of the advisory locks on logs being
// counted (the second is the log's id).
const countLockSpace = 0x7472_6c01

// counter is a Store's counting follower.
type counter struct {
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	failures int64
	err      error
}

// startCounter starts s's counter.
func (s *Store) startCounter() {
	ctx, cancel := context.WithCancel(context.Background())
	s.counter = &counter{stop: cancel, done: make(chan struct{})}
	go s.countLoop(ctx)
}

func (s *Store) countLoop(ctx context.Context) {
	defer close(s.counter.done)
	tick := time.NewTicker(countEvery)
	defer tick.Stop()
	backoff := countEvery
	for {
		err := s.countAll(ctx)
		if err != nil && ctx.Err() == nil {
			err = s.explain(ctx, err)
		}
		c := s.counter
		c.mu.Lock()
		switch {
		case err != nil && ctx.Err() == nil:
			c.failures++
			if errors.Is(err, ErrUnavailable) {
				// PostgreSQL is down, which commits and readiness
				// report; the counts catch up once it is back.
				break
			}
			if c.err == nil || c.err.Error() != err.Error() {
				s.log.ErrorContext(ctx, "counting events failed; the overview's counts trail the log until it succeeds", "err", err)
			}
			c.err = err
		case err == nil:
			c.err = nil
		}
		c.mu.Unlock()
		wait := tick.C
		if err != nil {
			backoff = min(2*backoff, time.Second)
			wait = time.After(backoff)
		} else {
			backoff = countEvery
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		}
	}
}

// countAll counts the events of every log whose counts lag, as far as its
// size when read.
func (s *Store) countAll(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT l.id, l.size FROM logs l LEFT JOIN counted c ON c.log = l.id
		WHERE l.size > COALESCE(c.size, 0)`)
	if err != nil {
		return err
	}
	var logs, sizes []int64
	var log, size int64
	if _, err := pgx.ForEachRow(rows, []any{&log, &size}, func() error {
		logs, sizes = append(logs, log), append(sizes, size)
		return nil
	}); err != nil {
		return err
	}
	for i, log := range logs {
		if _, err := s.countTo(ctx, log, sizes[i]); err != nil {
			return err
		}
	}
	return nil
}

// countTo counts the events of log up to to, a chunk per transaction,
// and returns how far its counts go. It returns early, with what it
// read, while another counter holds the log.
func (s *Store) countTo(ctx context.Context, log, to int64) (int64, error) {
	for {
		counted, busy, err := s.countChunk(ctx, log, to)
		if err != nil || busy || counted >= to {
			return counted, err
		}
	}
}

// countChunk adds the next events of log below to (at most countChunk)
// to its counts. busy reports that another counter holds the log.
func (s *Store) countChunk(ctx context.Context, log, to int64) (counted int64, busy bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, $2::integer)", countLockSpace, log).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			busy = true
			return tx.QueryRow(ctx, "SELECT COALESCE((SELECT size FROM counted WHERE log = $1), 0)", log).Scan(&counted)
		}
		var size int64
		err := tx.QueryRow(ctx, "SELECT l.size, COALESCE(c.size, 0) FROM logs l LEFT JOIN counted c ON c.log = l.id WHERE l.id = $1", log).Scan(&size, &counted)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		end := min(size, to, counted+countChunk)
		if end <= counted {
			return nil
		}
		r := indexRows{withCounts: true}
		next := counted
		err = walkBundles(ctx, tx, log, counted, end, func(seq int64, data []byte) error {
			if seq != next {
				return &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
			}
			e, err := decode(seq, data)
			if err != nil {
				return err
			}
			r.addCounts(log, e)
			next++
			return nil
		})
		if err == nil && next != end {
			err = &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
		}
		if err != nil {
			return fmt.Errorf("count the events of log %d from %d: %w", log, counted, err)
		}
		var q pgx.Batch
		queueCounts(&q, r.counts)
		q.Queue("INSERT INTO counted (log, size) VALUES ($1, $2) ON CONFLICT (log) DO UPDATE SET size = excluded.size", log, end)
		if err := tx.SendBatch(ctx, &q).Close(); err != nil {
			return fmt.Errorf("store the counts of log %d: %w", log, err)
		}
		counted = end
		return nil
	})
	return counted, busy, err
}

// countedSize returns how far the counts of log go, read with q.
func countedSize(ctx context.Context, q pgx.Tx, log int64) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, "SELECT COALESCE((SELECT size FROM counted WHERE log = $1), 0)", log).Scan(&n)
	return n, err
}
