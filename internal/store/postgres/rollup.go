package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// Rollup implements store.Indexes, from the counts table, which the
// indexer adds the committed events to (indexer.go): IndexedTo is how far
// it got. Everything is read in one read-only REPEATABLE READ
// transaction, so that the counts and the size are of one instant.
//
// The series comes from the hourly CountOutcome counts, less the hourly
// counts of the actions q leaves out. The top actors and actions read the
// daily counts for the whole UTC days of the range and the hourly ones
// for its ends; the failed IPs read the hourly counts, which their First
// and Last need.
func (s *Store) Rollup(ctx context.Context, log int64, q store.RollupQuery) (store.Rollup, error) {
	var r store.Rollup
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		r, err = rollup(ctx, tx, log, q)
		return err
	})
	return r, err
}

func rollup(ctx context.Context, tx pgx.Tx, log int64, q store.RollupQuery) (store.Rollup, error) {
	var r store.Rollup
	err := tx.QueryRow(ctx, "SELECT LEAST(l.size, COALESCE(c.rolled, 0)) FROM "+progress+" WHERE l.id = $1", log).Scan(&r.IndexedTo)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	var first, last *int64
	err = tx.QueryRow(ctx, "SELECT min(hour), max(hour) FROM counts WHERE log = $1 AND dim = $2 AND span = $3 AND total > 0",
		log, int16(store.CountOutcome), int16(store.SpanHour)).Scan(&first, &last)
	if err != nil {
		return r, fmt.Errorf("rollup: %w", err)
	}
	if first != nil && last != nil {
		r.First, r.Last = *first, *last
	}
	if q.To <= q.From {
		return r, nil
	}
	bucket := max(q.Bucket, 1)
	start := func(h int64) int64 { return floorDiv(h, bucket) * bucket }
	var not []string
	for _, a := range q.NotActions {
		if !slices.Contains(not, a) {
			not = append(not, a)
		}
	}

	// The series.
	series := map[int64]*store.BucketCounts{}
	hourly := func(sign int64, dim store.CountDim, values []string) error {
		sql := "SELECT hour, total, failure, denied, error FROM counts WHERE log = $1 AND dim = $2 AND span = $3 AND hour >= $4 AND hour < $5"
		args := []any{log, int16(dim), int16(store.SpanHour), q.From, q.To}
		if values != nil {
			sql += " AND value = ANY($6::text[])"
			args = append(args, values)
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		var h int64
		var c store.Counts
		_, err = pgx.ForEachRow(rows, []any{&h, &c.Total, &c.Failure, &c.Denied, &c.Error}, func() error {
			b := series[start(h)]
			if b == nil {
				b = &store.BucketCounts{Start: start(h)}
				series[b.Start] = b
			}
			b.Add(store.Counts{Total: sign * c.Total, Failure: sign * c.Failure, Denied: sign * c.Denied, Error: sign * c.Error})
			return nil
		})
		return err
	}
	if err := hourly(1, store.CountOutcome, nil); err != nil {
		return r, fmt.Errorf("rollup: %w", err)
	}
	if len(not) > 0 {
		if err := hourly(-1, store.CountAction, not); err != nil {
			return r, fmt.Errorf("rollup: %w", err)
		}
	}
	for _, st := range slices.Sorted(maps.Keys(series)) {
		if b := series[st]; b.Total > 0 {
			r.Series = append(r.Series, *b)
		}
	}

	if q.Top <= 0 {
		return r, nil
	}
	var err2 error
	if r.Actors, err2 = topValues(ctx, tx, log, store.CountActor, q, nil, true, start); err2 != nil {
		return r, err2
	}
	if r.Actions, err2 = topValues(ctx, tx, log, store.CountAction, q, not, true, start); err2 != nil {
		return r, err2
	}
	if r.FailedIPs, err2 = topValues(ctx, tx, log, store.CountFailedIP, q, nil, false, start); err2 != nil {
		return r, err2
	}
	for i := range r.Actors {
		r.Actors[i].First, r.Actors[i].Last = 0, 0
	}
	for i := range r.Actions {
		r.Actions[i].First, r.Actions[i].Last = 0, 0
	}
	return r, nil
}

// topValues returns the q.Top values of dim with the most events in q's
// range, most first, ties in byte order, leaving out the values in not.
// With days, the whole UTC days of the range are read from the daily
// counts; First and Last, the starts of the buckets of the values'
// earliest and latest hours, are then meaningless.
func topValues(ctx context.Context, tx pgx.Tx, log int64, dim store.CountDim, q store.RollupQuery, not []string, days bool, start func(int64) int64) ([]store.ValueCount, error) {
	args := []any{log, int16(dim), int16(store.SpanHour), q.From, q.To}
	span := "span = $3 AND hour >= $4 AND hour < $5"
	dayLo, dayHi := floorDiv(q.From+23, 24)*24, floorDiv(q.To, 24)*24
	if days && dayLo < dayHi {
		args = append(args, int16(store.SpanDay), dayLo, dayHi)
		span = "(span = $6 AND hour >= $7 AND hour < $8 OR span = $3 AND (hour >= $4 AND hour < $7 OR hour >= $8 AND hour < $5))"
	}
	sql := "SELECT value, sum(total)::bigint AS n, min(hour), max(hour) FROM counts WHERE log = $1 AND dim = $2 AND " + span
	if len(not) > 0 {
		args = append(args, not)
		sql += fmt.Sprintf(" AND value <> ALL($%d::text[])", len(args))
	}
	args = append(args, q.Top)
	sql += fmt.Sprintf(" GROUP BY value HAVING sum(total) > 0 ORDER BY n DESC, value LIMIT $%d", len(args))
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("rollup: %v: %w", dim, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ValueCount, error) {
		var v store.ValueCount
		var lo, hi int64
		err := r.Scan(&v.Value, &v.Count, &lo, &hi)
		v.First, v.Last = start(lo), start(hi)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("rollup: %v: %w", dim, err)
	}
	return out, nil
}

// Actions implements store.Indexes, from the counts of each action over
// all time, which the indexer adds to (indexer.go), and the events it has
// not counted yet, read from the log: it never trails commits. All of it
// is read in one REPEATABLE READ transaction, of one instant.
func (s *Store) Actions(ctx context.Context, log int64) ([]store.ValueCount, error) {
	counts := map[string]int64{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var size, counted int64
		err := tx.QueryRow(ctx, "SELECT l.size, COALESCE(c.size, 0) FROM "+progress+" WHERE l.id = $1", log).Scan(&size, &counted)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT value, total FROM counts WHERE log = $1 AND dim = $2 AND span = $3 AND hour = 0 AND total > 0",
			log, int16(store.CountAction), int16(store.SpanAll))
		if err != nil {
			return err
		}
		var v string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&v, &n}, func() error {
			counts[v] += n
			return nil
		}); err != nil {
			return err
		}
		if counted >= size {
			return nil
		}
		return s.eachEvent(ctx, tx, log, counted, size, func(e *event.Event) { counts[e.Action]++ })
	})
	if err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	out := make([]store.ValueCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, store.ValueCount{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b store.ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Value, b.Value))
	})
	return out, nil
}

// floorDiv is a / b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
