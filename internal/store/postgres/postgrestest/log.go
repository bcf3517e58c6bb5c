package postgrestest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// RenameLog implements storetest.Tamperer.
func (tp *Tamperer) RenameLog(ctx context.Context, log, name string) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		return t.change("rename the log", "UPDATE logs SET name = $1 WHERE id = $2", name, id)
	})
}

// SetVerifierKey implements storetest.Tamperer.
func (tp *Tamperer) SetVerifierKey(ctx context.Context, log, key string) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		return t.change("set the verifier key", "UPDATE logs SET verifier_key = $1 WHERE id = $2", key, id)
	})
}

// SetSize implements storetest.Tamperer. The store's indexes and counts
// go as far as the log's size, as its commits write them with the events:
// when the size goes down, the index rows of the seqs past it are
// deleted, and the counts of the events stored there that decode are
// taken off, as a store that had committed only size events would hold
// them. Counts of events no longer stored stay, which a later check of
// the indexes reports. When the size goes up, the indexes are left as
// they are, without the events they never covered.
func (tp *Tamperer) SetSize(ctx context.Context, log string, size int64, lastReceivedAt time.Time) error {
	var last int64
	if !lastReceivedAt.IsZero() {
		last = lastReceivedAt.UnixNano()
	}
	return tp.write(ctx, log, func(t tx, id int64) error {
		var old int64
		if err := t.QueryRow(ctx, "SELECT size FROM logs WHERE id = $1", id).Scan(&old); err != nil {
			return err
		}
		if err := t.change("set the size", "UPDATE logs SET size = $1, last_received_at = $2 WHERE id = $3", size, last, id); err != nil {
			return err
		}
		if size >= old {
			return nil
		}
		for _, table := range []string{"event_fields", "event_targets"} {
			if _, err := t.exec("DELETE FROM "+table+" WHERE log = $1 AND seq >= $2", id, size); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		if _, err := t.exec("DELETE FROM bundle_text WHERE log = $1 AND first_seq >= $2", id, size); err != nil {
			return fmt.Errorf("bundle_text: %w", err)
		}
		if _, err := rewriteText(t, id, size, size+1, func(_ string, seq int64) bool { return seq < size }); err != nil {
			return fmt.Errorf("bundle_text: %w", err)
		}
		return uncount(t, id, size, old)
	})
}

// uncount takes the counts of the events of log id with from <= seq < to
// that are stored and decode off the stored counts.
func uncount(t tx, id, from, to int64) error {
	recs, _, err := records(t, id, bundleStart(from), to)
	if err != nil {
		return err
	}
	sub := map[store.CountKey]store.Counts{}
	for seq, data := range recs {
		if seq < from || seq >= to {
			continue
		}
		e, err := event.DecodeStored(data)
		if err != nil {
			continue // counted as it was: nothing says how
		}
		c := derive.Tally(&e)
		add := func(k store.CountKey) {
			v := sub[k]
			v.Add(c)
			sub[k] = v
		}
		derive.Counts(&e, add)
		c = store.Counts{Total: 1} // the count of an action over all time
		add(derive.ActionCount(&e))
	}
	for k, c := range sub {
		_, err := t.exec(`UPDATE counts SET total = total - $6, failure = failure - $7, denied = denied - $8, error = error - $9
			WHERE log = $1 AND dim = $2 AND span = $3 AND hour = $4 AND value = $5`,
			id, int16(k.Dim), int16(k.Span), k.Hour, k.Value, c.Total, c.Failure, c.Denied, c.Error)
		if err != nil {
			return fmt.Errorf("counts: %w", err)
		}
	}
	return nil
}

// EditTile implements storetest.Tamperer.
func (tp *Tamperer) EditTile(ctx context.Context, log string, level int, index int64, edit func([]byte) []byte) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		var old []byte
		err := t.QueryRow(ctx, "SELECT data FROM tiles WHERE log = $1 AND level = $2 AND idx = $3", id, level, index).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		data := edit(bytes.Clone(old))
		switch {
		case old == nil && data == nil:
			return fmt.Errorf("no tile %d/%d stored to delete", level, index)
		case data == nil:
			_, err = t.exec("DELETE FROM tiles WHERE log = $1 AND level = $2 AND idx = $3", id, level, index)
		default:
			_, err = t.exec(`INSERT INTO tiles (log, level, idx, data) VALUES ($1, $2, $3, $4)
				ON CONFLICT (log, level, idx) DO UPDATE SET data = excluded.data`, id, level, index, data)
		}
		return err
	})
}

// ReplaceTiles implements storetest.Tamperer.
func (tp *Tamperer) ReplaceTiles(ctx context.Context, log string, tiles []merkle.Tile) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		if _, err := t.exec("DELETE FROM tiles WHERE log = $1", id); err != nil {
			return err
		}
		for _, tl := range tiles {
			if _, err := t.exec("INSERT INTO tiles (log, level, idx, data) VALUES ($1, $2, $3, $4)", id, tl.Level, tl.Index, tl.Data); err != nil {
				return fmt.Errorf("tile %d/%d: %w", tl.Level, tl.Index, err)
			}
		}
		return nil
	})
}

// EditCheckpoints implements storetest.Tamperer.
func (tp *Tamperer) EditCheckpoints(ctx context.Context, log string, edit func(size int64, note []byte) []byte) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		rows, err := t.Query(ctx, "SELECT size, note FROM checkpoints WHERE log = $1 ORDER BY size", id)
		if err != nil {
			return err
		}
		type checkpoint struct {
			size int64
			note []byte
		}
		cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (checkpoint, error) {
			var c checkpoint
			err := r.Scan(&c.size, &c.note)
			return c, err
		})
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return fmt.Errorf("log %q has no checkpoint", log)
		}
		for _, c := range cs {
			switch note := edit(c.size, bytes.Clone(c.note)); {
			case note == nil:
				_, err = t.exec("DELETE FROM checkpoints WHERE log = $1 AND size = $2", id, c.size)
			case !bytes.Equal(note, c.note):
				_, err = t.exec("UPDATE checkpoints SET note = $1 WHERE log = $2 AND size = $3", note, id, c.size)
			}
			if err != nil {
				return fmt.Errorf("checkpoint %d: %w", c.size, err)
			}
		}
		return nil
	})
}
