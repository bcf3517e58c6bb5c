package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// The derived data as stored (store.Derived): the rows of event_fields,
// event_targets, bundle_text and counts, which the indexer writes
// (indexer.go, index_write.go), read back for Log.VerifyIndex, and
// rebuilt from the events for Log.Reindex.
//
// Counts says how far the derived data goes; ResetIndex rebuilds it all
// before it returns.

var _ store.Derived = (*Store)(nil)

// readOnly is the transaction Postings and Counts read in: everything
// they read is of one instant.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// postingQueries read, for each index but the free-text one, each value
// it files events of a log under, with their seqs in a range [$2, $3).
// A column a search never matches is left out: an empty action or actor
// (every event has one; a search for "" does not filter), an empty ip
// (the event has none), outcome success (the outcome index holds the
// others), an empty target (the event has none).
var postingQueries = []struct {
	ix  store.Index
	sql string
}{
	{store.IndexAction, "SELECT action, '', array_agg(seq ORDER BY seq) FROM event_fields WHERE log = $1 AND seq >= $2 AND seq < $3 AND action <> '' GROUP BY action"},
	{store.IndexOutcome, "SELECT outcome, '', array_agg(seq ORDER BY seq) FROM event_fields WHERE log = $1 AND seq >= $2 AND seq < $3 AND outcome <> 'success' GROUP BY outcome"},
	{store.IndexActor, "SELECT actor, '', array_agg(seq ORDER BY seq) FROM event_fields WHERE log = $1 AND seq >= $2 AND seq < $3 AND actor <> '' GROUP BY actor"},
	{store.IndexIP, "SELECT ip, '', array_agg(seq ORDER BY seq) FROM event_fields WHERE log = $1 AND seq >= $2 AND seq < $3 AND ip <> '' GROUP BY ip"},
	{store.IndexTarget, `SELECT type, id, array_agg(DISTINCT seq ORDER BY seq) FROM (
		SELECT target_type AS type, target_id AS id, seq FROM event_fields WHERE log = $1 AND seq >= $2 AND seq < $3 AND (target_type <> '' OR target_id <> '')
		UNION ALL SELECT type, id, seq FROM event_targets WHERE log = $1 AND seq >= $2 AND seq < $3) t GROUP BY type, id`},
}

// Postings implements store.Derived, in one read-only REPEATABLE READ
// transaction: a grouped query per index, and for words one query of
// bundle_text's lexemes, each word as the indexer cut it (cutWord), whose
// positions are the events' places in their rows' blocks (seq - first_seq + 1).
func (s *Store) Postings(ctx context.Context, log, from, to int64, words []string) ([]store.Posting, error) {
	from = max(from, 0)
	var out []store.Posting
	err := pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		if err := logExists(ctx, tx, log); err != nil {
			return err
		}
		if from >= to {
			return nil
		}
		for _, q := range postingQueries {
			rows, err := tx.Query(ctx, q.sql, log, from, to)
			if err != nil {
				return fmt.Errorf("read the %s index: %w", q.ix, err)
			}
			var p store.Posting
			_, err = pgx.ForEachRow(rows, []any{&p.Value, &p.ID, &p.Seqs}, func() error {
				out = append(out, store.Posting{Index: q.ix, Value: p.Value, ID: p.ID, Seqs: slices.Clone(p.Seqs)})
				return nil
			})
			if err != nil {
				return fmt.Errorf("read the %s index: %w", q.ix, err)
			}
		}
		if len(words) == 0 {
			return nil
		}
		// The words asked for, by the word stored for each.
		asked := map[string][]string{}
		for _, w := range words {
			c := cutWord(w, maxWord)
			if !slices.Contains(asked[c], w) {
				asked[c] = append(asked[c], w)
			}
		}
		cut := make([]string, 0, len(asked))
		for c := range asked {
			cut = append(cut, c)
		}
		rows, err := tx.Query(ctx, `SELECT w.lexeme, t.first_seq, w.positions FROM bundle_text t, unnest(ts_filter(setweight(t.words, 'A', $5::text[]), '{a}')) w
			WHERE t.log = $1 AND t.first_seq >= $2 AND t.first_seq < $3 AND t.words @@ ANY($4::tsquery[])`,
			log, textStart(from), to, lexemeQueries(cut), cut)
		if err != nil {
			return fmt.Errorf("read the text index: %w", err)
		}
		found := map[string][]int64{}
		var word string
		var first int64
		var pos []int16
		_, err = pgx.ForEachRow(rows, []any{&word, &first, &pos}, func() error {
			for _, p := range pos {
				if seq := first + int64(p) - 1; seq >= from && seq < to {
					found[word] = append(found[word], seq)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the text index: %w", err)
		}
		for word, seqs := range found {
			seqs = slices.Compact(slices.Sorted(slices.Values(seqs)))
			for _, w := range asked[word] {
				out = append(out, store.Posting{Index: store.IndexText, Value: w, Seqs: slices.Clone(seqs)})
			}
		}
		return nil
	})
	return out, err
}

// lexemeQueries returns a tsquery of each word, which finds the rows
// that hold it through the GIN index.
func lexemeQueries(words []string) []string {
	qs := make([]string, len(words))
	for i, w := range words {
		qs[i] = tsLexeme(w)
	}
	return qs
}

// logExists returns store.ErrNotFound unless the log exists.
func logExists(ctx context.Context, tx pgx.Tx, log int64) error {
	var one int
	err := tx.QueryRow(ctx, "SELECT 1 FROM logs WHERE id = $1", log).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	return err
}

// wordsChunk is how many first seqs of rows a query of Words reads.
const wordsChunk = 1024

// mayBeCut says whether a stored word may have been cut from a longer
// one: cutWord keeps at least maxWord-utf8.UTFMax+1 bytes of a word it
// cuts.
func mayBeCut(w string) bool { return len(w) > maxWord-utf8.UTFMax }

// Words implements store.Derived: bundle_text's lexemes with their
// positions, a query per chunk of rows, so that no connection is held
// while fn runs. A stored word that the indexer may have cut is given as the
// word (or words) of the event's text that it was cut from, read from
// the event; one the event does not hold is given as stored.
func (s *Store) Words(ctx context.Context, log, to int64, fn func(word string, seq int64) error) error {
	size, err := s.logSize(ctx, log)
	if err != nil {
		return err
	}
	// Words past the size are read with the last chunk: a row is
	// filed under first seqs up to the size.
	end := min(to, size+bundleSize)
	type pair struct {
		word string
		seq  int64
	}
	var pairs []pair
	for lo := int64(0); lo < end; lo += wordsChunk {
		rows, err := s.pool.Query(ctx, `SELECT w.lexeme, t.first_seq, w.positions FROM bundle_text t, unnest(t.words) w
			WHERE t.log = $1 AND t.first_seq >= $2 AND t.first_seq < $3`, log, lo, min(lo+wordsChunk, end))
		if err != nil {
			return fmt.Errorf("read the text index: %w", err)
		}
		pairs = pairs[:0]
		var w string
		var first int64
		var pos []int16
		_, err = pgx.ForEachRow(rows, []any{&w, &first, &pos}, func() error {
			for _, p := range pos {
				if seq := first + int64(p) - 1; seq < to {
					pairs = append(pairs, pair{w, seq})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the text index: %w", err)
		}
		// A block's rows may file an event under a word twice.
		slices.SortFunc(pairs, func(a, b pair) int { return cmp.Or(cmp.Compare(a.word, b.word), cmp.Compare(a.seq, b.seq)) })
		pairs = slices.Compact(pairs)
		for _, p := range pairs {
			if !mayBeCut(p.word) {
				if err := fn(p.word, p.seq); err != nil {
					return err
				}
				continue
			}
			if err := s.uncut(ctx, log, p.word, p.seq, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// uncut calls fn with each word of event seq's text that the indexer cuts to
// w, or with w if there is none (the event is missing, damaged, or does
// not hold it).
func (s *Store) uncut(ctx context.Context, log int64, w string, seq int64, fn func(string, int64) error) error {
	var found []string
	e, err := s.Get(ctx, log, seq)
	switch {
	case err == nil:
		for _, full := range derive.Words(e) {
			if cutWord(full, maxWord) == w {
				found = append(found, full)
			}
		}
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDamaged):
	default:
		return err
	}
	if len(found) == 0 {
		found = append(found, w)
	}
	for _, full := range found {
		if err := fn(full, seq); err != nil {
			return err
		}
	}
	return nil
}

// Counts implements store.Derived: the counts table's rows of the log, in
// one read-only REPEATABLE READ transaction with how far they go.
func (s *Store) Counts(ctx context.Context, log int64, fn func(store.CountRow) error) (store.CountsTo, error) {
	var to store.CountsTo
	err := pgx.BeginTxFunc(ctx, s.pool, readOnly, func(tx pgx.Tx) error {
		var size, indexed, text, counted, rolled int64
		err := tx.QueryRow(ctx, "SELECT l.size, COALESCE(i.size, 0), COALESCE(t.size, 0), COALESCE(c.size, 0), COALESCE(c.rolled, 0) FROM "+progress+" WHERE l.id = $1",
			log).Scan(&size, &indexed, &text, &counted, &rolled)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		done := min(indexed, text, counted, size)
		to = store.CountsTo{Indexed: done, Rolled: min(rolled, done)}
		rows, err := tx.Query(ctx, "SELECT dim, span, hour, value, total, failure, denied, error FROM counts WHERE log = $1", log)
		if err != nil {
			return fmt.Errorf("read counts: %w", err)
		}
		var r store.CountRow
		var dim, span int16
		_, err = pgx.ForEachRow(rows, []any{&dim, &span, &r.Hour, &r.Value, &r.Total, &r.Failure, &r.Denied, &r.Error}, func() error {
			r.Dim, r.Span = store.CountDim(dim), store.Span(span)
			return fn(r)
		})
		return err
	})
	return to, err
}

// reindexChunk is how many events ResetIndex reads and indexes at a time.
const reindexChunk = 1024

// ResetIndex implements store.Derived, without waiting for the indexer:
// in one transaction, which first takes the log's indexing (so no
// indexer writes meanwhile) and then reads its size, it deletes the log's
// rows of event_fields, event_targets, bundle_text and counts, and writes
// them again from the events below that size, a chunk at a time, as the
// indexer does: memory stays bounded however long the log. Commits to the
// log go on meanwhile, on any node; the indexer indexes them once the
// rebuild commits (until then a commit may wait a moment for it, as for
// another node's indexer, once the log is maxIndexLag events ahead).
// Searches meanwhile read the derived data as it was, and the rebuilt
// data once it commits, so they are complete throughout.
//
// An event below the size that is missing or cannot be decoded fails the
// rebuild with a *store.DamagedError at its seq, and nothing changes:
// derived data without it would hide it from searches. Trail's verify
// says more.
func (s *Store) ResetIndex(ctx context.Context, log int64) (err error) {
	defer func() {
		if err != nil {
			err = s.explain(ctx, err)
		}
	}()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The deletes and the rewrite of a large log's indexes take longer
	// than an answer usually does.
	defer unbounded(tx.Conn().PgConn())()
	// Waiting for a migration, or an indexer, takes as long as it takes.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	// No indexer indexes the log meanwhile (indexer.go). The size is read
	// after: what an indexer wrote before it let go is deleted below with
	// the rest, and what is committed after the size is the indexer's
	// once this commits.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2::integer)", indexLockSpace, log); err != nil {
		return fmt.Errorf("lock the log's indexes: %w", err)
	}
	var size int64
	err = tx.QueryRow(ctx, "SELECT size FROM logs WHERE id = $1", log).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read the log's size: %w", err)
	}
	for _, table := range []string{"event_fields", "event_targets", "bundle_text", "counts"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE log = $1", log); err != nil {
			return fmt.Errorf("reset index: %s: %w", table, err)
		}
	}
	for from := int64(0); from < size; from += reindexChunk {
		to := min(size, from+reindexChunk)
		var r indexRows
		err := readEvents(ctx, tx, log, from, to, func(e *event.Event) error {
			r.add(log, e)
			r.addCounts(log, e)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
		if err := r.write(ctx, tx, nil); err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
	}
	for _, table := range []string{"indexed", "text_indexed"} {
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (log, size) VALUES ($1, $2) ON CONFLICT (log) DO UPDATE SET size = excluded.size", log, size); err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO counted (log, size, rolled) VALUES ($1, $2, $2)
		ON CONFLICT (log) DO UPDATE SET size = excluded.size, rolled = excluded.rolled`, log, size); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("reset index: commit: %w", err)
	}
	return nil
}
