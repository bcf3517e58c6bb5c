package sqlitetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/internal/merkle"
)

// SetSize implements storetest.Tamperer. The watermarks of the indexes
// (posted_size, indexed_size) and counts (rolled_size) are lowered to
// size where they were past it.
func (tp *Tamperer) SetSize(ctx context.Context, log string, size int64, lastReceivedAt time.Time) error {
	var last int64
	if !lastReceivedAt.IsZero() {
		last = lastReceivedAt.UnixNano()
	}
	return tp.write(ctx, log, func(c conn, id int64) error {
		return c.change("set the size", `UPDATE logs SET size = ?1, last_received_at = ?2, indexed_size = min(indexed_size, ?1),
			rolled_size = min(rolled_size, ?1), posted_size = min(posted_size, ?1) WHERE id = ?3`, size, last, id)
	})
}

// RenameLog implements storetest.Tamperer.
func (tp *Tamperer) RenameLog(ctx context.Context, log, name string) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		return c.change("rename the log", "UPDATE logs SET name = ?1 WHERE id = ?2", name, id)
	})
}

// SetVerifierKey implements storetest.Tamperer.
func (tp *Tamperer) SetVerifierKey(ctx context.Context, log, key string) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		return c.change("set the verifier key", "UPDATE logs SET verifier_key = ?1 WHERE id = ?2", key, id)
	})
}

// EditTile implements storetest.Tamperer.
func (tp *Tamperer) EditTile(ctx context.Context, log string, level int, index int64, edit func([]byte) []byte) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		k := tileKey(id, level, index)
		var old []byte
		err := c.queryRow("SELECT data FROM tiles WHERE k = ?", k).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		data := edit(bytes.Clone(old))
		switch {
		case old == nil && data == nil:
			return fmt.Errorf("no tile %d/%d stored to delete", level, index)
		case data == nil:
			_, err = c.exec("DELETE FROM tiles WHERE k = ?", k)
		case old == nil:
			_, err = c.exec("INSERT INTO tiles (k, data) VALUES (?, ?)", k, data)
		default:
			_, err = c.exec("UPDATE tiles SET data = ? WHERE k = ?", data, k)
		}
		return err
	})
}

// ReplaceTiles implements storetest.Tamperer.
func (tp *Tamperer) ReplaceTiles(ctx context.Context, log string, tiles []merkle.Tile) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		if _, err := c.exec("DELETE FROM tiles WHERE k >= ? AND k < ?", tileKey(id, 0, 0), tileKey(id+1, 0, 0)); err != nil {
			return err
		}
		for _, t := range tiles {
			if _, err := c.exec("INSERT INTO tiles (k, data) VALUES (?, ?)", tileKey(id, t.Level, t.Index), t.Data); err != nil {
				return fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, err)
			}
		}
		return nil
	})
}

// EditCheckpoints implements storetest.Tamperer.
func (tp *Tamperer) EditCheckpoints(ctx context.Context, log string, edit func(size int64, note []byte) []byte) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		rows, err := c.QueryContext(c.ctx, "SELECT size, note FROM checkpoints WHERE log = ? ORDER BY size", id)
		if err != nil {
			return err
		}
		type checkpoint struct {
			size int64
			note []byte
		}
		var cs []checkpoint
		for rows.Next() {
			var cp checkpoint
			if err := rows.Scan(&cp.size, &cp.note); err != nil {
				rows.Close()
				return err
			}
			cs = append(cs, cp)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(cs) == 0 {
			return fmt.Errorf("log %q has no checkpoint", log)
		}
		for _, cp := range cs {
			switch note := edit(cp.size, bytes.Clone(cp.note)); {
			case note == nil:
				_, err = c.exec("DELETE FROM checkpoints WHERE log = ? AND size = ?", id, cp.size)
			case !bytes.Equal(note, cp.note):
				_, err = c.exec("UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", note, id, cp.size)
			}
			if err != nil {
				return fmt.Errorf("checkpoint %d: %w", cp.size, err)
			}
		}
		return nil
	})
}
