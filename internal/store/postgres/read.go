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

// Get implements store.Log: it reads the bundle that holds seq, the
// row with the greatest first_seq at or below it.
func (s *Store) Get(ctx context.Context, log, seq int64) (*event.Event, error) {
	var first int64
	var data []byte
	err := s.pool.QueryRow(ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq <= $2 ORDER BY first_seq DESC LIMIT 1",
		log, seq).Scan(&first, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	recs, err := splitBundle(data)
	if err != nil {
		return nil, framingDamage(seq)
	}
	if i := seq - first; i >= int64(len(recs)) || len(recs[i]) == 0 {
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	return decode(seq, recs[seq-first])
}

// A query of Scan and Walk reads up to scanChunk bundles, and stops early
// once it has read scanBytes of them: a chunk is read whole, and its
// connection given back to the pool, before the caller sees its events, so
// a scan holds no connection or transaction while the caller works (and
// may use the store), and its memory stays bounded.
const (
	scanChunk = 64
	scanBytes = 4 << 20
)

// Scan implements store.Log: a query per chunk of bundles, each starting
// after the last bundle the previous one read.
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

// walk calls fn with the seq and stored record of the events of log with
// from <= seq < to, in ascending seq order, and stops at fn's first error,
// which it returns. Missing events are left out. A bundle whose records
// do not parse fails it with a *store.DamagedError at the first seq it
// would have given of that bundle. It fails with store.ErrNotFound if
// there is no such log.
func (s *Store) walk(ctx context.Context, log, from, to int64, fn func(seq int64, data []byte) error) error {
	if _, err := s.logSize(ctx, log); err != nil {
		return err
	}
	return walkBundles(ctx, s.pool, log, from, to, fn)
}

// querier is what walkBundles reads with: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// walkBundles is walk without the check that the log exists, reading
// with q.
func walkBundles(ctx context.Context, q querier, log, from, to int64, fn func(seq int64, data []byte) error) error {
	from = max(from, 0)
	lo := bundleStart(from)
	next := from // the first seq not yet given to fn
	type bundle struct {
		first int64
		data  []byte
	}
	var bs []bundle
	for lo < to {
		rows, err := q.Query(ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq >= $2 AND first_seq < $3 ORDER BY first_seq LIMIT $4",
			log, lo, to, scanChunk)
		if err != nil {
			return err
		}
		bs = bs[:0]
		bytes, full := 0, false
		for rows.Next() {
			var b bundle
			if err := rows.Scan(&b.first, &b.data); err != nil {
				rows.Close()
				return err
			}
			bs = append(bs, b)
			if bytes += len(b.data); bytes >= scanBytes {
				full = true
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, b := range bs {
			recs, err := splitBundle(b.data)
			if err != nil {
				return framingDamage(max(b.first, next))
			}
			for i, rec := range recs {
				seq := b.first + int64(i)
				if seq < next || len(rec) == 0 {
					continue
				}
				if seq >= to {
					break
				}
				if err := fn(seq, rec); err != nil {
					return err
				}
				next = seq + 1
			}
		}
		if len(bs) < scanChunk && !full {
			return nil
		}
		lo = bs[len(bs)-1].first + 1
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
