package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store"
)

// Commit implements store.Log. All batches go into one transaction, which
// first locks the rows of their logs, in id order so that two commits to
// the same logs cannot deadlock: a commit to a log waits for the one in
// progress, on any node, and then sees the size it left. Each batch must
// start at its log's size as moved by the batches before it (else
// store.ErrConflict), and no event may be stored at or past that size
// (else a *store.DamagedError). The lock is FOR NO KEY UPDATE, which
// serialises committers as FOR UPDATE would, but lets keys and
// idempotency records referencing the log be inserted meanwhile. The same
// transaction writes the events' search indexes and counts
// (writeIndexes), which thus cover exactly the committed events.
//
// The transaction commits with synchronous_commit on (Open), so when
// Commit returns nil the batches are durable; when it returns an error,
// nothing of any batch is stored, except that the connection may be lost
// while the transaction commits, when the error says that the outcome is
// unknown.
//
// When PostgreSQL cannot be reached or the connection is lost, the error
// matches ErrUnavailable and says so; the Store reconnects by itself once
// PostgreSQL is back.
func (s *Store) Commit(ctx context.Context, batches []store.Batch) error {
	var ids []int64
	for _, b := range batches {
		if len(b.Events) > 0 && !slices.Contains(ids, b.Log) {
			ids = append(ids, b.Log)
		}
	}
	// Encoded before the transaction, which holds the logs' locks.
	data := encode(batches)
	return s.commit(ctx, ids, func(map[int64]int64) ([]store.Batch, [][][]byte, error) {
		return batches, data, nil
	})
}

// CommitLocked implements store.LockingLog: it is Commit, with the
// batches built by build once the transaction holds the logs' rows, from
// the sizes it read under the lock. The writers of one log, on every
// node, thus take turns in PostgreSQL rather than race and retry.
func (s *Store) CommitLocked(ctx context.Context, logs []int64, build func(sizes map[int64]int64) ([]store.Batch, error)) error {
	return s.commit(ctx, logs, func(sizes map[int64]int64) ([]store.Batch, [][][]byte, error) {
		batches, err := build(maps.Clone(sizes))
		if err != nil {
			return nil, nil, &buildError{err}
		}
		return batches, encode(batches), nil
	})
}

// buildError carries the error of CommitLocked's build out of the
// transaction, untouched by explain.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// encode returns the canonical form of every event of batches.
func encode(batches []store.Batch) [][][]byte {
	data := make([][][]byte, len(batches))
	for i, b := range batches {
		data[i] = make([][]byte, len(b.Events))
		for j, e := range b.Events {
			data[i][j] = canon.Append(nil, e)
		}
	}
	return data
}

// commit locks the rows of the logs ids in one transaction, gets the
// batches to store (and their events' canonical forms) from batches given
// the logs' sizes, and stores them (see Commit).
func (s *Store) commit(ctx context.Context, ids []int64, batches func(sizes map[int64]int64) ([]store.Batch, [][][]byte, error)) (err error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil
	}
	committing := false
	defer func() {
		var be *buildError
		if err == nil || errors.As(err, &be) {
			if be != nil {
				err = be.err
			}
			return
		}
		err = s.explain(ctx, err)
		if committing && errors.Is(err, ErrUnavailable) {
			err = &commitUnknownError{err.Error() + "; the connection broke while the transaction was committing, so whether this commit was stored is unknown"}
		}
	}()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, "SELECT id, size FROM logs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", ids)
	if err != nil {
		return fmt.Errorf("lock logs: %w", err)
	}
	sizes := make(map[int64]int64, len(ids))
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return fmt.Errorf("lock logs: %w", err)
		}
		sizes[id] = size
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock logs: %w", err)
	}
	bs, data, err := batches(sizes)
	if err != nil {
		return err
	}
	for i := range bs {
		if len(bs[i].Events) > 0 && !slices.Contains(ids, bs[i].Log) {
			return fmt.Errorf("batch of log %d, which the commit did not lock", bs[i].Log)
		}
		if err := commitBatch(ctx, tx, &bs[i], data[i], sizes); err != nil {
			return err
		}
	}
	if err := writeIndexes(ctx, tx, bs); err != nil {
		return err
	}
	committing = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// commitBatch writes b in tx, whose logs are locked and whose sizes are
// in sizes, and moves b's log's size there.
func commitBatch(ctx context.Context, tx pgx.Tx, b *store.Batch, data [][]byte, sizes map[int64]int64) error {
	if len(b.Events) == 0 {
		return nil
	}
	size, ok := sizes[b.Log]
	if !ok {
		return fmt.Errorf("log %d: %w", b.Log, store.ErrNotFound)
	}
	first := b.Events[0].Seq
	for i, e := range b.Events {
		if e.Seq != first+int64(i) {
			return fmt.Errorf("batch seqs not contiguous at %d: %w", e.Seq, store.ErrConflict)
		}
	}
	if first != size {
		return fmt.Errorf("log %d has %d events, batch starts at %d: %w", b.Log, size, first, store.ErrConflict)
	}
	last := b.Events[len(b.Events)-1]
	if b.Checkpoint.Size != last.Seq+1 {
		return fmt.Errorf("checkpoint size %d does not cover batch ending at %d", b.Checkpoint.Size, last.Seq)
	}
	// Events stored past the log's size, outside Trail, would clash with
	// this batch's or hide among them.
	var stray *int64
	if err := tx.QueryRow(ctx, "SELECT min(seq) FROM events WHERE log = $1 AND seq >= $2", b.Log, first).Scan(&stray); err != nil {
		return fmt.Errorf("read the log's last events: %w", err)
	}
	if stray != nil {
		return &store.DamagedError{Seq: *stray, Problem: fmt.Sprintf("it is stored past the end of the log (%d events)", first)}
	}

	n, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"log", "seq", "data"},
		pgx.CopyFromSlice(len(data), func(i int) ([]any, error) { return []any{b.Log, first + int64(i), data[i]}, nil }))
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	if n != int64(len(data)) {
		return fmt.Errorf("insert events: %d of %d stored", n, len(data))
	}

	var q pgx.Batch
	if len(b.Tiles) > 0 {
		levels := make([]int32, len(b.Tiles))
		idxs := make([]int64, len(b.Tiles))
		tiles := make([][]byte, len(b.Tiles))
		for i, t := range b.Tiles {
			levels[i], idxs[i], tiles[i] = int32(t.Level), t.Index, t.Data
		}
		q.Queue(`INSERT INTO tiles (log, level, idx, data) SELECT $1, * FROM unnest($2::integer[], $3::bigint[], $4::bytea[])
			ON CONFLICT (log, level, idx) DO UPDATE SET data = excluded.data`, b.Log, levels, idxs, tiles)
	}
	q.Queue("INSERT INTO checkpoints (log, size, signed_at, note) VALUES ($1, $2, $3, $4)",
		b.Log, b.Checkpoint.Size, nanos(b.Checkpoint.SignedAt), b.Checkpoint.Note)
	for _, r := range b.Idempotency {
		// A record older than the replay window may still hold the key;
		// the new request replaces it.
		q.Queue(`INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (scope, key) DO UPDATE SET log = excluded.log, fingerprint = excluded.fingerprint,
				receipts = excluded.receipts, created_at = excluded.created_at`,
			r.Scope, r.Key, b.Log, r.Fingerprint, r.Receipts, nanos(r.CreatedAt))
	}
	q.Queue("UPDATE logs SET size = $1, last_received_at = $2 WHERE id = $3", last.Seq+1, nanos(last.ReceivedAt), b.Log)
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return fmt.Errorf("store tiles, checkpoint and size: %w", err)
	}
	sizes[b.Log] = last.Seq + 1
	return nil
}

// Writable implements store.Log: it begins a read-write transaction,
// takes the lock on the logs table that a commit's FOR NO KEY UPDATE of
// its logs' rows takes (ROW SHARE), and rolls back. It fails if the
// database cannot be reached, waits while something holds the table
// against commits (LOCK TABLE logs IN EXCLUSIVE MODE, say), and reports a
// server in recovery (a standby), where nothing can be written.
// When PostgreSQL cannot be reached, the error matches ErrUnavailable and
// says why, like Commit's.
func (s *Store) Writable(ctx context.Context) error {
	return s.explain(ctx, s.writable(ctx))
}

func (s *Store) writable(ctx context.Context) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		var standby bool
		if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
			return err
		}
		if standby {
			return errors.New("postgres: the server is a read-only standby")
		}
		_, err := tx.Exec(ctx, "LOCK TABLE logs IN ROW SHARE MODE")
		return err
	})
}
