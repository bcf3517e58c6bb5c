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

// prefixedCols is eventCols qualified with the events table alias.
var prefixedCols = "e." + strings.ReplaceAll(eventCols, ", ", ", e.")

// Search implements store.Store.
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
	sc := newScanner(log, name)
	terms := parseTerms(q.Text)
	if len(terms) == 0 {
		return s.run(ctx, sc, p, "", from, to, limit, q.Asc, nil)
	}
	match := func(e *event.Event) bool { return matchTerms(terms, e.SearchText()) }

	// Events above the full-text watermark are not indexed yet: scan them
	// with the other filters and match the text here, so a search never
	// misses a committed event.
	s.mu.Lock()
	indexed := s.ftsSize[log]
	s.mu.Unlock()
	type part struct {
		from, to int64
		match    string
		keep     func(*event.Event) bool
	}
	parts := []part{
		{max(from, indexed), to, "", match},              // unindexed, newer
		{from, min(to, indexed-1), ftsQuery(terms), nil}, // indexed, older
	}
	if q.Asc {
		parts[0], parts[1] = parts[1], parts[0]
	}
	var out []*event.Event
	for _, pt := range parts {
		if pt.from > pt.to || len(out) >= limit {
			continue
		}
		more, err := s.run(ctx, sc, p, pt.match, pt.from, pt.to, limit-len(out), q.Asc, pt.keep)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// plan is the non-text part of a query, as SQL.
type plan struct {
	none       bool // the filters cannot match anything
	conds      []string
	args       []any
	targetType string
	targetID   string
	scanPK     bool // drive from the primary key, not the action index
}

func (s *Store) plan(ctx context.Context, log int64, q store.Query) (plan, error) {
	var p plan
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
	p.targetType, p.targetID = q.TargetType, q.TargetID
	if q.TargetType != "" && q.TargetID == "" {
		p.conds = append(p.conds, "instr(e.targets, ?) > 0")
		p.args = append(p.args, targetSep+q.TargetType+fieldSep)
	}
	if q.TargetType == "" && q.TargetID != "" {
		// No index leads with the target id; match it in the rows.
		p.conds = append(p.conds, "instr(e.targets, ?) > 0")
		p.args = append(p.args, fieldSep+q.TargetID+fieldSep)
	}
	return p, nil
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

// run executes p over seqs [from, to], in seq order, optionally restricted
// by a full-text query, and keeps rows accepted by keep (nil keeps all)
// until limit rows are kept.
func (s *Store) run(ctx context.Context, sc *scanner, p plan, match string, from, to int64, limit int, asc bool, keep func(*event.Event) bool) ([]*event.Event, error) {
	lo, hi := eventKey(sc.log, from), eventKey(sc.log, to)
	var b strings.Builder
	var args []any
	conds := append([]string(nil), p.conds...)
	pageArgs := append([]any(nil), p.args...)
	var order string
	switch {
	case match != "":
		b.WriteString("SELECT " + prefixedCols + " FROM events_fts JOIN events e ON e.k = events_fts.rowid")
		conds = append([]string{"events_fts MATCH ?", "events_fts.rowid BETWEEN ? AND ?"}, conds...)
		args = append(args, match)
		order = "events_fts.rowid"
		if p.targetType != "" && p.targetID != "" {
			conds = append(conds, "EXISTS (SELECT 1 FROM targets t WHERE t.type = ? AND t.id = ? AND t.k = e.k)")
			pageArgs = append(pageArgs, p.targetType, p.targetID)
		}
	case p.targetType != "" && p.targetID != "":
		b.WriteString("SELECT " + prefixedCols + " FROM targets t JOIN events e ON e.k = t.k")
		conds = append([]string{"t.type = ?", "t.id = ?", "t.k BETWEEN ? AND ?"}, conds...)
		args = append(args, p.targetType, p.targetID)
		order = "t.k"
	default:
		b.WriteString("SELECT " + prefixedCols + " FROM events e")
		if p.scanPK {
			b.WriteString(" NOT INDEXED")
		}
		conds = append([]string{"e.k BETWEEN ? AND ?"}, conds...)
		order = "e.k"
	}
	b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	dir := " DESC"
	if asc {
		dir = " ASC"
	}
	b.WriteString(" ORDER BY " + order + dir + " LIMIT ?")
	query := b.String()

	var out []*event.Event
	page := limit
	if keep != nil {
		page = max(limit, 500)
	}
	for hi >= lo {
		a := append(append(append([]any(nil), args...), lo, hi), pageArgs...)
		a = append(a, page)
		rows, err := s.r.QueryContext(ctx, query, a...)
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

// tokens splits text the way the FTS5 unicode61 tokenizer does: runs of
// letters, digits and private-use characters, lower-cased.
func tokens(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Co, r)
	})
}

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
