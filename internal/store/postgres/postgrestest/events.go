package postgrestest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// EditEvents implements storetest.Tamperer: the bundles that hold events
// in the range are read, the events edit returns put in place of those in
// the range, each as its canonical form at its seq, and the bundles
// changed stored again, each whole, with an empty record for each seq in
// it without an event. A record in the range that does not decode, or a
// bundle that does not parse, fails it, changing nothing.
func (tp *Tamperer) EditEvents(ctx context.Context, log string, from, to int64, edit func([]*event.Event) []*event.Event) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		recs, old, err := records(t, id, bundleStart(max(from, 0)), to)
		if err != nil {
			return err
		}
		var in []*event.Event
		for _, seq := range slices.Sorted(maps.Keys(recs)) {
			if seq < from || seq >= to {
				continue
			}
			e, err := event.DecodeStored(recs[seq])
			if err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			in = append(in, &e)
			delete(recs, seq)
		}
		starts := slices.Clone(old)
		seen := map[int64]bool{}
		for _, e := range edit(in) {
			if seen[e.Seq] {
				return fmt.Errorf("edit returned two events at seq %d", e.Seq)
			}
			seen[e.Seq] = true
			f := bundleStart(e.Seq)
			if !slices.Contains(starts, f) {
				// A bundle not read yet: its other events stay.
				more, firsts, err := records(t, id, f, f+bundleSize)
				if err != nil {
					return err
				}
				maps.Copy(recs, more)
				starts, old = append(starts, f), append(old, firsts...)
			}
			recs[e.Seq] = canon.Append(nil, e)
		}
		for i := range starts {
			starts[i] = bundleStart(starts[i])
		}
		return writeBundles(t, id, old, starts, recs)
	})
}

// EditRecord implements storetest.Tamperer: an event's record is the
// data of the bundle that holds it.
func (tp *Tamperer) EditRecord(ctx context.Context, log string, seq int64, edit func([]byte) []byte) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		first, data, err := holding(t, id, seq)
		if err != nil {
			return err
		}
		_, err = t.exec("UPDATE event_bundles SET data = $1 WHERE log = $2 AND first_seq = $3", edit(data), id, first)
		return err
	})
}

// CopyRecord implements storetest.Tamperer: the bundle that holds event
// from is stored as the bundle whose first seq is to, in place of any
// there, even when to is not a multiple of the bundle size.
func (tp *Tamperer) CopyRecord(ctx context.Context, log string, from, to int64) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		_, data, err := holding(t, id, from)
		if err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO event_bundles (log, first_seq, data) VALUES ($1, $2, $3)
			ON CONFLICT (log, first_seq) DO UPDATE SET data = excluded.data`, id, to, data)
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

// Damages implements storetest.Tamperer. An event's record in its bundle
// is its canonical JSON: it can be cut short, name another seq, or hold
// another value in a field, which decodes; and the length before it can
// run past the end of the bundle, which hides where every event of the
// bundle ends.
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
		{Name: "record length", Apply: func(ctx context.Context, log string, near int64) (int64, int64, error) {
			var first int64
			err := tp.write(ctx, log, func(t tx, id int64) error {
				f, data, err := holding(t, id, near)
				if err != nil {
					return err
				}
				recs, err := splitBundle(data)
				if err != nil {
					return fmt.Errorf("seq %d: %w", near, err)
				}
				first = f
				i := near - f
				out := joinBundle(recs[:i])
				out = binary.AppendUvarint(out, 1<<40)
				out = append(out, joinBundle(recs[i:])...)
				_, err = t.exec("UPDATE event_bundles SET data = $1 WHERE log = $2 AND first_seq = $3", out, id, f)
				return err
			})
			return near, first, err
		}},
	}
}

// damage stores change's result in place of the record of event seq of
// the log in its bundle, and returns seq twice: the other records of the
// bundle are left as they are.
func (tp *Tamperer) damage(ctx context.Context, log string, seq int64, change func([]byte) ([]byte, error)) (int64, int64, error) {
	err := tp.write(ctx, log, func(t tx, id int64) error {
		first, data, err := holding(t, id, seq)
		if err != nil {
			return err
		}
		recs, err := splitBundle(data)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if recs[seq-first], err = change(recs[seq-first]); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		_, err = t.exec("UPDATE event_bundles SET data = $1 WHERE log = $2 AND first_seq = $3", joinBundle(recs), id, first)
		return err
	})
	return seq, seq, err
}
