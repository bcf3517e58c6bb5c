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
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// Search implements store.Indexes, in two parts: the events the indexer
// has not reached (at most maxIndexLag) are read from the log, and the
// others found through one index, chosen by the query's most selective
// filter, newest (or oldest) first, a chunk at a time: the seqs of
// event_fields (or event_targets) under the actor, target, ip, action or
// outcome asked for; else the blocks whose words (bundle_text) hold
// every term of the free text, with the events that do; else the
// bundles in seq order. It reads the bundles of the candidates, and
// checks each event against every filter of q (matches) but the words
// that bundle_text's positions found,
// until the page is full or the range is exhausted. An event the index
// finds that is missing, or that cannot be decoded, fails the search with
// a *store.DamagedError at its seq; so does one of the bundles read.
func (s *Store) Search(ctx context.Context, log int64, q store.Query) ([]*event.Event, error) {
	size, fields, text, err := s.indexedSize(ctx, log)
	if err != nil {
		return nil, err
	}
	if fields > size || text > size {
		return nil, indexPastEnd(max(fields, text), size)
	}
	// How far the index the query is looked up in goes.
	sql, args, byFields := fieldSQL(log, q)
	terms := derive.Terms(q.Text)
	indexed := fields
	if !byFields && len(terms) > 0 {
		indexed = text
	}
	limit := q.PageSize()
	from, to := max(q.From, 0), q.To
	if to < 0 || to >= size {
		to = size - 1
	}
	if from > to {
		return nil, nil
	}
	sr := &search{s: s, log: log, q: q, limit: limit, terms: terms}
	type part struct {
		from, to int64
		indexed  bool
	}
	parts := []part{{max(from, indexed), to, false}, {from, min(to, indexed-1), true}}
	if q.Asc {
		parts[0], parts[1] = parts[1], parts[0]
	}
	for _, p := range parts {
		if p.from > p.to || sr.full() {
			continue
		}
		switch {
		case !p.indexed:
			err = sr.byBundles(ctx, p.from, p.to)
		case byFields:
			err = sr.bySeqs(ctx, sql, args, p.from, p.to)
		case len(sr.terms) > 0:
			err = sr.byWords(ctx, p.from, p.to)
		default:
			err = sr.byBundles(ctx, p.from, p.to)
		}
		if err != nil {
			return nil, err
		}
	}
	return sr.out, nil
}

// indexedSize returns the size of log and how far its fields' indexes
// (event_fields, event_targets) and its words' (bundle_text) go.
func (s *Store) indexedSize(ctx context.Context, log int64) (size, fields, text int64, err error) {
	err = s.pool.QueryRow(ctx, "SELECT l.size, COALESCE(i.size, 0), COALESCE(t.size, 0) FROM "+progress+" WHERE l.id = $1",
		log).Scan(&size, &fields, &text)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err == nil && max(fields, text) <= size {
		s.noteSizes(log, -1, min(fields, text))
	}
	return size, fields, text, err
}

// search is a Search under way.
type search struct {
	s     *Store
	log   int64
	q     store.Query
	limit int
	terms []derive.Term
	out   []*event.Event
}

// full says whether the page is full.
func (sr *search) full() bool { return len(sr.out) >= sr.limit }

// consider adds e to the page if it matches every filter of the query;
// of its text, only if indexed is false: bundle_text's positions found
// the events that hold every term (byWords), as exactly as an index of
// the words of each event would, so what it found is as the index says,
// tampered or not.
func (sr *search) consider(e *event.Event, indexed bool) {
	terms := sr.terms
	if indexed {
		terms = nil
	}
	if !sr.full() && matches(sr.q, terms, e) {
		sr.out = append(sr.out, e)
	}
}

// matches reports whether e matches every filter of q, terms being those
// of q.Text: what the indexes found is checked again, as an index may
// find more than matches.
func matches(q store.Query, terms []derive.Term, e *event.Event) bool {
	switch {
	case q.Actor != "" && e.Actor.ID != q.Actor,
		len(q.Actions) > 0 && !slices.Contains(q.Actions, e.Action),
		q.ActionLike != "" && !strings.HasPrefix(e.Action, q.ActionLike),
		slices.Contains(q.NotActions, e.Action),
		q.NotActionLike != "" && strings.HasPrefix(e.Action, q.NotActionLike),
		q.Outcome != "" && e.Outcome != q.Outcome,
		q.IP != "" && e.Source.IP != q.IP:
		return false
	}
	if (q.TargetType != "" || q.TargetID != "") && !slices.ContainsFunc(e.Targets, func(t event.Target) bool {
		return (q.TargetType == "" || t.Type == q.TargetType) && (q.TargetID == "" || t.ID == q.TargetID)
	}) {
		return false
	}
	return len(terms) == 0 || derive.MatchTerms(terms, derive.SearchText(e))
}

// The buckets of seqs that the btree indexes of event_fields end with
// (0007_no_received_at.sql): 65536 seqs for actors, ips and targets,
// 1024 for actions and outcomes, which are few and common. Integers, not
// bigints: in an index entry of a text and a bigint the bigint is
// aligned to 8 bytes, and an entry of a target or an ip would take 8
// bytes more.
const (
	wideBucket   = "((seq >> 16)::integer)"
	narrowBucket = "((seq >> 10)::integer)"
)

// bucketRange is the condition that keeps bucket (wideBucket or
// narrowBucket) to the buckets of the seqs $2 to $3, which lets an index
// scan start at the bucket of the range's end rather than at the newest.
func bucketRange(bucket string) string {
	of := func(p string) string { return strings.Replace(bucket, "seq", p+"::bigint", 1) }
	return bucket + " >= " + of("$2") + " AND " + bucket + " <= " + of("$3")
}

// fieldSQL returns the statement that reads the seqs of candidates of q
// through an index of event_fields or event_targets, and its arguments
// after $1 (log), $2 and $3 (seq bounds, inclusive) and $4 (the limit),
// with ORDER BY ... DESC, which bySeqs turns around for an ascending
// search; ok is false when q has no field such an index serves. The
// statement filters on every field of event_fields the query names, but
// ORDER BY names the chosen index's bucket, which makes PostgreSQL read
// that index newest bucket first.
func fieldSQL(log int64, q store.Query) (sql string, args []any, ok bool) {
	args = []any{log, int64(0), int64(0), 0}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.TargetID != "" && q.Actor == "" {
		// The first target is in event_fields, the others in
		// event_targets: the newest of each, merged.
		t := arg(q.TargetID)
		return `SELECT seq FROM (
			(SELECT seq FROM event_fields WHERE log = $1 AND seq >= $2 AND seq <= $3 AND target_id = ` + t + ` AND target_id <> ''
				AND ` + bucketRange(wideBucket) + `
				ORDER BY ` + wideBucket + ` DESC, seq DESC LIMIT $4)
			UNION
			(SELECT seq FROM event_targets WHERE log = $1 AND seq >= $2 AND seq <= $3 AND id = ` + t + ` ORDER BY seq DESC LIMIT $4)
		) u ORDER BY seq DESC LIMIT $4`, args, true
	}
	var where []string
	cond := func(format string, a ...any) { where = append(where, fmt.Sprintf(format, a...)) }
	bucket := ""
	if q.Actor != "" {
		cond("actor = %s", arg(q.Actor))
		bucket = wideBucket
	}
	if q.IP != "" {
		cond("ip = %s AND ip <> ''", arg(q.IP)) // the partial index's predicate
		if bucket == "" {
			bucket = wideBucket
		}
	}
	switch len(q.Actions) {
	case 0:
	case 1:
		cond("action = %s", arg(q.Actions[0]))
		if bucket == "" {
			bucket = narrowBucket
		}
	default:
		cond("action = ANY(%s::text[])", arg(q.Actions))
	}
	if q.Outcome != "" && q.Outcome != event.Success {
		cond("outcome = %s AND outcome <> 'success'", arg(string(q.Outcome))) // the partial index's predicate
		if bucket == "" {
			bucket = narrowBucket
		}
	}
	words := q.Text != "" && len(derive.Terms(q.Text)) > 0
	prefix := bucket == "" && q.ActionLike != "" && !words
	if prefix {
		// The actions under the prefix, each read newest first through
		// the index of actions, merged (see below).
		bucket = narrowBucket
	}
	if bucket == "" || bucket == narrowBucket && q.Actor == "" && q.IP == "" && words {
		// No index of fields, or only one of actions or outcomes,
		// which are few and common: the words find fewer events.
		return "", nil, false
	}
	// The bounds of the buckets let the index scan start at the bucket
	// of the range's end, not at the newest.
	cond("%s", bucketRange(bucket))
	if q.Outcome == event.Success {
		cond("outcome = 'success'")
	}
	if q.ActionLike != "" && !prefix {
		cond("action LIKE %s", arg(likePrefix(q.ActionLike)))
	}
	if len(q.NotActions) > 0 {
		cond("action <> ALL(%s::text[])", arg(q.NotActions))
	}
	if q.NotActionLike != "" {
		cond("action NOT LIKE %s", arg(likePrefix(q.NotActionLike)))
	}
	if q.TargetID != "" {
		cond("(target_id = %[1]s OR EXISTS (SELECT 1 FROM event_targets t WHERE t.log = $1 AND t.seq = event_fields.seq AND t.id = %[1]s))", arg(q.TargetID))
	}
	if prefix {
		// The distinct actions under the prefix, one step down the
		// index of actions each (a loose index scan, which PostgreSQL
		// does not plan by itself), then each action's newest seqs:
		// a prefix few events have no longer reads the whole log.
		like := arg(likePrefix(q.ActionLike))
		return `SELECT seq FROM (
			WITH RECURSIVE acts(action) AS (
				SELECT min(action) FROM event_fields WHERE log = $1 AND action LIKE ` + like + `
				UNION ALL
				SELECT (SELECT min(action) FROM event_fields WHERE log = $1 AND action LIKE ` + like + ` AND action > acts.action)
					FROM acts WHERE acts.action IS NOT NULL
			)
			SELECT f.seq FROM acts, LATERAL (
				SELECT seq FROM event_fields WHERE log = $1 AND seq >= $2 AND seq <= $3 AND action = acts.action AND ` + strings.Join(where, " AND ") + `
				ORDER BY ` + bucket + ` DESC, seq DESC LIMIT $4) f
			WHERE acts.action IS NOT NULL
		) u ORDER BY seq DESC LIMIT $4`, args, true
	}
	return "SELECT seq FROM event_fields WHERE log = $1 AND seq >= $2 AND seq <= $3 AND " + strings.Join(where, " AND ") +
		" ORDER BY " + bucket + " DESC, seq DESC LIMIT $4", args, true
}

// bySeqs pages through the seqs that sql (fieldSQL) finds in [from, to],
// reads their events and keeps those that match. Each chunk asks for
// twice as many seqs as the one before, as long as the events found do
// not match.
func (sr *search) bySeqs(ctx context.Context, sql string, args []any, from, to int64) error {
	if sr.q.Asc {
		sql = strings.ReplaceAll(sql, " DESC", " ASC")
	}
	n := sr.limit
	for !sr.full() && from <= to {
		args[1], args[2], args[3] = from, to, n
		rows, err := sr.s.pool.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		if len(seqs) == 0 {
			return nil
		}
		evs, err := sr.s.events(ctx, sr.log, seqs)
		if err != nil {
			return err
		}
		for _, e := range evs {
			sr.consider(e, false)
		}
		if len(seqs) < n {
			return nil
		}
		if last := seqs[len(seqs)-1]; sr.q.Asc {
			from = last + 1
		} else {
			to = last - 1
		}
		n = min(2*n, store.MaxLimit)
	}
	return nil
}

// events reads the events at seqs, in that order, from their bundles: a
// missing one, or one whose record does not decode, is a
// *store.DamagedError at its seq (the first such seq of seqs).
//
// Each bundle's data is read where the driver received it, and only the
// records asked for are decoded, before the next row: a page of 100
// events may take 100 bundles, a megabyte, which copying cost as much as
// decoding the events.
func (s *Store) events(ctx context.Context, log int64, seqs []int64) ([]*event.Event, error) {
	want := map[int64][]int64{} // bundle start -> seqs in it
	var firsts []int64
	for _, seq := range seqs {
		f := bundleStart(seq)
		if _, ok := want[f]; !ok {
			firsts = append(firsts, f)
		}
		want[f] = append(want[f], seq)
	}
	rows, err := s.pool.Query(ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq = ANY($2::bigint[])", log, firsts)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	type read struct {
		e   *event.Event
		err error
	}
	got := make(map[int64]read, len(seqs))
	var first int64
	var data pgtype.DriverBytes
	if _, err := pgx.ForEachRow(rows, []any{&first, &data}, func() error {
		rs, ferr := splitBundle(data)
		for _, seq := range want[first] {
			switch i := seq - first; {
			case ferr != nil:
				got[seq] = read{err: framingDamage(seq)}
			case i >= int64(len(rs)) || len(rs[i]) == 0:
				got[seq] = read{err: &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}}
			default:
				e, err := decode(seq, rs[i])
				got[seq] = read{e, err}
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	out := make([]*event.Event, 0, len(seqs))
	for _, seq := range seqs {
		r, ok := got[seq]
		if !ok {
			return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
		}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, r.e)
	}
	return out, nil
}

// A query of byBundles reads at least bundleChunk bundles and at most
// maxBundleChunk; the number doubles with each query. byWords reads as
// many text rows.
const (
	bundleChunk    = 8
	maxBundleChunk = 1024
)

// byWords pages through the text rows (bundle_text) of [from, to] whose
// words hold every term of the query's text, newest (or oldest) first,
// reads the events their positions name, and keeps those that match. A
// missing event, or one that cannot be decoded, is a *store.DamagedError.
func (sr *search) byWords(ctx context.Context, from, to int64) error {
	dir := "DESC"
	if sr.q.Asc {
		dir = "ASC"
	}
	// The positions, in each row found, of the events whose words hold
	// every term: only those are read.
	args := []any{sr.log, int64(0), int64(0), 0, tsquery(sr.terms)}
	var each []string
	for _, t := range sr.terms {
		if len(t.Text) > maxTerm {
			t = derive.Term{Text: cutWord(t.Text, maxTerm), Prefix: true}
		}
		args = append(args, t.Text)
		arg := "$" + strconv.Itoa(len(args))
		if t.Prefix {
			each = append(each, "(SELECT unnest(w.positions) FROM unnest(r.words) w WHERE starts_with(w.lexeme, "+arg+"))")
			continue
		}
		// The lexeme alone, found by a binary search (setweight), out
		// of the thousands a row holds: unnesting them all costs ten
		// times as much.
		each = append(each, "(SELECT unnest(w.positions) FROM unnest(ts_filter(setweight(r.words, 'A', ARRAY["+arg+"::text]), '{a}')) w)")
	}
	// A block that several passes of the indexer filled has a row of
	// each; an event's words are all in one of them.
	sql := `SELECT t.first_seq, (SELECT array_agg(x.p) FROM bundle_text r, LATERAL (` + strings.Join(each, " INTERSECT ") + `) x(p)
			WHERE r.log = $1 AND r.first_seq = t.first_seq AND r.words @@ $5::tsquery) FROM
		(SELECT DISTINCT first_seq FROM bundle_text WHERE log = $1 AND first_seq >= $2 AND first_seq <= $3 AND words @@ $5::tsquery
			ORDER BY first_seq ` + dir + ` LIMIT $4) t ORDER BY t.first_seq ` + dir
	// The positions are exact unless a term is looked up by the start of
	// a word cut when stored, which may find events that do not hold it.
	exact := !slices.ContainsFunc(sr.terms, func(t derive.Term) bool { return len(t.Text) > maxTerm })
	lo, hi := textStart(from), to
	n := bundleChunk
	for !sr.full() && lo <= hi {
		args[1], args[2], args[3] = lo, hi, n
		bs, err := queryPaged[[]int16](ctx, sr.s, sql, args) // the positions
		if err != nil {
			return err
		}
		var seqs []int64
		for _, b := range bs {
			start := len(seqs)
			for _, p := range b.v {
				if seq := b.first + int64(p) - 1; seq >= from && seq <= to {
					seqs = append(seqs, seq)
				}
			}
			block := seqs[start:]
			slices.Sort(block)
			if !sr.q.Asc {
				slices.Reverse(block)
			}
			seqs = append(seqs[:start], slices.Compact(block)...)
		}
		for len(seqs) > 0 && !sr.full() {
			// Read a page's worth at a time: a block may name many.
			k := min(len(seqs), sr.limit-len(sr.out))
			evs, err := sr.s.events(ctx, sr.log, seqs[:k])
			if err != nil {
				return err
			}
			for _, e := range evs {
				sr.consider(e, exact)
			}
			seqs = seqs[k:]
		}
		if len(bs) < n {
			return nil
		}
		if last := bs[len(bs)-1].first; sr.q.Asc {
			lo = last + 1
		} else {
			hi = last - 1
		}
		n = min(2*n, maxBundleChunk)
	}
	return nil
}

// paged is a row of a query that byWords or byBundles pages through: the
// first seq of a block or bundle, and what goes with it.
type paged[T any] struct {
	first int64
	v     T
}

// queryPaged runs sql with args and returns its rows.
func queryPaged[T any](ctx context.Context, s *Store, sql string, args []any) ([]paged[T], error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (paged[T], error) {
		var p paged[T]
		err := r.Scan(&p.first, &p.v)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out, nil
}

// byBundles pages through the bundles that hold events in [from, to],
// newest (or oldest) first, reads their events and keeps those that
// match. A missing event, or one that cannot be decoded, is a
// *store.DamagedError.
func (sr *search) byBundles(ctx context.Context, from, to int64) error {
	dir := "DESC"
	if sr.q.Asc {
		dir = "ASC"
	}
	sql := `SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq >= $2 AND first_seq <= $3
		ORDER BY first_seq ` + dir + ` LIMIT $4`
	args := []any{sr.log, int64(0), int64(0), 0}
	// next is the seq that the next event read should have.
	lo, hi := bundleStart(from), to
	next := from
	if !sr.q.Asc {
		next = to
	}
	// As many bundles as the page would fill if every event matched, at
	// first; then as many as the share of events that matched so far
	// says the rest of the page needs. A page of an export is one query
	// of the bundles it needs: asking for as many bundles as the page
	// has events read sixteen times as many as it used.
	n := min(max(bundleChunk, (sr.limit+bundleSize-1)/bundleSize+1), maxBundleChunk)
	var read, matched int
	for !sr.full() && lo <= hi {
		args[1], args[2], args[3] = lo, hi, n
		bs, err := queryPaged[[]byte](ctx, sr.s, sql, args) // the data
		if err != nil {
			return err
		}
		had := len(sr.out)
		for _, b := range bs {
			recs, err := splitBundle(b.v)
			if err != nil {
				return framingDamage(max(b.first, from))
			}
			// The events of the bundle in [from, to], in the search's
			// order.
			lo, hi := max(b.first, from), min(b.first+bundleSize-1, to)
			for k := range hi - lo + 1 {
				seq := lo + k
				if !sr.q.Asc {
					seq = hi - k
				}
				if seq != next {
					return &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
				}
				i := seq - b.first
				if i >= int64(len(recs)) || len(recs[i]) == 0 {
					return &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
				}
				e, err := decode(seq, recs[i])
				if err != nil {
					return err
				}
				sr.consider(e, false)
				if sr.full() {
					return nil
				}
				if sr.q.Asc {
					next = seq + 1
				} else {
					next = seq - 1
				}
			}
		}
		if len(bs) < n {
			if sr.q.Asc && next <= to || !sr.q.Asc && next >= from {
				return &store.DamagedError{Seq: next, Problem: store.ProblemMissing}
			}
			return nil
		}
		if last := bs[len(bs)-1].first; sr.q.Asc {
			lo = last + 1
		} else {
			hi = last - 1
		}
		read, matched = read+len(bs), matched+len(sr.out)-had
		if matched == 0 {
			n = min(4*n, maxBundleChunk)
		} else {
			// A fifth more than the share found so far needs.
			need := (sr.limit - len(sr.out)) * read / matched
			n = min(max(bundleChunk, need+need/5+1), maxBundleChunk)
		}
	}
	return nil
}

// tsquery is the tsquery of terms: each a lexeme, or a prefix (:*), all
// of which must be there. A term longer than any word stored whole is
// looked up as a prefix of its start: a word that is it, or starts with
// it, is stored cut, but holds that start.
func tsquery(terms []derive.Term) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		if len(t.Text) > maxTerm {
			t = derive.Term{Text: cutWord(t.Text, maxTerm), Prefix: true}
		}
		parts[i] = tsLexeme(t.Text)
		if t.Prefix {
			parts[i] += ":*"
		}
	}
	return strings.Join(parts, " & ")
}

// SeqAtTime implements store.Indexes: the smallest seq received at or
// after t. Receipt times do not decrease along a log, so it searches the
// bundles for the first whose first event was received at or after t,
// narrowing the range sixteen bundles a query (seqAtProbes), then reads
// the events of the bundle before it. An event it reads that is missing
// or cannot be decoded fails it with a *store.DamagedError.
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
	// The first bundle b whose first event was received at or after t
	// is in [lo, hi]: those before lo were received before t, and hi is
	// such a bundle, or the number of bundles.
	lo, hi := int64(0), (size+bundleSize-1)/bundleSize
	for lo < hi {
		probes := make([]int64, 0, seqAtProbes)
		for k := range int64(seqAtProbes) {
			if b := lo + k*(hi-lo)/seqAtProbes; len(probes) == 0 || b > probes[len(probes)-1] {
				probes = append(probes, b)
			}
		}
		firsts := make([]int64, len(probes))
		for i, b := range probes {
			firsts[i] = b * bundleSize
		}
		recs, err := s.firstRecords(ctx, log, firsts)
		if err != nil {
			return 0, err
		}
		for _, b := range probes {
			seq := b * bundleSize
			e, err := decode(seq, recs[seq])
			if err != nil {
				return 0, err
			}
			if nanos(e.ReceivedAt) >= at {
				hi = b
				break
			}
			lo = b + 1
		}
	}
	if lo == 0 {
		return 0, nil
	}
	// The events of the bundle before, after its first.
	from, to := (lo-1)*bundleSize+1, min(lo*bundleSize, size)
	seq := to
	err = readEvents(ctx, s.pool, log, from, to, func(e *event.Event) error {
		if nanos(e.ReceivedAt) < at {
			return nil
		}
		seq = e.Seq
		return errStop
	})
	if err != nil && err != errStop {
		return 0, err
	}
	return seq, nil
}

// seqAtProbes is how many bundles a query of SeqAtTime reads.
const seqAtProbes = 16

// firstRecords returns the first record of each of the bundles of log
// starting at firsts, by first seq: a *store.DamagedError if one is
// missing.
func (s *Store) firstRecords(ctx context.Context, log int64, firsts []int64) (map[int64][]byte, error) {
	rows, err := s.pool.Query(ctx, "SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq = ANY($2::bigint[])", log, firsts)
	if err != nil {
		return nil, fmt.Errorf("read the log's bundles: %w", err)
	}
	out := make(map[int64][]byte, len(firsts))
	var first int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&first, &data}, func() error {
		recs, err := splitBundle(data)
		if err != nil {
			return framingDamage(first)
		}
		if len(recs) > 0 && len(recs[0]) > 0 {
			out[first] = slices.Clone(recs[0])
		}
		return nil
	})
	if err != nil {
		var de *store.DamagedError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("read the log's bundles: %w", err)
	}
	for _, f := range firsts {
		if out[f] == nil {
			return nil, &store.DamagedError{Seq: f, Problem: store.ProblemMissing}
		}
	}
	return out, nil
}

// WaitIndexed implements store.Indexes: it indexes the events committed
// before the call itself (indexer.go), taking turns with the indexers of
// other Stores.
func (s *Store) WaitIndexed(ctx context.Context, log int64) error {
	size, err := s.logSize(ctx, log)
	if err != nil {
		return err
	}
	for {
		done, rolled, err := s.indexTo(ctx, log, size, true)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// A pass that got no answer within indexTimeout (a
			// partition, or rows held by a transaction cut off by
			// one): try again, as the indexer does, while the caller
			// waits.
			err = nil
		}
		if err != nil || done >= size && rolled >= size {
			return err
		}
		select { // another indexer indexes the log
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// IndexStatus implements store.Indexes: a log's lag is the events its
// search indexes or counts do not cover yet, and the failures are the
// indexer's.
func (s *Store) IndexStatus(ctx context.Context) (store.IndexStatus, error) {
	st := store.IndexStatus{Lag: map[int64]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT l.id, GREATEST(l.size - LEAST(COALESCE(i.size, 0), COALESCE(t.size, 0), COALESCE(c.size, 0)), 0) FROM `+progress)
	if err != nil {
		return st, err
	}
	var id, lag int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &lag}, func() error {
		st.Lag[id] = lag
		return nil
	}); err != nil {
		return st, err
	}
	if c := s.indexer; c != nil {
		c.mu.Lock()
		st.Failures, st.Err = c.failures, c.err
		c.mu.Unlock()
	}
	return st, nil
}

// maxTerm is the longest term looked up as it is: every word stored cut
// is longer.
const maxTerm = maxWord - utf8.UTFMax

// likePrefix is the LIKE pattern of the strings starting with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// indexPastEnd is the error of a search index that says it covers more
// events than the log holds: its progress was changed outside Trail, and
// the events it claims are not in it, so a search through it would leave
// them out.
func indexPastEnd(indexed, size int64) error {
	return &store.DamagedError{Seq: size, Problem: fmt.Sprintf("the search indexes say they cover %d events, past the log's %d: their progress was changed outside Trail (trail verify --index says more; trail reindex rebuilds them)", indexed, size)}
}
