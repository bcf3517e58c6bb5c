package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

const (
	// scanShare: an action filter matching at least 1/scanShare of a log's
	// events is answered by walking the primary key newest-first (a page
	// fills after ~limit*scanShare rows) rather than by the action index,
	// which would gather and sort every match of a segment before the
	// first.
	scanShare = 64
)

// Search implements store.Store. A query runs in two parts: events the
// background indexer has covered are found through the index that suits
// the query best, and newer ones (at most MaxIndexLag per log) are read in
// seq order, so results are complete whatever the indexer's progress. In
// both parts every filter is checked on the decoded event (plan.match): an
// index only proposes candidates.
func (s *Store) Search(ctx context.Context, log int64, q store.Query) ([]*event.Event, error) {
	name, err := s.logName(ctx, log)
	if err != nil {
		return nil, err
	}
	limit := q.PageSize()
	// The range ends at the log's last event, so that a scan finds the
	// events missing at its end (deleted, or a size raised outside
	// Trail) as well as those missing between others.
	indexed := s.ix.indexedTo(log) // before the size: never past it, unless changed outside Trail
	size, err := s.Size(ctx, log)
	if err != nil {
		return nil, err
	}
	if indexed > size {
		return nil, &store.DamagedError{Seq: size, Problem: fmt.Sprintf("the search indexes say they cover %d events, past the log's %d: their progress was changed outside Trail (trail verify --index says more; trail reindex rebuilds them)", indexed, size)}
	}
	from, to := max(q.From, 0), q.To
	if to < 0 || to >= size {
		to = size - 1
	}
	if from > to {
		return nil, nil
	}
	p, err := s.plan(ctx, log, q)
	if err != nil || p.none {
		return nil, err
	}

	type part struct {
		from, to int64
		indexed  bool
	}
	parts := []part{{max(from, indexed), to, false}, {from, min(to, indexed-1), true}}
	if q.Asc {
		parts[0], parts[1] = parts[1], parts[0]
	}
	r := &bundleReader{db: s.r, log: log, name: name}
	var out []*event.Event
	for _, pt := range parts {
		if pt.from > pt.to || len(out) >= limit {
			continue
		}
		var more []*event.Event
		if pt.indexed && p.drive != "" {
			more, err = s.runIndex(ctx, r, p, pt.from, pt.to, limit-len(out), q.Asc)
		} else {
			more, err = s.runScan(ctx, r, p, pt.from, pt.to, limit-len(out), q.Asc, !pt.indexed)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// plan is a query's filters and the index that should propose candidates
// for the indexed part.
type plan struct {
	none bool // the filters cannot match anything
	q    store.Query
	// actions is the action filter resolved against the log's actions
	// (nil: no filter).
	actions map[string]bool
	terms   []derive.Term
	outcome int64 // -1: any

	// The driving index for events below indexed_size, if any.
	drive     string // "fts", "target", "actor", "ip", "action", "outcome" or ""
	driveArgs []any
	// sieves are the posting-list queries of the query's other filters
	// that have an index: the candidates the driving index proposes are
	// kept to the keys every sieve lists too before any event is read,
	// so that a common value combined with a rare one (a busy actor's
	// failed password resets) does not decode every event of the common
	// one.
	sieves []sqlQuery
}

// sieveMin is how many candidates of a segment make it worth reading
// the sieves' posting lists of that segment: fewer are read as they are.
const sieveMin = 8

func (s *Store) plan(ctx context.Context, log int64, q store.Query) (plan, error) {
	p := plan{q: q, outcome: -1, terms: derive.Terms(q.Text)}
	var actions []string
	var share float64
	if len(q.Actions) > 0 || q.ActionLike != "" || len(q.NotActions) > 0 || q.NotActionLike != "" {
		var err error
		actions, share, err = s.matchingActions(ctx, log, q)
		if err != nil {
			return p, err
		}
		if len(actions) == 0 {
			p.none = true
			return p, nil
		}
		p.actions = map[string]bool{}
		for _, a := range actions {
			p.actions[a] = true
		}
	}
	if q.Outcome != "" {
		p.outcome = outcomeCode(q.Outcome)
		if outcomes[p.outcome] != q.Outcome {
			p.none = true
			return p, nil
		}
	}
	// The filters with a posting-list index, rarest kinds first.
	type index struct {
		name string
		args []any
	}
	var ix []index
	if q.TargetType != "" && q.TargetID != "" {
		ix = append(ix, index{"target", []any{q.TargetType, q.TargetID}})
	}
	if q.Actor != "" {
		ix = append(ix, index{"actor", []any{q.Actor}})
	}
	if q.IP != "" {
		ix = append(ix, index{"ip", []any{q.IP}})
	}
	if p.actions != nil && share*scanShare < 1 || p.actions != nil && len(ix) > 0 && share*4 < 1 {
		// To drive, a rare action; to sieve, one that leaves out most.
		args := make([]any, len(actions))
		for i, a := range actions {
			args[i] = a
		}
		ix = append(ix, index{"action", args})
	}
	if p.outcome > 0 {
		ix = append(ix, index{"outcome", []any{p.outcome}})
	}
	if len(p.terms) > 0 {
		p.drive, p.driveArgs = "fts", []any{ftsQuery(p.terms)}
	} else if len(ix) > 0 {
		p.drive, p.driveArgs = ix[0].name, ix[0].args
		ix = ix[1:]
	}
	for _, i := range ix {
		p.sieves = append(p.sieves, p.postingQuery(i.name, i.args))
	}
	return p, nil
}

// match reports whether e passes the filters; text says whether to check
// the free text too.
func (p *plan) match(e *event.Event, text bool) bool {
	q := &p.q
	switch {
	case q.Actor != "" && e.Actor.ID != q.Actor,
		p.actions != nil && !p.actions[e.Action],
		p.outcome >= 0 && outcomeCode(e.Outcome) != p.outcome,
		q.IP != "" && e.Source.IP != q.IP:
		return false
	}
	if q.TargetType != "" || q.TargetID != "" {
		if !slices.ContainsFunc(e.Targets, func(t event.Target) bool {
			return (q.TargetType == "" || t.Type == q.TargetType) && (q.TargetID == "" || t.ID == q.TargetID)
		}) {
			return false
		}
	}
	return !text || len(p.terms) == 0 || derive.MatchTerms(p.terms, derive.SearchText(e))
}

// sqlQuery is a statement that proposes event keys from an index. The
// full-text query takes head, then the key range (lo, hi), then the row
// limit, and returns keys. A posting-list query (segmented) takes the
// index segment, head, then the highest key wanted, and returns posting
// rows (postings.go).
type sqlQuery struct {
	text      string
	table     string
	head      []any
	segmented bool
	// A posting-list query's index, numbered as in indexTables, and the
	// values it wants, for the posting tail (tail.go).
	index int
	match tailMatcher
}

// query is the statement of p's driving index.
func (p plan) query(asc bool) sqlQuery {
	if p.drive != "fts" {
		return p.postingQuery(p.drive, p.driveArgs)
	}
	dir := " DESC"
	if asc {
		dir = " ASC"
	}
	return sqlQuery{
		text:  "SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid BETWEEN ? AND ? ORDER BY rowid" + dir + " LIMIT ?",
		table: "events_fts", head: p.driveArgs,
	}
}

// postingQuery is the statement of the posting-list index name ("target",
// "actor", "ip", "action" or "outcome") for the values args.
func (p plan) postingQuery(name string, args []any) sqlQuery {
	var table, conds string
	var index int
	var match tailMatcher
	q := &p.q
	switch name {
	case "target":
		table, conds, index = "by_target", "type = ? AND id = ?", targetIndex
		match = func(a, b []byte) bool { return string(a) == q.TargetType && string(b) == q.TargetID }
	case "actor":
		table, conds, index = "by_actor", "actor_id = ?", 2
		match = func(a, _ []byte) bool { return string(a) == q.Actor }
	case "ip":
		table, conds, index = "by_ip", "ip = ?", 3
		match = func(a, _ []byte) bool { return string(a) == q.IP }
	case "action":
		table, conds, index = "by_action", "action IN ("+placeholders(len(args))+")", 0
		match = func(a, _ []byte) bool { return p.actions[string(a)] }
	case "outcome":
		table, conds, index = "by_outcome", "outcome = ?", 1
		code := strconv.FormatInt(p.outcome, 10)
		match = func(a, _ []byte) bool { return string(a) == code }
	}
	return sqlQuery{
		text:      "SELECT k, ks FROM " + table + " WHERE seg = ? AND " + conds + " AND k <= ?",
		table:     table,
		head:      args,
		segmented: true,
		index:     index,
		match:     match,
	}
}

// matchingActions resolves the action filter against the actions the log
// holds, and returns about the share of the log's events they cover: the
// share of the indexed ones, as the table counts only those. An excluded
// prefix or action turns into the log's other actions, so that a search
// leaving out most of a log (Trail's own reads, say) is driven by the
// action index when what remains is rare, instead of walking every event.
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
		if len(want) > 0 && !want[a] ||
			q.NotActionLike != "" && strings.HasPrefix(a, q.NotActionLike) || slices.Contains(q.NotActions, a) {
			continue
		}
		out = append(out, a)
		matched += n
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if err := s.r.QueryRowContext(ctx, "SELECT indexed_size FROM logs WHERE id = ?", log).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return out, 0, nil
	}
	return out, float64(matched) / float64(total), nil
}

// runIndex finds events of seqs [from, to] through p's driving index, in
// seq order, until limit match.
func (s *Store) runIndex(ctx context.Context, r *bundleReader, p plan, from, to int64, limit int, asc bool) ([]*event.Event, error) {
	sq := p.query(asc)
	lo, hi := eventKey(r.log, from), eventKey(r.log, to)
	if !sq.segmented {
		return s.runRange(ctx, r, p, sq, lo, hi, limit, asc)
	}
	var out []*event.Event
	var keys []int64
	tail, err := s.tailFrom(ctx, segOf(lo), segOf(hi))
	if err != nil {
		return nil, err
	}
	sv := siever{s: s, p: &p, tail: tail}
	first, last, step := segOf(hi), segOf(lo), int64(-1)
	if asc {
		first, last, step = last, first, 1
	}
	for seg := first; len(out) < limit; seg += step {
		var err error
		keys, err = s.segmentKeys(ctx, sq, seg, max(lo, seg<<segBits), min(hi, (seg+1)<<segBits-1), tail >= 0 && seg >= tail, keys)
		if err != nil {
			return nil, err
		}
		if keys, err = sv.sift(ctx, keys); err != nil {
			return nil, err
		}
		if !asc {
			slices.Reverse(keys)
		}
		if out, err = take(ctx, r, p, keys, out, limit); err != nil {
			return nil, err
		}
		if seg == last {
			break
		}
	}
	return out, nil
}

// runRange runs sq, the full-text query, over keys [lo, hi] and keeps the
// events that match, paging until limit do or the index has no more.
func (s *Store) runRange(ctx context.Context, r *bundleReader, p plan, sq sqlQuery, lo, hi int64, limit int, asc bool) ([]*event.Event, error) {
	var out []*event.Event
	page := max(limit, 500)
	if len(p.sieves) > 0 {
		page = max(limit, 4096) // most are sifted out unread
	}
	sv := siever{s: s, p: &p, tail: -1}
	if len(p.sieves) > 0 {
		var err error
		if sv.tail, err = s.tailFrom(ctx, segOf(lo), segOf(hi)); err != nil {
			return nil, err
		}
	}
	var kept []int64
	for hi >= lo && len(out) < limit {
		a := make([]any, 0, len(sq.head)+3)
		a = append(append(a, sq.head...), lo, hi, page)
		rows, err := s.r.QueryContext(ctx, sq.text, a...)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		var keys []int64
		for rows.Next() {
			var k int64
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			keys = append(keys, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		// The page's keys run along the segments, up or down: each run
		// of one segment is sifted on its own.
		kept = kept[:0]
		if len(p.sieves) == 0 {
			kept = keys
		}
		for i := 0; i < len(keys) && len(p.sieves) > 0; {
			j := i + 1
			for j < len(keys) && segOf(keys[j]) == segOf(keys[i]) {
				j++
			}
			run := slices.Clone(keys[i:j])
			if !asc {
				slices.Reverse(run)
			}
			if run, err = sv.sift(ctx, run); err != nil {
				return nil, err
			}
			if !asc {
				slices.Reverse(run)
			}
			kept = append(kept, run...)
			i = j
		}
		if out, err = take(ctx, r, p, kept, out, limit); err != nil {
			return nil, err
		}
		if len(keys) < page {
			break
		}
		if asc {
			lo = keys[len(keys)-1] + 1
		} else {
			hi = keys[len(keys)-1] - 1
		}
	}
	return out, nil
}

// siever keeps candidates to those every sieve of a plan lists too.
type siever struct {
	s    *Store
	p    *plan
	tail int64 // the first segment with a posting tail, -1 for none
	// The keys of the last segment read, for each sieve: the pages of
	// a full-text search meet one segment many times.
	seg  []int64
	keys [][]int64
}

// sift keeps of keys, ascending and all of one segment, those that each
// sieve of the plan lists, reusing keys' storage; fewer than sieveMin are
// kept as they are, to be checked on their events.
func (sv *siever) sift(ctx context.Context, keys []int64) ([]int64, error) {
	if sv.seg == nil {
		sv.seg, sv.keys = make([]int64, len(sv.p.sieves)), make([][]int64, len(sv.p.sieves))
		for i := range sv.seg {
			sv.seg[i] = -1
		}
	}
	for i, sq := range sv.p.sieves {
		if len(keys) < sieveMin {
			break
		}
		if seg := segOf(keys[0]); sv.seg[i] != seg {
			var err error
			sv.keys[i], err = sv.s.segmentKeys(ctx, sq, seg, seg<<segBits, (seg+1)<<segBits-1, sv.tail >= 0 && seg >= sv.tail, sv.keys[i])
			if err != nil {
				sv.seg[i] = -1
				return nil, err
			}
			sv.seg[i] = seg
		}
		keys = intersect(keys, sv.keys[i])
	}
	return keys, nil
}

// intersect keeps of a the keys that b holds too, both ascending, in a's
// storage.
func intersect(a, b []int64) []int64 {
	out := a[:0]
	j := 0
	for _, k := range a {
		for j < len(b) && b[j] < k {
			j++
		}
		if j < len(b) && b[j] == k {
			out = append(out, k)
		}
	}
	return out
}

// take reads the events of keys, in order, and appends those that match
// to out until it holds limit.
func take(ctx context.Context, r *bundleReader, p plan, keys []int64, out []*event.Event, limit int) ([]*event.Event, error) {
	for _, k := range keys {
		if len(out) >= limit {
			break
		}
		if k>>seqBits != r.log {
			continue
		}
		seq := k & (1<<seqBits - 1)
		e, err := r.get(ctx, seq)
		if err != nil {
			return nil, err
		}
		if e == nil {
			// Indexed, so once stored: the events were damaged. Skipping
			// it would hide it.
			return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
		}
		if p.match(e, p.drive != "fts") {
			out = append(out, e)
		}
	}
	return out, nil
}

// runScan reads the events of seqs [from, to] in seq order and keeps those
// that match, until limit do. Events missing below the highest one stored
// in the range fail it with a *store.DamagedError.
func (s *Store) runScan(ctx context.Context, r *bundleReader, p plan, from, to int64, limit int, asc, text bool) ([]*event.Event, error) {
	var out []*event.Event
	// Every bundle yielded holds a seq >= from. Ascending, next is the
	// seq the next bundle must start at or below; descending, below is the
	// first seq of the lowest bundle read (-1: none yet).
	next, below := from, int64(-1)
	for b, err := range s.bundles(ctx, r.log, from, to+1, !asc) {
		if err != nil {
			return nil, err
		}
		first, recs, err := splitBundle(b.k, b.data)
		if err != nil {
			return nil, err
		}
		last := first + int64(len(recs)) - 1
		switch {
		case asc && first > next:
			return nil, &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
		case !asc && below >= 0 && last+1 < below:
			return nil, &store.DamagedError{Seq: last + 1, Problem: store.ProblemMissing}
		case !asc && below < 0 && last < to:
			// The newest bundle ends before the range does.
			return nil, &store.DamagedError{Seq: last + 1, Problem: store.ProblemMissing}
		case asc && first < next && next > from:
			// Overlaps the bundle before: a seq stored twice.
			return nil, &store.DamagedError{Seq: first, Problem: "it is stored twice, in two overlapping bundles"}
		case !asc && below >= 0 && last >= below:
			return nil, &store.DamagedError{Seq: below, Problem: "it is stored twice, in two overlapping bundles"}
		}
		next, below = max(next, last+1), first
		// Only the events in range are decoded: damage outside it is
		// another search's to meet.
		lo, hi := max(from, first), min(to, last)
		for i := int64(0); i <= hi-lo; i++ {
			seq := lo + i
			if !asc {
				seq = hi - i
			}
			e, err := decodeRecord(r.name, seq, recs[seq-first])
			if err != nil {
				return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: err}
			}
			if p.match(e, text) {
				if out = append(out, e); len(out) >= limit {
					return out, nil
				}
			}
		}
	}
	switch {
	case !asc && (below > from || below < 0):
		return nil, &store.DamagedError{Seq: from, Problem: store.ProblemMissing}
	case asc && next <= to:
		return nil, &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
	}
	return out, nil
}

// The indexer stores the words of derive.Tokens, each event's distinct
// ones space-separated (derive.Text), in an FTS5 table whose ascii
// tokenizer splits them at the spaces only; queries and the scan of
// unindexed events split text with derive.Tokens too, so the index and
// the scan agree on every word (derive.Terms). ftsQuery is the FTS5 query
// of a query's terms.
func ftsQuery(terms []derive.Term) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + t.Text + `"`
		if t.Prefix {
			parts[i] += " *"
		}
	}
	return strings.Join(parts, " AND ")
}
