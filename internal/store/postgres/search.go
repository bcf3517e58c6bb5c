package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// Search's page sizes: q.Limit <= 0 means defaultLimit, and no page is
// longer than maxLimit.
const (
	defaultLimit = 100
	maxLimit     = 10000
)

// Search implements store.Indexes. The indexes are written by the commits
// themselves (index_write.go), so one statement answers a query: it finds
// the seqs in event_index, filtered by every field of q (targets and words
// through event_targets and event_words), orders and cuts them, and reads
// their events. An index row whose event is missing, or whose event cannot
// be decoded, fails the search with a *store.DamagedError at its seq.
func (s *Store) Search(ctx context.Context, log int64, q store.Query) ([]*event.Event, error) {
	if _, err := s.logSize(ctx, log); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	from, to := max(q.From, 0), q.To
	if to < 0 {
		to = math.MaxInt64
	}
	if from > to {
		return nil, nil
	}
	// A term that may be longer than a stored word is looked up as a
	// prefix of its start (searchSQL), which may find events that do not
	// hold it: those are filtered out, and the search goes on past them.
	terms := derive.Terms(q.Text)
	recheck := slices.ContainsFunc(terms, func(t derive.Term) bool { return len(t.Text) > maxTerm })
	var out []*event.Event
	for {
		want := limit - len(out)
		sql, args := searchSQL(log, q, from, to, want)
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		type found struct {
			seq  int64
			data []byte
		}
		res, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (found, error) {
			var f found
			err := r.Scan(&f.seq, &f.data)
			return f, err
		})
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		for _, f := range res {
			if f.data == nil {
				return nil, &store.DamagedError{Seq: f.seq, Problem: store.ProblemMissing}
			}
			e, err := decode(f.seq, f.data)
			if err != nil {
				return nil, err
			}
			if !recheck || derive.MatchTerms(terms, derive.SearchText(e)) {
				out = append(out, e)
			}
		}
		if len(res) < want || len(out) >= limit {
			return out, nil
		}
		last := res[len(res)-1].seq
		if q.Asc {
			from = last + 1
		} else if to = last - 1; to < from {
			return out, nil
		}
	}
}

// searchSQL builds the statement of a search and its arguments. Every
// value is passed as an argument, never written into the statement.
func searchSQL(log int64, q store.Query, from, to int64, limit int) (string, []any) {
	args := []any{log, from, to}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where []string
	cond := func(format string, a ...any) { where = append(where, fmt.Sprintf(format, a...)) }
	if q.Actor != "" {
		cond("i.actor = %s", arg(q.Actor))
	}
	switch len(q.Actions) {
	case 0:
	case 1:
		cond("i.action = %s", arg(q.Actions[0]))
	default:
		cond("i.action = ANY(%s::text[])", arg(q.Actions))
	}
	if q.ActionLike != "" {
		cond("i.action LIKE %s", arg(likePrefix(q.ActionLike)))
	}
	if len(q.NotActions) > 0 {
		cond("i.action <> ALL(%s::text[])", arg(q.NotActions))
	}
	if q.NotActionLike != "" {
		cond("i.action NOT LIKE %s", arg(likePrefix(q.NotActionLike)))
	}
	if q.Outcome != "" {
		cond("i.outcome = %s", arg(string(q.Outcome)))
		if q.Outcome != event.Success {
			cond("i.outcome <> 'success'") // lets the partial index serve
		}
	}
	if q.IP != "" {
		cond("i.ip = %s AND i.ip <> ''", arg(q.IP)) // the partial index's predicate
	}
	if q.TargetType != "" || q.TargetID != "" {
		var tc []string
		if q.TargetType != "" {
			tc = append(tc, "t.type = "+arg(q.TargetType))
		}
		if q.TargetID != "" {
			tc = append(tc, "t.id = "+arg(q.TargetID))
		}
		cond("EXISTS (SELECT 1 FROM event_targets t WHERE t.log = i.log AND t.seq = i.seq AND %s)", strings.Join(tc, " AND "))
	}
	for _, t := range derive.Terms(q.Text) {
		if len(t.Text) > maxTerm {
			// A word that is t, or starts with it, may be stored cut,
			// but always holds t's first maxTerm bytes.
			t = derive.Term{Text: cutWord(t.Text, maxTerm), Prefix: true}
		}
		if t.Prefix {
			cond("EXISTS (SELECT 1 FROM event_words w WHERE w.log = i.log AND w.seq = i.seq AND w.word LIKE %s)", arg(likePrefix(t.Text)))
		} else {
			cond("EXISTS (SELECT 1 FROM event_words w WHERE w.log = i.log AND w.seq = i.seq AND w.word = %s)", arg(t.Text))
		}
	}
	dir := "DESC"
	if q.Asc {
		dir = "ASC"
	}
	var b strings.Builder
	b.WriteString("SELECT f.seq, e.data FROM (SELECT i.seq FROM event_index i WHERE i.log = $1 AND i.seq >= $2 AND i.seq <= $3")
	for _, w := range where {
		b.WriteString(" AND ")
		b.WriteString(w)
	}
	fmt.Fprintf(&b, " ORDER BY i.seq %s LIMIT %s) f LEFT JOIN events e ON e.log = $1 AND e.seq = f.seq ORDER BY f.seq %s", dir, arg(limit), dir)
	return b.String(), args
}

// maxTerm is the longest term looked up as it is: every word stored cut
// is longer.
const maxTerm = maxWord - utf8.UTFMax

// likePrefix is the LIKE pattern of the strings starting with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// SeqAtTime implements store.Indexes: the first seq, in the order of
// their receipt times, received at or after t, found in event_index's
// (log, received_at, seq) index. Receipt times do not decrease along a
// log, so it is the smallest such seq. The event at that seq is read, and
// a missing or undecodable one fails with a *store.DamagedError.
func (s *Store) SeqAtTime(ctx context.Context, log int64, t time.Time) (int64, error) {
	size, err := s.logSize(ctx, log)
	if err != nil {
		return 0, err
	}
	var at int64
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		at = math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		at = math.MaxInt64
	default:
		at = t.UnixNano()
	}
	var seq int64
	var data []byte
	err = s.pool.QueryRow(ctx, `SELECT i.seq, e.data FROM
		(SELECT seq FROM event_index WHERE log = $1 AND received_at >= $2 AND seq < $3 ORDER BY received_at, seq LIMIT 1) i
		LEFT JOIN events e ON e.log = $1 AND e.seq = i.seq`, log, at, size).Scan(&seq, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return size, nil
	}
	if err != nil {
		return 0, err
	}
	if data == nil {
		return 0, &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
	}
	if _, err := decode(seq, data); err != nil {
		return 0, err
	}
	return seq, nil
}

// WaitIndexed implements store.Indexes: a commit writes its indexes, so
// they always cover every committed event, and it returns at once.
func (s *Store) WaitIndexed(ctx context.Context, log int64) error {
	return ctx.Err()
}

// IndexStatus implements store.Indexes: no log has any lag, and indexing
// fails only with the commit that does it.
func (s *Store) IndexStatus(ctx context.Context) (store.IndexStatus, error) {
	st := store.IndexStatus{Lag: map[int64]int64{}}
	rows, err := s.pool.Query(ctx, "SELECT id FROM logs")
	if err != nil {
		return st, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		st.Lag[id] = 0
	}
	return st, nil
}
