package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// A log's state, size and Merkle tiles: what a writer resumes from and what
// proofs are built from. Commit (write.go) writes them.

// State implements store.Store. The size, the last receipt time and the
// latest checkpoint are read in one statement, so that they agree while
// another process commits; the rightmost tiles, read after them, only
// grow from where they were (Tile), and are cut to the size read.
func (s *Store) State(ctx context.Context, log int64) (store.State, error) {
	var st store.State
	var last int64
	var cSize, cSigned sql.NullInt64
	var cNote []byte
	err := s.r.QueryRowContext(ctx, `SELECT l.size, l.last_received_at, c.size, c.signed_at, c.note FROM logs l
		LEFT JOIN checkpoints c ON c.log = l.id AND c.size = (SELECT max(size) FROM checkpoints WHERE log = l.id)
		WHERE l.id = ?`, log).Scan(&st.Size, &last, &cSize, &cSigned, &cNote)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return st, err
	}
	if st.Size > 0 {
		st.LastReceivedAt = time.Unix(0, last).UTC()
	}
	if st.Size > 0 && cSize.Valid {
		st.Checkpoint = &store.Checkpoint{Size: cSize.Int64, Note: cNote, SignedAt: time.Unix(0, cSigned.Int64).UTC()}
	}
	for _, p := range merkle.RightmostTiles(st.Size) {
		data, err := s.Tile(ctx, log, p.Level, p.Index)
		if errors.Is(err, store.ErrNotFound) || err == nil && len(data) < p.Width*32 {
			// Damaged: the tiles do not cover Size.
			st.Rightmost, st.Uncovered = nil, merkle.FirstUncovered(p.Level, p.Index, len(data)/tlog.HashSize)
			break
		}
		if err != nil {
			return st, fmt.Errorf("rightmost tile %d/%d: %w", p.Level, p.Index, err)
		}
		st.Rightmost = append(st.Rightmost, merkle.Tile{Level: p.Level, Index: p.Index, Data: data[:p.Width*32]})
	}
	return st, nil
}

// Size implements store.Store: it reads the log's row, which says too how
// far the indexes go. So it is also how this store follows the commits of
// other processes (trail append beside trail serve): searches use the
// indexes as far as another process's indexer took them, and this
// store's indexer is woken for events it has not indexed, which it would
// otherwise only learn of at this store's next commit.
func (s *Store) Size(ctx context.Context, log int64) (int64, error) {
	resets := s.ix.resetCount()
	var size, indexed int64
	err := s.r.QueryRowContext(ctx, "SELECT size, indexed_size FROM logs WHERE id = ?", log).Scan(&size, &indexed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	_, known := s.names[log]
	s.mu.Unlock()
	if known {
		s.ix.learn(log, indexed, resets) // entries below it were committed with it
	}
	if size > s.ix.indexedTo(log) && s.w != nil {
		s.ix.wake()
	}
	return size, nil
}

// fullTile is the size of a full tile's data: 256 hashes.
const fullTile = tlog.HashSize << merkle.TileHeight

// Tile implements store.Store. Commits store tiles above level 0 as they
// grow, but level-0 tiles only once full: the leaf hashes of the log's
// last size%256 events would cost a page write in every commit of a few
// events. Tile computes that rightmost partial tile from the events
// instead, when the stored data (none, or narrower from a version that
// stored it) does not cover them, up to the first event missing or
// damaged.
func (s *Store) Tile(ctx context.Context, log int64, level int, index int64) ([]byte, error) {
	data, err := s.storedTile(ctx, log, level, index)
	if level != 0 || err == nil && len(data) == fullTile {
		return data, err
	}
	var size int64
	err = s.r.QueryRowContext(ctx, "SELECT size FROM logs WHERE id = ?", log).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	width := size % (1 << merkle.TileHeight)
	if index != size>>merkle.TileHeight || width == 0 {
		// Not the rightmost partial tile: past the end, damaged, or
		// completed by a commit since the read above, in the transaction
		// that moved the size past it.
		return s.storedTile(ctx, log, level, index)
	}
	if int64(len(data)) >= width*tlog.HashSize {
		return data, nil
	}
	return s.leafTile(ctx, log, index<<merkle.TileHeight, size)
}

// storedTile reads a tile's row.
func (s *Store) storedTile(ctx context.Context, log int64, level int, index int64) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, "SELECT data FROM tiles WHERE k = ?", tileKey(log, level, index)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, store.ErrNotFound)
	}
	return data, err
}

// leafTile returns the leaf hashes of events [from, to) of log, up to the
// first that is missing or damaged: a tile too narrow for the log, which
// is how a stored tile that does not cover the events shows. Events are
// decoded one by one, so that the tile ends at the damaged event, not at
// the start of its bundle.
func (s *Store) leafTile(ctx context.Context, log, from, to int64) ([]byte, error) {
	data := make([]byte, 0, (to-from)*tlog.HashSize)
	var buf []byte
	next := from
	err := s.Walk(ctx, log, from, to, func(e *event.Event) error {
		if e.Seq != next {
			return errStop
		}
		buf = canon.Append(buf[:0], e)
		h := tlog.RecordHash(buf)
		data = append(data, h[:]...)
		next++
		return nil
	})
	if err != nil && err != errStop && !errors.Is(err, store.ErrDamaged) {
		return nil, fmt.Errorf("leaf hashes of events [%d, %d): %w", from, to, err)
	}
	return data, nil
}

// errStop ends a walk at a gap in the seqs.
var errStop = errors.New("stop")
