package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"

	"github.com/trail-audit/trail/internal/event"
	"github.com/trail-audit/trail/internal/store"
)

const (
	defaultLimit = 100
	maxLimit     = 10000
	// scanShare: an action filter matching at least 1/scanShare of a log's
	// events is answered by walking the primary key newest-first (a page
	// fills after ~limit*scanShare rows) rather than by the action index,
	// which cannot merge several actions in seq order and would sort every
	// match.
	scanShare = 64
)

// prefixedCols is readCols qualified with the events table alias.
var prefixedCols = "e.k, e.received_at, e.time, e.outcome, e." + strings.Join(stringCols, " || char(28) || e.")

// Search implements store.Store. A query runs in two parts: events the
// background indexer has covered are found through the indexes; newer ones
// (at most MaxIndexLag per log) are scanned by primary key, with the same
// filters in SQL and the free text matched here, so results are complete
// whatever the indexer's progress.
func (s *Store) Search(ctx context.Context, log int64, q store.Query) ([]*event.Event, error) {
	name, err := s.logName(log)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	from, to := max(q.From, 0), q.To
	if to < 0 || to >= 1<<seqBits {
		to = 1<<seqBits - 1
	}
	if from > to {
		return nil, nil
	}
	p, err := s.plan(ctx, log, q)
	if err != nil || p.none {
		return nil, err
	}
	s.mu.Lock()
	indexed := s.indexed[log]
	s.mu.Unlock()

	type part struct {
		from, to int64
		indexed  bool
	}
	parts := []part{{max(from, indexed), to, false}, {from, min(to, indexed-1), true}}
	if q.Asc {
		parts[0], parts[1] = parts[1], parts[0]
	}
	sc := newScanner(log, name, s.r)
	var out []*event.Event
	for _, pt := range parts {
		if pt.from > pt.to || len(out) >= limit {
			continue
		}
		more, err := s.run(ctx, sc, p.query(pt.indexed, q.Asc), pt.from, pt.to, limit-len(out), q.Asc, p.keep(pt.indexed))
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// plan is a query's filters, as SQL over the events table (alias e) plus
// the index that should drive the indexed part.
type plan struct {
	none   bool // the filters cannot match anything
	conds  []string
	args   []any
	scanPK bool // answer action filters by walking the primary key

	// The driving index for events below indexed_size, if any.
	drive     string // "fts", "target", "actor", "ip" or ""
	driveArgs []any
	terms     []term
}

func (s *Store) plan(ctx context.Context, log int64, q store.Query) (plan, error) {
	var p plan
	p.terms = parseTerms(q.Text)
	if q.Actor != "" {
		p.conds = append(p.conds, "e.actor_id = ?")
		p.args = append(p.args, q.Actor)
	}
	if len(q.Actions) > 0 || q.ActionLike != "" {
		actions, share, err := s.matchingActions(ctx, log, q)
		if err != nil {
			return p, err
		}
		if len(actions) == 0 {
			p.none = true
			return p, nil
		}
		col := "e.action"
		if len(actions) > 1 && share*scanShare >= 1 {
			col = "+e.action"
			p.scanPK = true
		}
		p.conds = append(p.conds, col+" IN ("+placeholders(len(actions))+")")
		for _, a := range actions {
			p.args = append(p.args, a)
		}
	}
	if q.Outcome != "" {
		p.conds = append(p.conds, "e.outcome = ?")
		p.args = append(p.args, outcomeCode(q.Outcome))
	}
	if q.IP != "" {
		p.conds = append(p.conds, "e.ip = ?")
		p.args = append(p.args, q.IP)
	}
	switch {
	case q.TargetType != "" && q.TargetID != "":
		p.conds = append(p.conds, "instr(e.targets, ?) > 0")
		p.args = append(p.args, targetSep+q.TargetType+fieldSep+q.TargetID+fieldSep)
	case q.TargetType != "":
		p.conds = append(p.conds, "instr(e.targets, ?) > 0")
		p.args = append(p.args, targetSep+q.TargetType+fieldSep)
	case q.TargetID != "":
		p.conds = append(p.conds, "instr(e.targets, ?) > 0")
		p.args = append(p.args, fieldSep+q.TargetID+fieldSep)
	}
	switch {
	case len(p.terms) > 0:
		p.drive, p.driveArgs = "fts", []any{ftsQuery(p.terms)}
	case q.TargetType != "" && q.TargetID != "":
		p.drive, p.driveArgs = "target", []any{q.TargetType, q.TargetID}
	case q.Actor != "":
		p.drive, p.driveArgs = "actor", []any{q.Actor}
	case q.IP != "":
		p.drive, p.driveArgs = "ip", []any{q.IP}
	}
	return p, nil
}

// keep is the filter applied in Go: free text, for events not yet in the
// full-text index.
func (p plan) keep(indexed bool) func(*event.Event) bool {
	if indexed || len(p.terms) == 0 {
		return nil
	}
	return func(e *event.Event) bool { return matchTerms(p.terms, e.SearchText()) }
}

// sqlQuery is a statement whose arguments are head, then the seq-key range
// (lo, hi), then tail, then the row limit.
type sqlQuery struct {
	text       string
	head, tail []any
	// segmented queries take the index segment as their first argument
	// and are run once per segment.
	segmented bool
}

func (p plan) query(indexed, asc bool) sqlQuery {
	var b strings.Builder
	var head []any
	var conds []string
	key := "e.k"
	if indexed && p.drive != "" {
		// CROSS JOIN makes SQLite loop over the driving index first.
		switch p.drive {
		case "fts":
			b.WriteString("SELECT " + prefixedCols + " FROM events_fts x CROSS JOIN events e ON e.k = x.rowid")
			conds = append(conds, "events_fts MATCH ?")
			key = "x.rowid"
		case "target":
			b.WriteString("SELECT " + prefixedCols + " FROM by_target x CROSS JOIN events e ON e.k = x.k")
			conds = append(conds, "x.seg = ?", "x.type = ?", "x.id = ?")
		case "actor":
			b.WriteString("SELECT " + prefixedCols + " FROM by_actor x CROSS JOIN events e ON e.k = x.k")
			conds = append(conds, "x.seg = ?", "x.actor_id = ?")
		case "ip":
			b.WriteString("SELECT " + prefixedCols + " FROM by_ip x CROSS JOIN events e ON e.k = x.k")
			conds = append(conds, "x.seg = ?", "x.ip = ?")
		}
		if p.drive != "fts" {
			key = "x.k"
		}
		head = p.driveArgs
	} else {
		b.WriteString("SELECT " + prefixedCols + " FROM events e")
		if p.scanPK || !indexed {
			// Unindexed events are few and newest: walk them by key.
			b.WriteString(" NOT INDEXED")
		}
	}
	conds = append(conds, key+" BETWEEN ? AND ?")
	conds = append(conds, p.conds...)
	b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	dir := " DESC"
	if asc {
		dir = " ASC"
	}
	b.WriteString(" ORDER BY " + key + dir + " LIMIT ?")
	return sqlQuery{text: b.String(), head: head, tail: p.args, segmented: key == "x.k"}
}

// matchingActions resolves the action filter against the actions the log
// holds, and returns the share of the log's events they cover.
func (s *Store) matchingActions(ctx context.Context, log int64, q store.Query) ([]string, float64, error) {
	query := "SELECT action, count FROM actions WHERE log = ?"
	args := []any{log}
	if q.ActionLike != "" {
		query += " AND action >= ? AND action < ?"
		args = append(args, q.ActionLike, q.ActionLike+"\U0010FFFF")
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, a := range q.Actions {
		want[a] = true
	}
	var out []string
	var matched, total int64
	for rows.Next() {
		var a string
		var n int64
		if err := rows.Scan(&a, &n); err != nil {
			return nil, 0, err
		}
		if len(want) > 0 && !want[a] {
			continue
		}
		out = append(out, a)
		matched += n
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if err := s.r.QueryRowContext(ctx, "SELECT size FROM logs WHERE id = ?", log).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return out, 0, nil
	}
	return out, float64(matched) / float64(total), nil
}

// run executes sq over seqs [from, to] in seq order and keeps rows accepted
// by keep (nil keeps all) until limit rows are kept.
func (s *Store) run(ctx context.Context, sc *scanner, sq sqlQuery, from, to int64, limit int, asc bool, keep func(*event.Event) bool) ([]*event.Event, error) {
	lo, hi := eventKey(sc.log, from), eventKey(sc.log, to)
	if !sq.segmented {
		return s.runRange(ctx, sc, sq, nil, lo, hi, limit, asc, keep)
	}
	var out []*event.Event
	first, last, step := segOf(hi), segOf(lo), int64(-1)
	if asc {
		first, last, step = last, first, 1
	}
	for seg := first; len(out) < limit; seg += step {
		segLo, segHi := max(lo, seg<<segBits), min(hi, (seg+1)<<segBits-1)
		more, err := s.runRange(ctx, sc, sq, []any{seg}, segLo, segHi, limit-len(out), asc, keep)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
		if seg == last {
			break
		}
	}
	return out, nil
}

// runRange runs sq over keys [lo, hi], paging while keep rejects rows.
func (s *Store) runRange(ctx context.Context, sc *scanner, sq sqlQuery, pre []any, lo, hi int64, limit int, asc bool, keep func(*event.Event) bool) ([]*event.Event, error) {
	var out []*event.Event
	page := limit
	if keep != nil {
		page = max(limit, 500)
	}
	for hi >= lo {
		a := make([]any, 0, len(pre)+len(sq.head)+len(sq.tail)+3)
		a = append(append(append(append(a, pre...), sq.head...), lo, hi), sq.tail...)
		a = append(a, page)
		rows, err := s.r.QueryContext(ctx, sq.text, a...)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		n, err := collect(rows, sc, &out, keep, limit)
		if err != nil {
			return nil, err
		}
		if keep == nil || len(out) >= limit || n < page {
			return out, nil
		}
		// Continue past the last row read.
		if asc {
			lo = sc.k + 1
		} else {
			hi = sc.k - 1
		}
	}
	return out, nil
}

func collect(rows *sql.Rows, sc *scanner, out *[]*event.Event, keep func(*event.Event) bool, limit int) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		e, err := sc.scan(rows)
		if err != nil {
			return n, err
		}
		if keep == nil || keep(e) {
			*out = append(*out, e)
			if len(*out) >= limit {
				return n, rows.Close()
			}
		}
	}
	return n, rows.Err()
}

// A term is one word of a free-text query; prefix terms came with a
// trailing '*'.
type term struct {
	text   string
	prefix bool
}

// tokens splits text into the words free-text search knows: runs of
// letters, marks, digits and private-use characters, lower-cased rune by
// rune. The indexer stores exactly these words, space-separated, in an FTS5
// table whose ascii tokenizer splits them at the spaces only, so the index
// and the scan of unindexed events agree on every word.
func tokens(text string) []string {
	return strings.FieldsFunc(strings.Map(unicode.ToLower, text), func(r rune) bool {
		return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Co)
	})
}

// indexText is what the full-text index stores for text.
func indexText(text string) string { return strings.Join(tokens(text), " ") }

func parseTerms(q string) []term {
	var out []term
	for _, w := range strings.Fields(q) {
		prefix := strings.HasSuffix(w, "*")
		toks := tokens(w)
		for i, t := range toks {
			out = append(out, term{text: t, prefix: prefix && i == len(toks)-1})
		}
	}
	return out
}

func ftsQuery(terms []term) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + t.text + `"`
		if t.prefix {
			parts[i] += " *"
		}
	}
	return strings.Join(parts, " AND ")
}

func matchTerms(terms []term, text string) bool {
	toks := tokens(text)
	for _, t := range terms {
		found := false
		for _, tok := range toks {
			if tok == t.text || t.prefix && strings.HasPrefix(tok, t.text) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
