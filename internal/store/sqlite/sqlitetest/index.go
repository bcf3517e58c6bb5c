package sqlitetest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The segment-keyed index tables, by store.Index, with the columns they
// file a value under. A segment's lists are in these tables once it is
// complete, and until then in posting_tail, whose t is the store.Index.
var postingTables = map[store.Index]struct{ table, value, id string }{
	store.IndexAction:  {"by_action", "action", ""},
	store.IndexOutcome: {"by_outcome", "outcome", ""},
	store.IndexActor:   {"by_actor", "actor_id", ""},
	store.IndexIP:      {"by_ip", "ip", ""},
	store.IndexTarget:  {"by_target", "type", "id"},
}

// indexValue is value as the index stores it: an outcome by its code.
func indexValue(ix store.Index, value string) (any, error) {
	if ix != store.IndexOutcome || value == "" {
		return value, nil
	}
	code := slices.Index(outcomes, event.Outcome(value))
	if code <= 0 {
		return nil, fmt.Errorf("the outcome index holds no value %q", value)
	}
	return code, nil
}

// DeletePostings implements storetest.Tamperer. Outside the free-text
// index it deletes whole segments of 16384 events: from must be the first
// seq of one, to the first of another or the log's size or more. Under one
// value it can only delete from complete segments, whose lists are kept
// by value; an incomplete segment's lists are kept together in the posting
// tail, which it deletes under every value only.
func (tp *Tamperer) DeletePostings(ctx context.Context, log string, ix store.Index, value string, from, to int64) error {
	if ix == store.IndexText {
		return tp.deleteWords(ctx, log, value, from, to)
	}
	tbl, ok := postingTables[ix]
	if !ok {
		return fmt.Errorf("no index %v", ix)
	}
	v, err := indexValue(ix, value)
	if err != nil {
		return err
	}
	return tp.write(ctx, log, func(c conn, id int64) error {
		var size int64
		if err := c.queryRow("SELECT size FROM logs WHERE id = ?", id).Scan(&size); err != nil {
			return err
		}
		const seg = 1 << segBits
		if from < 0 || from%seg != 0 || to%seg != 0 && to < size {
			return fmt.Errorf("sqlitetest deletes postings by whole segments of %d events: [%d, %d) is not", seg, from, to)
		}
		lo, hi := eventKey(id, from)>>segBits, (eventKey(id, 0)+min(to, 1<<seqBits)+seg-1)>>segBits
		what := fmt.Sprintf("postings of %v %q of seqs [%d, %d)", ix, value, from, to)
		var n int64
		if value == "" {
			for _, q := range []string{
				"DELETE FROM " + tbl.table + " WHERE seg >= ? AND seg < ?",
				fmt.Sprintf("DELETE FROM posting_tail WHERE seg >= ? AND seg < ? AND t = %d", ix),
			} {
				res, err := c.exec(q, lo, hi)
				if err != nil {
					return fmt.Errorf("delete %s: %w", what, err)
				}
				m, _ := res.RowsAffected()
				n += m
			}
		} else {
			var tail int64
			if err := c.queryRow("SELECT count(*) FROM posting_tail WHERE seg >= ? AND seg < ? AND t = ?", lo, hi, int(ix)).Scan(&tail); err != nil {
				return err
			}
			if tail > 0 {
				return fmt.Errorf("delete %s: an incomplete segment's postings are kept together, in the posting tail: delete them under every value", what)
			}
			res, err := c.exec("DELETE FROM "+tbl.table+" WHERE seg >= ? AND seg < ? AND "+tbl.value+" = ?", lo, hi, v)
			if err != nil {
				return fmt.Errorf("delete %s: %w", what, err)
			}
			n, _ = res.RowsAffected()
		}
		if n == 0 {
			return fmt.Errorf("delete %s: none stored", what)
		}
		return nil
	})
}

// deleteWords deletes the free-text index's entries of the indexed events
// in [from, to): all their words, or the word value alone.
func (tp *Tamperer) deleteWords(ctx context.Context, log, value string, from, to int64) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		_, docs, err := eventsAround(c, id, log, max(from, 0), min(to, 1<<seqBits))
		if err != nil {
			return err
		}
		var indexed int64
		if err := c.queryRow("SELECT indexed_size FROM logs WHERE id = ?", id).Scan(&indexed); err != nil {
			return err
		}
		n := 0
		for _, e := range docs {
			if e.Seq >= indexed {
				break // not in the index; deleting it there would damage the index
			}
			text := derive.Text(e)
			words := strings.Fields(text)
			if value != "" && !slices.Contains(words, value) {
				continue
			}
			k := eventKey(id, e.Seq)
			if _, err := c.exec("INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)", k, text); err != nil {
				return err
			}
			if value != "" {
				rest := strings.Join(slices.DeleteFunc(words, func(w string) bool { return w == value }), " ")
				if _, err := c.exec("INSERT INTO events_fts (rowid, text) VALUES (?, ?)", k, rest); err != nil {
					return err
				}
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("no indexed event of seqs [%d, %d) holds %q", from, to, value)
		}
		return nil
	})
}

// AddPosting implements storetest.Tamperer. Outside the free-text index
// the entries go into the index tables, as a complete segment's do.
func (tp *Tamperer) AddPosting(ctx context.Context, log string, p store.Posting) error {
	if len(p.Seqs) == 0 {
		return fmt.Errorf("no seqs to file under %v %q", p.Index, p.Value)
	}
	return tp.write(ctx, log, func(c conn, id int64) error {
		// The text index files k under the words of its text; the index
		// tables under (seg, value[, id], k), with no later seqs (ks).
		query, values := "INSERT INTO events_fts (rowid, text) VALUES (?, ?)", []any(nil)
		if p.Index != store.IndexText {
			tbl, ok := postingTables[p.Index]
			if !ok {
				return fmt.Errorf("no index %v", p.Index)
			}
			v, err := indexValue(p.Index, p.Value)
			if err != nil {
				return err
			}
			query, values = "INSERT INTO "+tbl.table+" (seg, "+tbl.value+", k, ks) VALUES (?, ?, ?, NULL)", []any{v}
			if tbl.id != "" {
				query, values = "INSERT INTO "+tbl.table+" (seg, "+tbl.value+", "+tbl.id+", k, ks) VALUES (?, ?, ?, ?, NULL)", []any{v, p.ID}
			}
		}
		for _, seq := range p.Seqs {
			k := eventKey(id, seq)
			args := []any{k, p.Value}
			if p.Index != store.IndexText {
				args = append(append([]any{k >> segBits}, values...), k)
			}
			if _, err := c.exec(query, args...); err != nil {
				return fmt.Errorf("file seq %d under %v %q: %w", seq, p.Index, p.Value, err)
			}
		}
		return nil
	})
}

// Rollup dims (the rollup table's dim): store.CountDim, plus byDay for
// the counts by UTC day.
const byDay = 4

// EditCounts implements storetest.Tamperer over the rollup table (SpanHour
// and SpanDay counts) and the actions table (SpanAll, Total only).
func (tp *Tamperer) EditCounts(ctx context.Context, log string, edit func(*store.CountRow) bool) error {
	return tp.write(ctx, log, func(c conn, id int64) error {
		var rows []store.CountRow
		rs, err := c.QueryContext(c.ctx, "SELECT dim, hour, value, n_total, n_failure, n_denied, n_error FROM rollup WHERE log = ?", id)
		if err != nil {
			return err
		}
		for rs.Next() {
			var r store.CountRow
			var dim int
			if err := rs.Scan(&dim, &r.Hour, &r.Value, &r.Total, &r.Failure, &r.Denied, &r.Error); err != nil {
				rs.Close()
				return err
			}
			r.Dim, r.Span = store.CountDim(dim), store.SpanHour
			if dim >= byDay {
				r.Dim, r.Span = store.CountDim(dim-byDay), store.SpanDay
			}
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		rs, err = c.QueryContext(c.ctx, "SELECT action, count FROM actions WHERE log = ?", id)
		if err != nil {
			return err
		}
		for rs.Next() {
			r := store.CountRow{CountKey: store.CountKey{Dim: store.CountAction, Span: store.SpanAll}}
			if err := rs.Scan(&r.Value, &r.Total); err != nil {
				rs.Close()
				return err
			}
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("log %q has no counts", log)
		}
		for _, old := range rows {
			r := old
			keep := edit(&r)
			if keep && r == old {
				continue
			}
			if old.Span == store.SpanAll {
				if keep {
					_, err = c.exec("UPDATE actions SET count = ? WHERE log = ? AND action = ?", r.Total, id, old.Value)
				} else {
					_, err = c.exec("DELETE FROM actions WHERE log = ? AND action = ?", id, old.Value)
				}
			} else {
				dim := int(old.Dim)
				if old.Span == store.SpanDay {
					dim += byDay
				}
				if keep {
					_, err = c.exec("UPDATE rollup SET n_total = ?, n_failure = ?, n_denied = ?, n_error = ? WHERE log = ? AND dim = ? AND hour = ? AND value = ?",
						r.Total, r.Failure, r.Denied, r.Error, id, dim, old.Hour, old.Value)
				} else {
					_, err = c.exec("DELETE FROM rollup WHERE log = ? AND dim = ? AND hour = ? AND value = ?", id, dim, old.Hour, old.Value)
				}
			}
			if err != nil {
				return fmt.Errorf("count %+v: %w", old.CountKey, err)
			}
		}
		return nil
	})
}
