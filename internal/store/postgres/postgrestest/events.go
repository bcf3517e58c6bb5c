package postgrestest

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// EditEvents implements storetest.Tamperer: the events table's rows in
// the range are deleted and the events edit returns stored, each as its
// canonical form at its seq, in place of any row there. A row that does
// not decode fails it, changing nothing.
func (tp *Tamperer) EditEvents(ctx context.Context, log string, from, to int64, edit func([]*event.Event) []*event.Event) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		rows, err := t.Query(ctx, "SELECT seq, data FROM events WHERE log = $1 AND seq >= $2 AND seq < $3 ORDER BY seq", id, from, to)
		if err != nil {
			return err
		}
		var in []*event.Event
		var seq int64
		var data []byte
		_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
			e, err := event.DecodeStored(data)
			if err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			in = append(in, &e)
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := t.exec("DELETE FROM events WHERE log = $1 AND seq >= $2 AND seq < $3", id, from, to); err != nil {
			return err
		}
		seen := map[int64]bool{}
		for _, e := range edit(in) {
			if seen[e.Seq] {
				return fmt.Errorf("edit returned two events at seq %d", e.Seq)
			}
			seen[e.Seq] = true
			_, err := t.exec(`INSERT INTO events (log, seq, data) VALUES ($1, $2, $3)
				ON CONFLICT (log, seq) DO UPDATE SET data = excluded.data`, id, e.Seq, canon.Append(nil, e))
			if err != nil {
				return fmt.Errorf("seq %d: %w", e.Seq, err)
			}
		}
		return nil
	})
}

// record reads the stored data of event seq.
func record(t tx, id, seq int64) ([]byte, error) {
	var data []byte
	err := t.QueryRow(t.ctx, "SELECT data FROM events WHERE log = $1 AND seq = $2", id, seq).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no stored event at seq %d", seq)
	}
	return data, err
}

// EditRecord implements storetest.Tamperer: an event's record is its row.
func (tp *Tamperer) EditRecord(ctx context.Context, log string, seq int64, edit func([]byte) []byte) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		data, err := record(t, id, seq)
		if err != nil {
			return err
		}
		_, err = t.exec("UPDATE events SET data = $1 WHERE log = $2 AND seq = $3", edit(data), id, seq)
		return err
	})
}

// CopyRecord implements storetest.Tamperer: the row of event from is
// stored at seq to, in place of any row there.
func (tp *Tamperer) CopyRecord(ctx context.Context, log string, from, to int64) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		data, err := record(t, id, from)
		if err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO events (log, seq, data) VALUES ($1, $2, $3)
			ON CONFLICT (log, seq) DO UPDATE SET data = excluded.data`, id, to, data)
		return err
	})
}

// BreakEvent implements storetest.Tamperer: the record loses its closing
// brace, so it is no longer JSON.
func (tp *Tamperer) BreakEvent(ctx context.Context, log string, seq int64) error {
	_, _, err := tp.damage(ctx, log, seq, func(data []byte) ([]byte, error) {
		return cutBrace(data)
	})
	return err
}

// cutBrace returns data without its last byte, which must be the closing
// brace of a JSON object.
func cutBrace(data []byte) ([]byte, error) {
	if !bytes.HasSuffix(data, []byte("}")) {
		return nil, errors.New("the record does not end in '}'")
	}
	return data[:len(data)-1], nil
}

// Damages implements storetest.Tamperer. A record is one event's
// canonical JSON: it can be cut short, name another seq, or hold another
// value in a field, which decodes.
func (tp *Tamperer) Damages() []storetest.Damage {
	damage := func(name string, decodes bool, change func([]byte) ([]byte, error)) storetest.Damage {
		return storetest.Damage{Name: name, Decodes: decodes, Apply: func(ctx context.Context, log string, near int64) (int64, int64, error) {
			return tp.damage(ctx, log, near, change)
		}}
	}
	return []storetest.Damage{
		damage("closing brace", false, cutBrace),
		damage("seq", false, func(data []byte) ([]byte, error) {
			e, err := event.DecodeStored(data)
			if err != nil {
				return nil, err
			}
			e.Seq++
			return canon.Append(nil, &e), nil
		}),
		damage("not JSON", false, func(data []byte) ([]byte, error) {
			return append([]byte{0xff}, data...), nil
		}),
		damage("actor id", true, func(data []byte) ([]byte, error) {
			e, err := event.DecodeStored(data)
			if err != nil {
				return nil, err
			}
			e.Actor.ID += "-forged"
			return canon.Append(nil, &e), nil
		}),
	}
}

// damage stores change's result in place of the record of event seq of
// the log, and returns seq twice: a record holds one event.
func (tp *Tamperer) damage(ctx context.Context, log string, seq int64, change func([]byte) ([]byte, error)) (int64, int64, error) {
	err := tp.write(ctx, log, func(t tx, id int64) error {
		data, err := record(t, id, seq)
		if err != nil {
			return err
		}
		if data, err = change(data); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		_, err = t.exec("UPDATE events SET data = $1 WHERE log = $2 AND seq = $3", data, id, seq)
		return err
	})
	return seq, seq, err
}
