package sqlitetest

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// EditEvents implements storetest.Tamperer. It rewrites every bundle that
// holds one of the events, with the events around them that share it.
func (tp *Tamperer) EditEvents(ctx context.Context, log string, from, to int64, edit func([]*event.Event) []*event.Event) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		from, to = max(from, 0), min(to, 1<<seqBits)
		lo, hi := bundleRange(id, from, to)
		keep, in, err := eventsAround(c, id, log, from, to)
		if err != nil {
			return err
		}
		if _, err := c.exec("DELETE FROM events WHERE k >= ? AND k < ?", lo, hi); err != nil {
			return err
		}
		all := append(keep, edit(in)...)
		slices.SortFunc(all, func(a, b *event.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		for len(all) > 0 {
			n := 1 // a run of consecutive seqs
			for n < len(all) && all[n].Seq == all[n-1].Seq+1 {
				n++
			}
			run := all[:n]
			all = all[n:]
			if run[0].Seq < 0 || run[len(run)-1].Seq >= 1<<seqBits {
				return fmt.Errorf("seqs %d to %d out of range", run[0].Seq, run[len(run)-1].Seq)
			}
			first, data := packBundles(run)
			for i := range first {
				if _, err := c.exec("INSERT INTO events (k, data) VALUES (?, ?)", eventKey(id, first[i]), data[i]); err != nil {
					return fmt.Errorf("seq %d: %w", first[i], err)
				}
			}
		}
		return nil
	})
}

// bundleRange is the key range [lo, hi) of the bundles that may hold
// events [from, to) of log id: the first may start up to bundleMax-1
// events early.
func bundleRange(id, from, to int64) (lo, hi int64) {
	return eventKey(id, max(0, from-bundleMax+1)), eventKey(id, 0) + to
}

// eventsAround decodes the bundles that may hold events [from, to) of the
// log id named name, and returns their events in seq order: those in the
// range, and those outside it that share a bundle with them.
func eventsAround(c conn, id int64, name string, from, to int64) (out, in []*event.Event, err error) {
	lo, hi := bundleRange(id, from, to)
	rows, err := c.QueryContext(c.ctx, "SELECT k, data FROM events WHERE k >= ? AND k < ? ORDER BY k", lo, hi)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var data []byte
		if err := rows.Scan(&k, &data); err != nil {
			return nil, nil, err
		}
		evs, err := decodeBundle(name, k-eventKey(id, 0), data)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range evs {
			if e.Seq >= from && e.Seq < to {
				in = append(in, e)
			} else {
				out = append(out, e)
			}
		}
	}
	return out, in, rows.Err()
}

// holding returns the key and data of the bundle that holds event seq of
// log id: the last one stored at or before it.
func holding(c conn, id, seq int64) (k, first int64, data []byte, err error) {
	err = c.queryRow("SELECT k, data FROM events WHERE k >= ? AND k <= ? ORDER BY k DESC LIMIT 1",
		eventKey(id, 0), eventKey(id, seq)).Scan(&k, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil, fmt.Errorf("no stored event at or before seq %d", seq)
	}
	return k, k - eventKey(id, 0), data, err
}

// EditRecord implements storetest.Tamperer: the record is the bundle that
// holds the event.
func (tp *Tamperer) EditRecord(ctx context.Context, log string, seq int64, edit func([]byte) []byte) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		k, _, data, err := holding(c, id, seq)
		if err != nil {
			return err
		}
		_, err = c.exec("UPDATE events SET data = ? WHERE k = ?", edit(data), k)
		return err
	})
}

// CopyRecord implements storetest.Tamperer.
func (tp *Tamperer) CopyRecord(ctx context.Context, log string, from, to int64) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		k, _, _, err := holding(c, id, from)
		if err != nil {
			return err
		}
		return c.change(fmt.Sprintf("copy the bundle of seq %d to seq %d", from, to),
			"INSERT INTO events (k, data) SELECT ?, data FROM events WHERE k = ?", eventKey(id, to), k)
	})
}

// BreakEvent implements storetest.Tamperer: the event's outcome code
// becomes one no outcome has.
func (tp *Tamperer) BreakEvent(ctx context.Context, log string, seq int64) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		k, first, data, err := holding(c, id, seq)
		if err != nil {
			return err
		}
		recs, offs, err := records(data)
		if err != nil {
			return fmt.Errorf("bundle of seq %d: %w", first, err)
		}
		i := seq - first
		if i >= int64(len(recs)) {
			return fmt.Errorf("no stored event at seq %d: the bundle from seq %d holds %d", seq, first, len(recs))
		}
		data[offs[i]+outcomeAt(recs[i])] = 9
		_, err = c.exec("UPDATE events SET data = ? WHERE k = ?", data, k)
		return err
	})
}

// Damages implements storetest.Tamperer: a byte of a bundle changed, in a
// record or in the header of the bundle, where it hides where the
// bundle's events end.
func (tp *Tamperer) Damages() []storetest.Damage {
	record := func(name string, decodes bool, flip func(data []byte, rec int)) storetest.Damage {
		return storetest.Damage{Name: name, Decodes: decodes, Apply: func(ctx context.Context, log string, near int64) (int64, int64, error) {
			return tp.damage(ctx, log, near, false, flip)
		}}
	}
	header := func(name string, flip func(data []byte)) storetest.Damage {
		return storetest.Damage{Name: name, Apply: func(ctx context.Context, log string, near int64) (int64, int64, error) {
			return tp.damage(ctx, log, near, true, func(data []byte, _ int) { flip(data) })
		}}
	}
	return []storetest.Damage{
		record("outcome code", false, func(data []byte, rec int) { data[rec+outcomeAt(data[rec:])] = 9 }),
		record("field length", false, func(data []byte, rec int) {
			data[rec+outcomeAt(data[rec:])+1] = 0x7f // the actor id's length, past the record
		}),
		// received_at moves by 2^24 ns, and with it the millisecond in
		// the event's id: the id asked for no longer matches.
		record("received_at", true, func(data []byte, rec int) { data[rec+3] ^= 0x10 }),
		header("event count", func(data []byte) { data[1]-- }),
		header("format version", func(data []byte) { data[0] = 2 }),
	}
}

// damage applies flip to the bundle holding event near, at the record of
// an event in the middle of it, or its last event for damage to its
// header, and returns that event's seq and the bundle's first.
func (tp *Tamperer) damage(ctx context.Context, log string, near int64, header bool, flip func(data []byte, rec int)) (seq, first int64, err error) {
	err = tp.write(ctx, log, func(c conn, id int64) error {
		var k int64
		var data []byte
		k, first, data, err = holding(c, id, near)
		if err != nil {
			return err
		}
		recs, offs, err := records(data)
		if err != nil {
			return fmt.Errorf("bundle of seq %d: %w", first, err)
		}
		n := int64(len(recs))
		if n < 3 {
			return fmt.Errorf("the bundle holding seq %d holds %d events; want 3 or more, to damage one in the middle", near, n)
		}
		seq = first + n/2
		if header {
			seq = first + n - 1
		}
		flip(data, offs[seq-first])
		_, err = c.exec("UPDATE events SET data = ? WHERE k = ?", data, k)
		return err
	})
	if !header {
		first = seq
	}
	return seq, first, err
}
