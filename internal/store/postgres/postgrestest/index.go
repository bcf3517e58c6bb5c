package postgrestest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// eventColumns are the event_fields columns of the indexes that file each
// event under one value, with what a column holds when the event is filed
// under no value of that index: a search never matches it, and the
// store's Postings leaves it out.
var eventColumns = map[store.Index]struct{ col, none string }{
	store.IndexAction:  {"action", ""},
	store.IndexOutcome: {"outcome", string(event.Success)},
	store.IndexActor:   {"actor", ""},
	store.IndexIP:      {"ip", ""},
}

// DeletePostings implements storetest.Tamperer, for any range of seqs. The
// action, outcome, actor and ip indexes are columns of an event's
// event_fields row: the event is taken out of one by setting its column
// to what files it under none ("", or success for the outcome). An
// event's first target is columns of that row too, set to "", and its
// others rows of event_targets, deleted. Words are the lexemes of
// bundle_text rows, whose positions for the events are taken out; a word
// is named as stored, which is cut to 1000 bytes.
func (tp *Tamperer) DeletePostings(ctx context.Context, log string, ix store.Index, value string, from, to int64) error {
	what := fmt.Sprintf("delete the postings of %v %q of seqs [%d, %d)", ix, value, from, to)
	return tp.write(ctx, log, func(t tx, id int64) error {
		switch ix {
		case store.IndexText:
			n, err := rewriteText(t, id, from, to, func(word string, seq int64) bool {
				return seq < from || seq >= to || value != "" && word != value
			})
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if n == 0 {
				return fmt.Errorf("%s: nothing stored to change", what)
			}
			return nil
		case store.IndexTarget:
			args := []any{id, from, to}
			first := "UPDATE event_fields SET target_type = '', target_id = '' WHERE log = $1 AND seq >= $2 AND seq < $3 AND (target_type <> '' OR target_id <> '')"
			more := "DELETE FROM event_targets WHERE log = $1 AND seq >= $2 AND seq < $3"
			if value != "" {
				first += " AND target_type = $4"
				more += " AND type = $4"
				args = append(args, value)
			}
			n, err := t.exec(first, args...)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			m, err := t.exec(more, args...)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if n+m == 0 {
				return fmt.Errorf("%s: nothing stored to change", what)
			}
			return nil
		}
		c, ok := eventColumns[ix]
		if !ok {
			return fmt.Errorf("%s: no such index", what)
		}
		q := fmt.Sprintf("UPDATE event_fields SET %[1]s = $4 WHERE log = $1 AND seq >= $2 AND seq < $3 AND %[1]s <> $4", c.col)
		args := []any{id, from, to, c.none}
		if value != "" {
			q += fmt.Sprintf(" AND %s = $5", c.col)
			args = append(args, value)
		}
		return t.change(what, q, args...)
	})
}

// AddPosting implements storetest.Tamperer. For the action, outcome,
// actor and ip indexes, which file an event under one value each, the
// events' event_fields rows are set to p.Value, which takes them out from
// under the value they had; each must have a row. Targets gain
// event_targets rows, and words a bundle_text row for each block, with
// the positions of the events.
func (tp *Tamperer) AddPosting(ctx context.Context, log string, p store.Posting) error {
	seqs := slices.Compact(slices.Sorted(slices.Values(p.Seqs)))
	what := fmt.Sprintf("file seqs %v under %v %q", seqs, p.Index, p.Value)
	if len(seqs) == 0 {
		return fmt.Errorf("%s: no seqs", what)
	}
	return tp.write(ctx, log, func(t tx, id int64) error {
		var n int64
		var err error
		switch p.Index {
		case store.IndexTarget:
			n, err = t.exec(`INSERT INTO event_targets (log, seq, type, id) SELECT $1, seq, $2, $3 FROM unnest($4::bigint[]) AS seq
				ON CONFLICT DO NOTHING`, id, p.Value, p.ID, seqs)
		case store.IndexText:
			pos := map[int64][]string{}
			var firsts []int64
			for _, seq := range seqs {
				f := textStart(seq)
				if _, ok := pos[f]; !ok {
					firsts = append(firsts, f)
				}
				pos[f] = append(pos[f], strconv.FormatInt(seq-f+1, 10))
			}
			for _, f := range firsts {
				var k int64
				k, err = t.exec("INSERT INTO bundle_text (log, first_seq, words) VALUES ($1, $2, $3::tsvector)",
					id, f, tsLexeme(p.Value)+":"+strings.Join(pos[f], ","))
				if n += k; err != nil {
					break
				}
			}
		default:
			c, ok := eventColumns[p.Index]
			if !ok {
				return fmt.Errorf("%s: no such index", what)
			}
			n, err = t.exec(fmt.Sprintf("UPDATE event_fields SET %s = $1 WHERE log = $2 AND seq = ANY($3::bigint[])", c.col), p.Value, id, seqs)
			if err == nil && n != int64(len(seqs)) {
				return fmt.Errorf("%s: %d of the seqs have an event_fields row", what, n)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: every one is filed there already", what)
		}
		return nil
	})
}

// EditCounts implements storetest.Tamperer: every field of a count is
// stored.
func (tp *Tamperer) EditCounts(ctx context.Context, log string, edit func(*store.CountRow) bool) error {
	return tp.write(ctx, log, func(t tx, id int64) error {
		rows, err := t.Query(ctx, "SELECT dim, span, hour, value, total, failure, denied, error FROM counts WHERE log = $1 ORDER BY dim, span, hour, value", id)
		if err != nil {
			return err
		}
		rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.CountRow, error) {
			var c store.CountRow
			var dim, span int16
			err := r.Scan(&dim, &span, &c.Hour, &c.Value, &c.Total, &c.Failure, &c.Denied, &c.Error)
			c.Dim, c.Span = store.CountDim(dim), store.Span(span)
			return c, err
		})
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("log %q has no counts", log)
		}
		for _, r := range rs {
			key := []any{id, int16(r.Dim), int16(r.Span), r.Hour, r.Value}
			c := r
			if !edit(&c) {
				_, err = t.exec("DELETE FROM counts WHERE log = $1 AND dim = $2 AND span = $3 AND hour = $4 AND value = $5", key...)
			} else if c != r {
				_, err = t.exec(`UPDATE counts SET dim = $6, span = $7, hour = $8, value = $9, total = $10, failure = $11, denied = $12, error = $13
					WHERE log = $1 AND dim = $2 AND span = $3 AND hour = $4 AND value = $5`,
					append(key, int16(c.Dim), int16(c.Span), c.Hour, c.Value, c.Total, c.Failure, c.Denied, c.Error)...)
			}
			if err != nil {
				return fmt.Errorf("count %+v: %w", r.CountKey, err)
			}
		}
		return nil
	})
}
