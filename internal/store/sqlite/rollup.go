package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The rollup table (schema.go) holds, per log, hour (or day) and dimension
// value, how many events below logs.rolled_size there are by outcome. The
// indexer gathers the counts of the chunks it indexes in memory
// (pendingRollup) and adds them with upserts of many rows each, moving
// rolled_size in the same transaction, once they cover rollupFlushEvents
// events or are rollupFlushDelay old, and when WaitIndexed or Close asks.
// So each (dim, hour, value) costs one row write per flush however many
// events it counts, and small index chunks, which keep commits waiting
// less, do not multiply the rows written. Pending counts lost in a crash
// are counted again from the events (recount).

// When pending counts are written.
const (
	rollupFlushEvents = 1 << segBits
	rollupFlushDelay  = time.Second
)

// pendingRollup is what the indexer has counted of a log but not written:
// events [from, to), from being the log's rolled_size.
type pendingRollup struct {
	from, to int64
	counts   rollupCounts
	since    time.Time
}

// addRollup adds the counts of chunk c to the log's pending counts, in
// place, and returns them and whether they are due to be written
// (writeRollup), which the caller does in a transaction of its own once tx
// has committed. tx is the chunk's last transaction: if it fails, the
// caller drops the log's pending counts, and recount redoes them from the
// events. The caller holds wmu.
func (ix *indexer) addRollup(ctx context.Context, tx *sql.Tx, c *chunk) (*pendingRollup, bool, error) {
	p := ix.pending[c.log]
	if p == nil || p.to != c.from {
		var err error
		if p, err = ix.recount(ctx, tx, c.log, c.from); err != nil {
			return nil, false, err
		}
	}
	for k, n := range c.counts {
		if m := p.counts[k]; m != nil {
			m.Add(*n)
		} else {
			p.counts[k] = n
		}
	}
	p.to = c.to
	if p.since.IsZero() {
		p.since = time.Now()
	}
	return p, p.to-p.from >= rollupFlushEvents || time.Since(p.since) >= rollupFlushDelay, nil
}

// recount returns the counts of the events of log from its rolled_size up
// to seq to, read back from the database: counts pending when the process
// stopped are lost, and the indexer goes on past them.
func (ix *indexer) recount(ctx context.Context, tx *sql.Tx, log, to int64) (*pendingRollup, error) {
	var from int64
	if err := tx.QueryRowContext(ctx, "SELECT rolled_size FROM logs WHERE id = ?", log).Scan(&from); err != nil {
		return nil, err
	}
	p := &pendingRollup{from: from, to: to, counts: rollupCounts{}}
	if from > to {
		return nil, fmt.Errorf("log %d: rollup counted up to %d, beyond the index's %d", log, from, to)
	}
	if from < to {
		p.since = time.Now()
		err := ix.s.readForIndex(ctx, log, from, to, func(_ int64, e *event.Event) { p.counts.add(e) })
		if err != nil {
			return nil, fmt.Errorf("log %d: count events [%d, %d): %w", log, from, to, err)
		}
	}
	return p, nil
}

// writeRollup adds p's counts to the rollup table and moves rolled_size to
// p.to, in tx, if rolled_size is still p.from; errStaleRollup if not.
func (ix *indexer) writeRollup(ctx context.Context, tx *sql.Tx, log int64, p *pendingRollup) error {
	res, err := tx.ExecContext(ctx, "UPDATE logs SET rolled_size = ? WHERE id = ? AND rolled_size = ?", p.to, log, p.from)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errStaleRollup
	}
	return addCounts(ctx, tx.StmtContext(ctx, ix.s.ins.rollup), tx.StmtContext(ctx, ix.s.ins.rollup1), log, p.counts.rows())
}

// errStaleRollup is writeRollup's answer for counts that no longer start
// at the log's rolled_size: another process's indexer (trail append beside
// trail serve) wrote counts meanwhile, possibly of the same events, or
// ResetIndex dropped them. They are dropped, and recount starts again from
// the rolled_size it finds.
var errStaleRollup = errors.New("event counts prepared from an older watermark")

// flushRollups writes the pending counts of every log (old ones only,
// unless all). The caller holds wmu.
func (ix *indexer) flushRollups(ctx context.Context, all bool) error {
	var errs []error
	for log, p := range ix.pending {
		if all || time.Since(p.since) >= rollupFlushDelay {
			errs = append(errs, ix.flushRollup(ctx, log))
		}
	}
	return errors.Join(errs...)
}

// flushRollup writes the pending counts of log, if any, in a transaction
// of its own. Written or not, they are dropped: recount redoes them. The
// caller holds wmu.
func (ix *indexer) flushRollup(ctx context.Context, log int64) error {
	p := ix.pending[log]
	if p == nil {
		return nil
	}
	delete(ix.pending, log)
	err := inTx(ctx, ix.s.w, func(tx *sql.Tx) error { return ix.writeRollup(ctx, tx, log, p) })
	if errors.Is(err, errStaleRollup) {
		return nil
	}
	return err
}

// rollupKey is one row of the rollup table within a log.
type rollupKey struct {
	dim   int
	hour  int64
	value string
}

// rollupCounts gathers counts by hour before they are added to the rollup
// table.
type rollupCounts map[rollupKey]*store.Counts

// add counts e, which needs Time, Outcome, Action, Actor.ID and Source.IP,
// into its hourly counts (derive.HourCounts). The dimensions' numbers are
// store.CountDim's.
func (r rollupCounts) add(e *event.Event) {
	one := derive.Tally(e)
	derive.HourCounts(e, func(k store.CountKey) {
		rk := rollupKey{int(k.Dim), k.Hour, k.Value}
		c := r[rk]
		if c == nil {
			c = new(store.Counts)
			r[rk] = c
		}
		c.Add(one)
	})
}

// rollupRow is a row's worth of counts to add to the rollup table.
type rollupRow struct {
	rollupKey
	store.Counts
}

// rows returns the rows to add: the hourly counts, and for every dimension
// but the outcome their sums by day. They are sorted by key, so that they
// are written in the table's order.
func (r rollupCounts) rows() []rollupRow {
	days := map[rollupKey]*store.Counts{}
	out := make([]rollupRow, 0, 2*len(r))
	for k, c := range r {
		out = append(out, rollupRow{k, *c})
		day, ok := derive.DayOf(store.CountKey{Dim: store.CountDim(k.dim), Hour: k.hour, Value: k.value})
		if !ok {
			continue
		}
		dk := rollupKey{byDay + int(day.Dim), day.Hour, day.Value}
		d := days[dk]
		if d == nil {
			d = new(store.Counts)
			days[dk] = d
		}
		d.Add(*c)
	}
	for k, c := range days {
		out = append(out, rollupRow{k, *c})
	}
	slices.SortFunc(out, func(a, b rollupRow) int {
		return cmp.Or(cmp.Compare(a.dim, b.dim), cmp.Compare(a.hour, b.hour), strings.Compare(a.value, b.value))
	})
	return out
}

// floorDiv is a / b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// rowsPerRollup is how many rows one rollup upsert carries.
const rowsPerRollup = 128

// addRollup returns the statement that adds n rows of counts to the rollup
// table, each row taking the arguments log, dim, hour, value, total,
// failure, denied and error.
func addRollup(n int) string {
	row := "(" + placeholders(8) + ")"
	return "INSERT INTO rollup (log, dim, hour, value, n_total, n_failure, n_denied, n_error) VALUES " +
		strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + `
ON CONFLICT (log, dim, hour, value) DO UPDATE SET
	n_total = n_total + excluded.n_total,
	n_failure = n_failure + excluded.n_failure,
	n_denied = n_denied + excluded.n_denied,
	n_error = n_error + excluded.n_error`
}

// addCounts adds rows to log's counts with many and one, the statements
// addRollup(rowsPerRollup) and addRollup(1) of the transaction.
func addCounts(ctx context.Context, many, one *sql.Stmt, log int64, rows []rollupRow) error {
	args := make([]any, 0, 8*rowsPerRollup)
	for len(rows) > 0 {
		st, n := many, min(len(rows), rowsPerRollup)
		if n < rowsPerRollup {
			st, n = one, 1
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, log, r.dim, r.hour, r.value, r.Total, r.Failure, r.Denied, r.Error)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("add counts: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// Rollup implements store.Store. It reads the watermark and the counts in
// one read transaction, so they agree whatever the indexer commits
// meanwhile.
func (s *Store) Rollup(ctx context.Context, log int64, q store.RollupQuery) (store.Rollup, error) {
	var r store.Rollup
	if q.Bucket <= 0 {
		return r, fmt.Errorf("rollup bucket of %d hours", q.Bucket)
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return r, err
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, "SELECT rolled_size FROM logs WHERE id = ?", log).Scan(&r.IndexedTo)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	if r.IndexedTo == 0 {
		return r, nil
	}
	// Two subqueries, so that each is one seek in the primary key.
	err = tx.QueryRowContext(ctx, `SELECT
		(SELECT min(hour) FROM rollup WHERE log = ?1 AND dim = ?2),
		(SELECT max(hour) FROM rollup WHERE log = ?1 AND dim = ?2)`, log, dimOutcome).Scan(&r.First, &r.Last)
	if err != nil {
		return r, fmt.Errorf("rollup bounds: %w", err)
	}
	if q.To <= q.From {
		return r, nil
	}
	if r.Series, err = sumBuckets(ctx, tx, log, dimOutcome, q, ""); err != nil {
		return r, fmt.Errorf("rollup series: %w", err)
	}
	// Whole days are counted from the day rows.
	day := 0
	if q.Bucket%24 == 0 && q.From%24 == 0 && q.To%24 == 0 {
		day = byDay
	}
	if len(q.NotActions) > 0 {
		if r.Series, err = leaveOut(ctx, tx, log, day+dimAction, q, r.Series); err != nil {
			return r, fmt.Errorf("rollup series: %w", err)
		}
	}
	if q.Top <= 0 {
		return r, nil
	}
	for _, d := range []struct {
		dim int
		out *[]store.ValueCount
	}{
		{dimActor, &r.Actors},
		{dimAction, &r.Actions},
		{dimFailedIP, &r.FailedIPs},
	} {
		if *d.out, err = topValues(ctx, tx, log, day+d.dim, q); err != nil {
			return r, fmt.Errorf("rollup top values: %w", err)
		}
	}
	return r, nil
}

// sumBuckets sums the rows of dim in q's range by bucket of q.Bucket
// hours, in ascending order of bucket. where narrows the rows further;
// its arguments, args, are ?6 on.
func sumBuckets(ctx context.Context, tx *sql.Tx, log int64, dim int, q store.RollupQuery, where string, args ...any) ([]store.BucketCounts, error) {
	// Bucket starts round down, also before the epoch.
	rows, err := tx.QueryContext(ctx, `SELECT hour - ((hour % ?1) + ?1) % ?1 AS b,
		sum(n_total), sum(n_failure), sum(n_denied), sum(n_error)
		FROM rollup WHERE log = ?2 AND dim = ?3 AND hour >= ?4 AND hour < ?5`+where+`
		GROUP BY b ORDER BY b`, append([]any{q.Bucket, log, dim, q.From, q.To}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.BucketCounts
	for rows.Next() {
		var b store.BucketCounts
		if err := rows.Scan(&b.Start, &b.Total, &b.Failure, &b.Denied, &b.Error); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// leaveOut subtracts from series the counts of q.NotActions, read from
// dim (the actions by hour or by day), and drops the buckets left empty.
// Like topValues, it reads every action row of the range.
func leaveOut(ctx context.Context, tx *sql.Tx, log int64, dim int, q store.RollupQuery, series []store.BucketCounts) ([]store.BucketCounts, error) {
	in := make([]string, len(q.NotActions))
	args := make([]any, len(q.NotActions))
	for i, a := range q.NotActions {
		in[i], args[i] = fmt.Sprintf("?%d", 6+i), a
	}
	left, err := sumBuckets(ctx, tx, log, dim, q, " AND value IN ("+strings.Join(in, ", ")+")", args...)
	if err != nil {
		return nil, err
	}
	i := 0
	for _, b := range left {
		for i < len(series) && series[i].Start < b.Start {
			i++
		}
		if i == len(series) || series[i].Start != b.Start {
			return nil, fmt.Errorf("bucket %d counts actions but no events", b.Start)
		}
		series[i].Add(store.Counts{Total: -b.Total, Failure: -b.Failure, Denied: -b.Denied, Error: -b.Error})
	}
	return slices.DeleteFunc(series, func(b store.BucketCounts) bool { return b.Total == 0 }), nil
}

// topValues returns the q.Top values of dim with the most events in q's
// range, with the first and last bucket for source IPs. It sums every row
// of dim in the range by value and sorts the sums: the cost grows with the
// distinct values per hour (or day) times the hours (or days) of the range.
func topValues(ctx context.Context, tx *sql.Tx, log int64, dim int, q store.RollupQuery) ([]store.ValueCount, error) {
	cols := "value, sum(n_total) AS n"
	ips := dim%byDay == dimFailedIP
	if ips {
		cols += ", min(hour), max(hour)"
	}
	where, args := "", []any{log, dim, q.From, q.To}
	if dim%byDay == dimAction && len(q.NotActions) > 0 {
		where = " AND value NOT IN (" + placeholders(len(q.NotActions)) + ")"
		for _, a := range q.NotActions {
			args = append(args, a)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+cols+`
		FROM rollup WHERE log = ? AND dim = ? AND hour >= ? AND hour < ?`+where+`
		GROUP BY value ORDER BY n DESC, value LIMIT ?`, append(args, q.Top)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ValueCount
	for rows.Next() {
		var v store.ValueCount
		dst := []any{&v.Value, &v.Count}
		if ips {
			dst = append(dst, &v.First, &v.Last)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		if ips {
			v.First = floorDiv(v.First, q.Bucket) * q.Bucket
			v.Last = floorDiv(v.Last, q.Bucket) * q.Bucket
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Actions implements store.Store: the counts of the actions table, which
// the indexer keeps, and of the events it has not reached yet.
func (s *Store) Actions(ctx context.Context, log int64) ([]store.ValueCount, error) {
	if _, err := s.logName(ctx, log); err != nil {
		return nil, err
	}
	// The table counts the events below indexed_size, read in the same
	// read transaction; the events past it are counted here.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var indexed, size int64
	if err := tx.QueryRowContext(ctx, "SELECT indexed_size, size FROM logs WHERE id = ?", log).Scan(&indexed, &size); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT action, count FROM actions WHERE log = ?", log)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var a string
		var n int64
		if err := rows.Scan(&a, &n); err != nil {
			return nil, err
		}
		counts[a] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	tx.Rollback()
	if evs := s.ix.recent.Get(log, indexed, size); evs != nil {
		for _, e := range evs {
			counts[e.Action]++
		}
	} else if indexed < size {
		err := s.readForIndex(ctx, log, indexed, size, func(_ int64, e *event.Event) { counts[e.Action]++ })
		if err != nil {
			return nil, err
		}
	}
	out := make([]store.ValueCount, 0, len(counts))
	for a, n := range counts {
		if n > 0 {
			out = append(out, store.ValueCount{Value: a, Count: n})
		}
	}
	slices.SortFunc(out, func(a, b store.ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Value, b.Value))
	})
	return out, nil
}
