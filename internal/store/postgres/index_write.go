package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// writeIndexes writes, in tx, the search index rows and the counts of the
// events of batches (0003_indexes.sql), which Commit has just stored in
// tx: so the indexes and counts commit with the events, and always cover
// exactly the logs' sizes. The rows are sent by COPY, and the counts
// summed in Go first and upserted in one statement, a row per distinct
// key.
func writeIndexes(ctx context.Context, tx pgx.Tx, batches []store.Batch) error {
	var ix, targets, words [][]any
	counts := map[countKey]store.Counts{}
	for _, b := range batches {
		for _, e := range b.Events {
			ix = append(ix, []any{b.Log, e.Seq, nanos(e.ReceivedAt), e.Action, string(e.Outcome), e.Actor.ID, e.Source.IP})
			var seen []event.Target
			for _, t := range e.Targets {
				t := event.Target{Type: t.Type, ID: t.ID}
				if !slices.Contains(seen, t) {
					seen = append(seen, t)
					targets = append(targets, []any{b.Log, t.Type, t.ID, e.Seq})
				}
			}
			var cut []string
			for _, w := range strings.Fields(derive.Text(e)) {
				if w = cutWord(w, maxWord); !slices.Contains(cut, w) {
					cut = append(cut, w)
					words = append(words, []any{b.Log, w, e.Seq})
				}
			}
			c := derive.Tally(e)
			add := func(k store.CountKey) {
				ck := countKey{b.Log, k}
				v := counts[ck]
				v.Add(c)
				counts[ck] = v
			}
			derive.Counts(e, add)
			// The count of an action over all time is of events alone
			// (derive.ActionCount): Actions reads no outcome.
			c = store.Counts{Total: 1}
			add(derive.ActionCount(e))
		}
	}
	if len(ix) == 0 {
		return nil
	}
	for _, t := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"event_index", []string{"log", "seq", "received_at", "action", "outcome", "actor", "ip"}, ix},
		{"event_targets", []string{"log", "type", "id", "seq"}, targets},
		{"event_words", []string{"log", "word", "seq"}, words},
	} {
		if len(t.rows) == 0 {
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.table}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return fmt.Errorf("index: %s: %w", t.table, err)
		}
	}
	return upsertCounts(ctx, tx, counts)
}

// countKey is a store.CountKey of one log.
type countKey struct {
	log int64
	store.CountKey
}

// upsertCounts adds counts to the stored ones, in one statement. The keys
// go in a fixed order, so that two commits adding to the same counts
// (which the logs' locks already keep apart) could not deadlock.
func upsertCounts(ctx context.Context, tx pgx.Tx, counts map[countKey]store.Counts) error {
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.log, b.log), cmp.Compare(a.Dim, b.Dim), cmp.Compare(a.Span, b.Span),
			cmp.Compare(a.Hour, b.Hour), cmp.Compare(a.Value, b.Value))
	})
	n := len(keys)
	logs, hours := make([]int64, n), make([]int64, n)
	dims, spans := make([]int16, n), make([]int16, n)
	values := make([]string, n)
	total, failure, denied, errs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, k := range keys {
		c := counts[k]
		logs[i], dims[i], spans[i], hours[i], values[i] = k.log, int16(k.Dim), int16(k.Span), k.Hour, k.Value
		total[i], failure[i], denied[i], errs[i] = c.Total, c.Failure, c.Denied, c.Error
	}
	_, err := tx.Exec(ctx, `INSERT INTO counts (log, dim, span, hour, value, total, failure, denied, error)
		SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::smallint[], $4::bigint[], $5::text[],
			$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
		ON CONFLICT (log, dim, span, hour, value) DO UPDATE SET
			total = counts.total + excluded.total, failure = counts.failure + excluded.failure,
			denied = counts.denied + excluded.denied, error = counts.error + excluded.error`,
		logs, dims, spans, hours, values, total, failure, denied, errs)
	if err != nil {
		return fmt.Errorf("index: counts: %w", err)
	}
	return nil
}

// maxWord is how many bytes of a word event_words keeps: a btree index
// entry must fit in a third of a page, and free text may hold longer
// words (a reason, metadata). Search filters the events found through a
// cut word again by their text.
const maxWord = 1000

// cutWord returns w cut to at most n bytes, at a rune boundary.
func cutWord(w string, n int) string {
	if len(w) <= n {
		return w
	}
	for n > 0 && !utf8.RuneStart(w[n]) {
		n--
	}
	return w[:n]
}
