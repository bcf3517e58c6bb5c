package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// stateQuery reads, in one statement and so from one snapshot, a log's
// size, last receipt time and latest checkpoint, and the tile stored at
// each level where merkle.RightmostTiles puts the rightmost tile for that
// size: a row per level the tree has (at least one row), with a NULL
// tile where none is stored. Each tile is one lookup of the tiles' key
// (LATERAL): a join let the planner hash the log's every tile, a read
// that grew with the log.
const stateQuery = `SELECT l.size, l.last_received_at, c.size, c.signed_at, c.note, lv.level, t.data
	FROM logs l
	LEFT JOIN LATERAL (SELECT size, signed_at, note FROM checkpoints WHERE log = l.id ORDER BY size DESC LIMIT 1) c ON true
	LEFT JOIN LATERAL (SELECT level FROM generate_series(0, 7) AS level WHERE l.size >> (8 * level) > 0) lv ON true
	LEFT JOIN LATERAL (SELECT data FROM tiles WHERE log = l.id AND level = lv.level AND idx = ((l.size >> (8 * lv.level)) - 1) >> 8 LIMIT 1) t ON true
	WHERE l.id = $1
	ORDER BY lv.level`

// movedStateQuery is stateQuery, but reads nothing when the log's size
// is $2.
var movedStateQuery = strings.Replace(stateQuery, "WHERE l.id = $1", "WHERE l.id = $1 AND l.size <> $2", 1)

// State implements store.Log. One statement reads everything, so the
// size, the checkpoint and the rightmost tiles agree while other Stores
// commit. Rightmost is nil if a stored tile is missing or too narrow for
// the size.
func (s *Store) State(ctx context.Context, log int64) (store.State, error) {
	rows, err := s.pool.Query(ctx, stateQuery, log)
	if err != nil {
		return store.State{}, s.explain(ctx, err)
	}
	st, err := s.scanState(ctx, log, rows)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		err = s.explain(ctx, err)
	}
	return st, err
}

// scanState reads the rows of stateQuery for log, and closes them.
func (s *Store) scanState(ctx context.Context, log int64, rows pgx.Rows) (store.State, error) {
	defer rows.Close()
	var st store.State
	var last int64
	var cSize, cSigned, level *int64
	var cNote, data []byte
	tiles := map[int64][]byte{}
	n := 0
	for rows.Next() {
		if err := rows.Scan(&st.Size, &last, &cSize, &cSigned, &cNote, &level, &data); err != nil {
			return store.State{}, err
		}
		if level != nil && data != nil {
			tiles[*level] = data
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return store.State{}, err
	}
	if n == 0 {
		return store.State{}, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if st.Size > 0 {
		st.LastReceivedAt = fromNanos(last)
		if cSize != nil {
			st.Checkpoint = &store.Checkpoint{Size: *cSize, Note: cNote, SignedAt: fromNanos(*cSigned)}
		}
	}
	for _, p := range merkle.RightmostTiles(st.Size) {
		data := tiles[int64(p.Level)]
		if p.Level == 0 && len(data) < p.Width*tlog.HashSize {
			// The events below Size are never rewritten: their leaf
			// hashes are those of the snapshot read above.
			var err error
			if data, err = s.leafTile(ctx, log, p.Index<<merkle.TileHeight, st.Size); err != nil {
				return store.State{}, err
			}
		}
		if len(data) < p.Width*tlog.HashSize {
			// Damaged: the tiles do not cover Size.
			st.Rightmost, st.Uncovered = nil, merkle.FirstUncovered(p.Level, p.Index, len(data)/tlog.HashSize)
			break
		}
		st.Rightmost = append(st.Rightmost, merkle.Tile{Level: p.Level, Index: p.Index, Data: data[:p.Width*tlog.HashSize]})
	}
	return st, nil
}

// Size implements store.Log: one read of the log's row, which a commit in
// progress does not block (it locks the row, but readers see the version
// before it).
func (s *Store) Size(ctx context.Context, log int64) (int64, error) {
	return s.logSize(ctx, log)
}

// Tile implements store.Log. Every tile a commit changed is stored,
// partial ones included, so a tile is one row. The rightmost partial
// level-0 tile is computed from the events when its row is missing or too
// narrow for the log (a database restored or edited without it), up to
// the first event missing or damaged, as State does: it holds nothing
// but the events' leaf hashes.
func (s *Store) Tile(ctx context.Context, log int64, level int, index int64) ([]byte, error) {
	data, err := s.storedTile(ctx, log, level, index)
	if level != 0 || err == nil && len(data) == tlog.HashSize<<merkle.TileHeight {
		return data, err
	}
	size, serr := s.logSize(ctx, log)
	if serr != nil {
		return nil, serr
	}
	width := size % (1 << merkle.TileHeight)
	if index != size>>merkle.TileHeight || width == 0 || int64(len(data)) >= width*tlog.HashSize {
		// Not the rightmost partial tile (past the end, or completed
		// since the read above), or the stored one covers the log.
		return s.storedTile(ctx, log, level, index)
	}
	return s.leafTile(ctx, log, index<<merkle.TileHeight, size)
}

// storedTile reads a tile's row.
func (s *Store) storedTile(ctx context.Context, log int64, level int, index int64) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, "SELECT data FROM tiles WHERE log = $1 AND level = $2 AND idx = $3", log, level, index).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, store.ErrNotFound)
	}
	return data, err
}

// leafTile returns the leaf hashes of events [from, to) of log, the
// hashes of their stored canonical forms, up to the first that is missing
// or damaged: a tile too narrow for the log, which is how a stored tile
// that does not cover the events shows.
func (s *Store) leafTile(ctx context.Context, log, from, to int64) ([]byte, error) {
	out := make([]byte, 0, (to-from)*tlog.HashSize)
	next := from
	err := s.walk(ctx, log, from, to, func(seq int64, data []byte) error {
		if seq != next {
			return errStop
		}
		if _, err := decode(seq, data); err != nil {
			return errStop
		}
		h := tlog.RecordHash(data)
		out = append(out, h[:]...)
		next++
		return nil
	})
	if err != nil && err != errStop {
		return nil, fmt.Errorf("leaf hashes of events [%d, %d): %w", from, to, err)
	}
	return out, nil
}
