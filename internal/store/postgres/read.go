package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// decode decodes the stored canonical form of event seq, or returns a
// *store.DamagedError: the data cannot be decoded, or it holds another
// seq.
func decode(seq int64, data []byte) (*event.Event, error) {
	e, err := event.DecodeStored(data)
	if err != nil {
		// The decoder's *event.Error says what is wrong with an event a
		// client sent, and is answered as such (400 invalid_event): as
		// the cause of a damaged record it keeps only its message.
		return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: errors.New(err.Error())}
	}
	if e.Seq != seq {
		return nil, &store.DamagedError{Seq: seq, Problem: fmt.Sprintf("its record holds seq %d", e.Seq)}
	}
	return &e, nil
}

// Get implements store.Log.
func (s *Store) Get(ctx context.Context, log, seq int64) (*event.Event, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, "SELECT data FROM events WHERE log = $1 AND seq = $2", log, seq).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return decode(seq, data)
}

// A query of Scan and Walk reads up to scanChunk events, and stops early
// once it has read scanBytes of them: a chunk is read whole, and its
// connection given back to the pool, before the caller sees its events, so
// a scan holds no connection or transaction while the caller works (and
// may use the store), and its memory stays bounded.
const (
	scanChunk = 1000
	scanBytes = 4 << 20
)

// Scan implements store.Log: a query per chunk of events, each starting
// after the last seq the previous one read.
func (s *Store) Scan(ctx context.Context, log, from, to int64) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		err := s.walk(ctx, log, from, to, func(seq int64, data []byte) error {
			e, err := decode(seq, data)
			if err != nil {
				return err
			}
			if !yield(e, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			yield(nil, err)
		}
	}
}

// errStop ends a walk whose consumer stopped.
var errStop = errors.New("stop")

// Walk implements store.Log.
func (s *Store) Walk(ctx context.Context, log, from, to int64, fn func(*event.Event) error) error {
	return s.walk(ctx, log, from, to, func(seq int64, data []byte) error {
		e, err := decode(seq, data)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

// walk calls fn with the seq and stored data of the events of log with
// from <= seq < to, in ascending seq order, and stops at fn's first error,
// which it returns. It fails with store.ErrNotFound if there is no such
// log.
func (s *Store) walk(ctx context.Context, log, from, to int64, fn func(seq int64, data []byte) error) error {
	if _, err := s.logSize(ctx, log); err != nil {
		return err
	}
	from = max(from, 0)
	var seqs []int64
	var datas [][]byte
	for from < to {
		rows, err := s.pool.Query(ctx, "SELECT seq, data FROM events WHERE log = $1 AND seq >= $2 AND seq < $3 ORDER BY seq LIMIT $4",
			log, from, to, scanChunk)
		if err != nil {
			return err
		}
		seqs, datas = seqs[:0], datas[:0]
		bytes, full := 0, false
		for rows.Next() {
			var seq int64
			var data []byte
			if err := rows.Scan(&seq, &data); err != nil {
				rows.Close()
				return err
			}
			seqs, datas = append(seqs, seq), append(datas, data)
			if bytes += len(data); bytes >= scanBytes {
				full = true
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, seq := range seqs {
			if err := fn(seq, datas[i]); err != nil {
				return err
			}
		}
		if len(seqs) < scanChunk && !full {
			return nil
		}
		from = seqs[len(seqs)-1] + 1
	}
	return nil
}

// Checkpoints implements store.Log: like Scan, a query per chunk, read
// whole before the caller sees it.
func (s *Store) Checkpoints(ctx context.Context, log int64) iter.Seq2[store.Checkpoint, error] {
	return func(yield func(store.Checkpoint, error) bool) {
		var from int64
		for {
			rows, err := s.pool.Query(ctx, "SELECT size, signed_at, note FROM checkpoints WHERE log = $1 AND size >= $2 ORDER BY size LIMIT $3",
				log, from, scanChunk)
			if err != nil {
				yield(store.Checkpoint{}, err)
				return
			}
			cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Checkpoint, error) { return scanCheckpoint(r) })
			if err != nil {
				yield(store.Checkpoint{}, err)
				return
			}
			for _, c := range cs {
				if !yield(c, nil) {
					return
				}
			}
			if len(cs) < scanChunk {
				return
			}
			from = cs[len(cs)-1].Size + 1
		}
	}
}

func scanCheckpoint(row pgx.Row) (store.Checkpoint, error) {
	var c store.Checkpoint
	var signed int64
	err := row.Scan(&c.Size, &signed, &c.Note)
	c.SignedAt = fromNanos(signed)
	return c, err
}

// CheckpointAt implements store.Log.
func (s *Store) CheckpointAt(ctx context.Context, log, size int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, "SELECT size, signed_at, note FROM checkpoints WHERE log = $1 AND size = $2", log, size))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("checkpoint of size %d: %w", size, store.ErrNotFound)
	}
	return c, err
}
