package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store"
)

// Commit implements store.Log. All batches go into one transaction, which
// first locks the rows of their logs, in id order so that two commits to
// the same logs cannot deadlock: a commit to a log waits for the one in
// progress, on any node, and then sees the size it left. Each batch must
// start at its log's size as moved by the batches before it (else
// store.ErrConflict), and no event may be stored at or past that size
// (else a *store.DamagedError). The lock is FOR NO KEY UPDATE, which
// serialises committers as FOR UPDATE would, but lets keys and
// idempotency records referencing the log be inserted meanwhile. The
// search indexes and counts follow (indexer.go).
//
// The transaction commits with synchronous_commit on (Open), so when
// Commit returns nil the batches are durable; when it returns an error,
// nothing of any batch is stored, except that the connection may be lost
// while the transaction commits, when the error says that the outcome is
// unknown.
//
// When PostgreSQL cannot be reached or the connection is lost, the error
// matches ErrUnavailable and says so; the Store reconnects by itself once
// PostgreSQL is back.
func (s *Store) Commit(ctx context.Context, batches []store.Batch) error {
	var ids []int64
	for _, b := range batches {
		if len(b.Events) > 0 && !slices.Contains(ids, b.Log) {
			ids = append(ids, b.Log)
		}
	}
	// Encoded before the transaction, which holds the logs' locks.
	data := encode(batches)
	return s.commit(ctx, ids, nil, func(map[int64]int64, map[int64]store.State) ([]store.Batch, [][][]byte, error) {
		return batches, data, nil
	})
}

// CommitLocked implements store.LockingLog: it is Commit, with the
// batches built by build once the transaction holds the logs' rows, from
// the sizes it read under the lock and the states of the logs that moved,
// read in the same round trip. The writers of one log, on every node,
// thus take turns in PostgreSQL rather than race and retry. Where this
// Store made the last commit to every log and known has them where it
// left them, build is called first with those sizes, and the commit
// checked under the lock (commitKnown).
func (s *Store) CommitLocked(ctx context.Context, known map[int64]int64, build func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, error)) error {
	return s.commit(ctx, slices.Collect(maps.Keys(known)), known, func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, [][][]byte, error) {
		batches, err := build(sizes, moved)
		if err != nil {
			return nil, nil, &buildError{err}
		}
		return batches, encode(batches), nil
	})
}

// buildError carries the error of CommitLocked's build out of the
// transaction, untouched by explain.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// encode returns the canonical form of every event of batches: their
// Records, where the writer kept them.
func encode(batches []store.Batch) [][][]byte {
	data := make([][][]byte, len(batches))
	for i, b := range batches {
		if len(b.Records) == len(b.Events) {
			data[i] = b.Records
			continue
		}
		data[i] = make([][]byte, len(b.Events))
		for j, e := range b.Events {
			data[i][j] = canon.Append(nil, e)
		}
	}
	return data
}

// commit stores, in one transaction, the batches that batches returns
// when given the sizes of the logs ids and the states of those whose size
// is not the one known has for them, read once the transaction holds
// their rows (see Commit).
//
// Where this Store made the last commit to each of the logs, and known
// says they are where it left them, the batches are built on that and
// the commit takes one round trip (commitKnown). Otherwise, or if that
// guess proves wrong, it takes two while it holds the rows: one begins
// the transaction, locks the rows, looks for events stored past each
// log's end and reads the states of the logs that moved; the other
// writes everything and commits. The fewer round trips a commit holds a
// log for, the more commits of other servers the log takes.
func (s *Store) commit(ctx context.Context, ids []int64, known map[int64]int64, batches func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, [][][]byte, error)) (err error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil
	}
	committing := false
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	defer func() {
		var be *buildError
		if err == nil || errors.As(err, &be) {
			if be != nil {
				err = be.err
			}
			return
		}
		if ctx.Err() != nil && parent.Err() == nil {
			// No answer in time: PostgreSQL, or the way to it, is gone
			// without closing the connection (a network partition).
			err = &unavailableError{fmt.Sprintf("postgres: PostgreSQL at %s did not answer within %v (%v): the network to it is down, it is stalled, or this server was paused meanwhile (stopped, or its machine frozen); Trail reconnects by itself", s.srv.addr, commitTimeout, err)}
		}
		err = s.explain(parent, err)
		if committing && errors.Is(err, ErrUnavailable) {
			err = &commitUnknownError{err.Error() + "; the connection broke while the transaction was committing, so whether this commit was stored is unknown"}
		}
	}()
	s.keepUp(ctx, ids)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// A connection given back inside a transaction, after a failure, is
	// closed by the pool, which rolls the transaction back; rolling back
	// first keeps the connection.
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, conn)
		}
		conn.Release()
	}()
	// The tips are forgotten until this commit says where it left the
	// logs: a commit that fails may leave them anywhere.
	defer func() {
		if !committed {
			s.tips.moved(ids, false)
		}
	}()

	if guess, ok := s.tips.known(ids, known); ok && known != nil {
		err := s.commitKnown(ctx, conn, ids, guess, batches, &committing)
		if !errors.Is(err, errGuessWrong) {
			committed = err == nil
			return err
		}
		// Another Store committed to a log meanwhile, or its end is not
		// as this Store left it: through the lock and read, then.
		rollback(ctx, conn)
		s.tips.moved(ids, true)
	}

	var first pgx.Batch
	first.Queue("BEGIN")
	first.Queue(genericPlans)
	first.Queue(lockQuery, ids)
	// Each statement of the pipeline reads what was committed when it
	// starts: these, after the lock was granted, see the commit of any
	// other server that held it.
	for _, id := range ids {
		first.Queue(strayQuery, id)
	}
	var movedIDs []int64
	for _, id := range ids {
		if size, ok := known[id]; ok {
			first.Queue(movedStateQuery, id, size)
			movedIDs = append(movedIDs, id)
		}
	}
	res := conn.SendBatch(ctx, &first)
	locked, strays, moved, err := s.readLocked(ctx, res, ids, movedIDs)
	if cerr := res.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lock logs: %w", cerr)
	}
	if err != nil {
		return err
	}
	bs, data, err := batches(sizesOf(locked), moved)
	if err != nil {
		return err
	}
	var q pgx.Batch
	w, err := queueWrites(&q, ids, locked, strays, bs, data)
	if err != nil || w == nil {
		return err
	}
	committing = true
	if err := closeCommit(conn.SendBatch(ctx, &q)); err != nil {
		if pgconn.SafeToRetry(err) {
			committing = false // nothing reached the server
		}
		return err
	}
	committed = true
	s.committed(bs, locked, w)
	return nil
}

// commitTimeout bounds a commit, from taking a connection to its COMMIT's
// answer: past it the commit fails as unavailable (its outcome unknown
// if COMMIT was sent), rather than wait for the operating system to give
// up on a connection whose packets go nowhere (about 15 minutes on
// Linux). Well past idleInTransaction, which bounds how long another
// node's commit can hold the log. A variable for tests.
var commitTimeout = time.Minute

// errGuessWrong says that a log was not where commitKnown guessed.
var errGuessWrong = errors.New("the log is not where this server's last commit left it")

// guardQuery fails with division_by_zero (22012) unless log $1 holds $2
// events, the SHA-256 of the data of its bundle at $3 (the one that holds
// seq $2) is $4, or the bundle is absent and $4 empty, and no bundle
// starts past it: the log is exactly as a commit of this Store left it,
// and nothing was stored past its end since. commitKnown runs it after
// the log's lock is granted.
const guardQuery = `SELECT 1 / (COALESCE((SELECT size FROM logs WHERE id = $1), -1) = $2
	AND COALESCE((SELECT sha256(data) FROM event_bundles WHERE log = $1 AND first_seq = $3), '') = $4
	AND NOT EXISTS (SELECT 1 FROM event_bundles WHERE log = $1 AND first_seq > $3))::integer`

// commitKnown is commit in one round trip, with the batches built on
// the logs' tips in guess: it begins the transaction, locks the logs'
// rows, checks each log against its tip (guardQuery), writes and
// commits. It returns errGuessWrong, with the transaction to roll back,
// when a log is not where its tip says.
func (s *Store) commitKnown(ctx context.Context, conn *pgxpool.Conn, ids []int64, guess map[int64]tip, batches func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, [][][]byte, error), committing *bool) error {
	bs, data, err := batches(sizesOf(guess), nil)
	if err != nil {
		// The caller's state of a log moved since it gave known (a read
		// reloaded it, say): build again with the logs as locked. Any
		// other error build gives again there.
		return errGuessWrong
	}
	var q pgx.Batch
	q.Queue("BEGIN")
	q.Queue(genericPlans)
	q.Queue(lockQuery, ids)
	for _, id := range ids {
		sum := []byte{}
		if b := guess[id].bundle; b != nil {
			h := sha256.Sum256(b)
			sum = h[:]
		}
		q.Queue(guardQuery, id, guess[id].size, bundleStart(guess[id].size), sum)
	}
	guards := q.Len()
	w, err := queueWrites(&q, ids, guess, nil, bs, data)
	if err != nil || w == nil {
		return err
	}
	*committing = true
	res := conn.SendBatch(ctx, &q)
	for i := 0; i < guards; i++ {
		if _, err := res.Exec(); err != nil {
			res.Close()
			if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "22012" {
				*committing = false
				return errGuessWrong
			}
			if pgconn.SafeToRetry(err) {
				*committing = false // nothing reached the server
			}
			return fmt.Errorf("lock logs: %w", err)
		}
	}
	if err := closeCommit(res); err != nil {
		return err
	}
	s.committed(bs, guess, w)
	return nil
}

// rollback rolls back the transaction conn is in, if any.
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	conn.Exec(rctx, "ROLLBACK")
	cancel()
}

// genericPlans has a commit's statements run on their prepared, generic
// plans. Otherwise PostgreSQL plans some of them again at each run (it
// keeps a custom plan while it estimates the generic one dearer), and
// planning the state and stray queries, lookups by key, took longer than
// running them, while the commit held its logs and other servers' commits
// waited.
const genericPlans = "SET LOCAL plan_cache_mode = force_generic_plan"

// lockQuery locks the rows of logs $1, in id order, and reads their
// sizes (see Commit).
const lockQuery = "SELECT id, size FROM logs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"

// sizesOf returns the sizes of the logs of ends: where a commit found
// them under the lock, or guessed them (a log missing from ends does not
// exist).
func sizesOf(ends map[int64]tip) map[int64]int64 {
	sizes := make(map[int64]int64, len(ends))
	for id, tp := range ends {
		sizes[id] = tp.size
	}
	return sizes
}

// writes are the rows a commit writes.
type writes struct {
	logs    []int64 // written, in order
	bundles bundleRows
}

// queueWrites checks the batches bs of a commit, which locked the logs
// ids and found them as locked says (and for each, what checkStray said
// in strays), and queues in q the statements that write them and
// commit. It returns nil and no error if no batch has events.
func queueWrites(q *pgx.Batch, ids []int64, locked map[int64]tip, strays map[int64]error, bs []store.Batch, data [][][]byte) (*writes, error) {
	w := &writes{}
	for i := range bs {
		if len(bs[i].Events) == 0 {
			continue
		}
		if !slices.Contains(ids, bs[i].Log) {
			return nil, fmt.Errorf("batch of log %d, which the commit did not lock", bs[i].Log)
		}
		if !slices.Contains(w.logs, bs[i].Log) {
			w.logs = append(w.logs, bs[i].Log)
		}
	}
	if len(w.logs) == 0 {
		return nil, nil
	}
	slices.Sort(w.logs)
	for _, id := range w.logs {
		if _, ok := locked[id]; !ok {
			return nil, fmt.Errorf("log %d: %w", id, store.ErrNotFound)
		}
		if strays[id] != nil {
			return nil, strays[id]
		}
	}
	sizes := sizesOf(locked)
	var idem idempotencyRows
	for i := range bs {
		if err := commitBatch(q, &bs[i], data[i], sizes, &w.bundles, &idem); err != nil {
			return nil, err
		}
	}
	w.bundles.queue(q)
	idem.queue(q)
	// A statement that fails makes PostgreSQL skip the rest of the
	// pipeline, COMMIT included: the transaction is then rolled back.
	q.Queue("COMMIT")
	return w, nil
}

// closeCommit reads the rest of the results of a pipeline that ends in
// COMMIT.
func closeCommit(res pgx.BatchResults) error {
	if err := res.Close(); err != nil {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "idempotency_pkey" {
			return &buildError{fmt.Errorf("%s: %w", pe.Detail, store.ErrIdempotencyTaken)}
		}
		return fmt.Errorf("store the events, tiles and checkpoints: %w", err)
	}
	return nil
}

// committed notes a commit of batches bs, which found the logs as locked
// says and wrote w: the indexer follows it from memory (indexer.go), and
// the logs' tips are where it left them.
func (s *Store) committed(bs []store.Batch, locked map[int64]tip, w *writes) {
	end := map[int64]int64{}
	for _, b := range bs {
		if len(b.Events) > 0 {
			s.recent.Add(b.Log, b.Events)
			end[b.Log] = b.Events[len(b.Events)-1].Seq + 1
			s.noteSizes(b.Log, end[b.Log], -1)
		}
	}
	for _, id := range w.logs {
		size, start := end[id], bundleStart(end[id])
		var data []byte
		if old := locked[id]; bundleStart(old.size) == start {
			data = slices.Clone(old.bundle)
		}
		if i, ok := w.bundles.at[[2]int64{id, start}]; ok {
			data = append(data, w.bundles.rowData(i)...)
		}
		s.tips.set(id, tip{size: size, bundle: data})
	}
	s.wakeIndexer()
}

// strayQuery reads the bundle of log $1 that holds the seq at its size,
// and the next: its data, and only the next one's first seq. LATERAL
// makes the bundles an index range from the size, as read: a join let
// the planner scan every bundle of the log and filter, which took longer
// the longer the log (3 ms at 100,000 events), under the log's lock.
const strayQuery = `SELECT b.first_seq, CASE WHEN b.first_seq = s.start THEN b.data END
	FROM (SELECT (size / 16) * 16 AS start FROM logs WHERE id = $1) s,
	LATERAL (SELECT first_seq, data FROM event_bundles WHERE log = $1 AND first_seq >= s.start ORDER BY first_seq LIMIT 2) b`

// readLocked reads the results of commit's first round trip: the logs
// found and locked, what checkStray says of each, and the states of those
// of movedIDs that moved.
func (s *Store) readLocked(ctx context.Context, res pgx.BatchResults, ids, movedIDs []int64) (locked map[int64]tip, strays map[int64]error, states map[int64]store.State, err error) {
	for range 2 { // BEGIN, genericPlans
		if _, err := res.Exec(); err != nil {
			return locked, nil, nil, fmt.Errorf("begin: %w", err)
		}
	}
	rows, err := res.Query()
	if err != nil {
		return locked, nil, nil, fmt.Errorf("lock logs: %w", err)
	}
	locked = make(map[int64]tip, len(ids))
	var id, size int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &size}, func() error {
		locked[id] = tip{size: size}
		return nil
	}); err != nil {
		return locked, nil, nil, fmt.Errorf("lock logs: %w", err)
	}
	strays = make(map[int64]error, len(ids))
	for _, id := range ids {
		end, ok := locked[id]
		data, err := checkStray(res, id, end.size)
		if err != nil {
			var de *store.DamagedError
			if !errors.As(err, &de) {
				return locked, nil, nil, err
			}
			strays[id] = err
		}
		if ok {
			end.bundle = data
			locked[id] = end
		}
	}
	states = make(map[int64]store.State, len(movedIDs))
	for _, id := range movedIDs {
		rows, err := res.Query()
		if err != nil {
			return locked, nil, nil, fmt.Errorf("read the log's state: %w", err)
		}
		st, err := s.scanState(ctx, id, rows)
		if errors.Is(err, store.ErrNotFound) {
			continue // no such log, or it has not moved
		}
		if err != nil {
			return locked, nil, nil, fmt.Errorf("read the log's state: %w", err)
		}
		states[id] = st
	}
	return locked, strays, states, nil
}

// checkStray reads the result of the query that commit queues first for
// log id, whose size is size: the bundle that holds seq size, and the
// next one. It returns a *store.DamagedError if an event is stored at or
// past size, outside Trail, which the commit would clash with or hide
// among its own; and if one is missing from the bundle that the commit
// appends to, where the commit's events would then lie at other seqs. It
// returns the data of the bundle that holds seq size, nil where there is
// none.
func checkStray(res pgx.BatchResults, id, size int64) ([]byte, error) {
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("read the log's last events: %w", err)
	}
	start := bundleStart(size)
	var first int64
	var data []byte
	var stray error
	var at []byte
	found := false
	_, err = pgx.ForEachRow(rows, []any{&first, &data}, func() error {
		if first == start {
			found, at = true, data
		}
		if stray != nil {
			return nil
		}
		if first > start {
			stray = &store.DamagedError{Seq: first, Problem: fmt.Sprintf("it is stored past the end of the log (%d events)", size)}
			return nil
		}
		recs, err := splitBundle(data)
		switch {
		case err != nil:
			stray = framingDamage(start)
		case int64(len(recs)) > size-start:
			at := size
			for i := size - start; i < int64(len(recs)); i++ {
				if len(recs[i]) > 0 {
					at = start + i
					break
				}
			}
			stray = &store.DamagedError{Seq: at, Problem: fmt.Sprintf("it is stored past the end of the log (%d events)", size)}
		case int64(len(recs)) < size-start:
			stray = &store.DamagedError{Seq: start + int64(len(recs)), Problem: store.ProblemMissing}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the log's last events: %w", err)
	}
	if stray == nil && size > start && !found {
		// The bundle the commit would append to is missing.
		stray = &store.DamagedError{Seq: start, Problem: store.ProblemMissing}
	}
	return at, stray
}

// bundleRows are the bundle rows a commit writes: the data it adds to
// each, in order of log and first seq, framed into one buffer, of which
// row i's data is data[offs[i]:offs[i]+lens[i]].
type bundleRows struct {
	logs, firsts []int64
	offs, lens   []int32
	data         []byte
	at           map[[2]int64]int // index of each (log, first seq)
}

// add appends the records recs of the events first, first+1, … of log
// to the rows.
func (b *bundleRows) add(log, first int64, recs [][]byte) {
	n := 0
	for _, rec := range recs {
		n += binary.MaxVarintLen32 + len(rec)
	}
	b.data = slices.Grow(b.data, n)
	if b.at == nil {
		b.at = map[[2]int64]int{}
	}
	for i := 0; i < len(recs); {
		seq := first + int64(i)
		key := [2]int64{log, bundleStart(seq)}
		end := min(len(recs), i+int(key[1]+bundleSize-seq))
		r, ok := b.at[key]
		switch {
		case !ok:
			r = len(b.logs)
			b.at[key] = r
			b.logs, b.firsts = append(b.logs, log), append(b.firsts, key[1])
			b.offs, b.lens = append(b.offs, int32(len(b.data))), append(b.lens, 0)
		case int(b.offs[r]+b.lens[r]) != len(b.data):
			// Another row's data follows: the row moves to the end.
			old := b.rowData(r)
			b.offs[r] = int32(len(b.data))
			b.data = append(b.data, old...)
		}
		for _, rec := range recs[i:end] {
			b.data = appendRecord(b.data, rec)
		}
		b.lens[r] = int32(len(b.data)) - b.offs[r]
		i = end
	}
}

// rowData returns the data of row i.
func (b *bundleRows) rowData(i int) []byte { return b.data[b.offs[i] : b.offs[i]+b.lens[i]] }

// queue queues the statement that writes the rows: a new bundle is
// inserted, and the one a commit before left part full grows. Their data
// goes as one parameter, of which each row takes its part: pgx copies a
// value once, where it grows its buffer for an array element by
// element.
func (b *bundleRows) queue(q *pgx.Batch) {
	if len(b.logs) == 0 {
		return
	}
	q.Queue(`INSERT INTO event_bundles (log, first_seq, data)
		SELECT l, f, substring($3::bytea FROM o + 1 FOR n) FROM unnest($1::bigint[], $2::bigint[], $4::integer[], $5::integer[]) AS u(l, f, o, n)
		ON CONFLICT (log, first_seq) DO UPDATE SET data = event_bundles.data || excluded.data`, b.logs, b.firsts, b.data, b.offs, b.lens)
}

// idempotencyRows are the idempotency records a commit stores, as
// columns to send with unnest.
type idempotencyRows struct {
	scopes, keys       []string
	logs, created, old []int64
	fingerprints, recs [][]byte
}

func (r *idempotencyRows) add(log int64, rec store.Idempotency) {
	old := int64(math.MaxInt64) // replaces any record
	if !rec.Replaces.IsZero() {
		old = nanos(rec.Replaces)
	}
	r.scopes, r.keys, r.logs = append(r.scopes, rec.Scope), append(r.keys, rec.Key), append(r.logs, log)
	r.created, r.old = append(r.created, nanos(rec.CreatedAt)), append(r.old, old)
	r.fingerprints, r.recs = append(r.fingerprints, rec.Fingerprint), append(r.recs, rec.Receipts)
}

// queue queues the statements that store the records. A record older
// than the replay window may still hold a key; the new request replaces
// it. A newer one was committed by another request meanwhile, through
// another server say: the insert then violates the key, which fails the
// commit (ErrIdempotencyTaken).
func (r *idempotencyRows) queue(q *pgx.Batch) {
	if len(r.keys) == 0 {
		return
	}
	q.Queue(`DELETE FROM idempotency i USING unnest($1::text[], $2::text[], $3::bigint[]) AS d(scope, key, old)
		WHERE i.scope = d.scope AND i.key = d.key AND i.created_at < d.old`, r.scopes, r.keys, r.old)
	q.Queue(`INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[])`,
		r.scopes, r.keys, r.logs, r.fingerprints, r.recs, r.created)
}

// commitBatch checks b against the sizes of the logs, queues in q the
// writes of b's tiles, checkpoint, idempotency records and size, adds its
// events to bundles, and moves b's log's size in sizes.
func commitBatch(q *pgx.Batch, b *store.Batch, data [][]byte, sizes map[int64]int64, bundles *bundleRows, idem *idempotencyRows) error {
	if len(b.Events) == 0 {
		return nil
	}
	size, ok := sizes[b.Log]
	if !ok {
		return fmt.Errorf("log %d: %w", b.Log, store.ErrNotFound)
	}
	first := b.Events[0].Seq
	for i, e := range b.Events {
		if e.Seq != first+int64(i) {
			return fmt.Errorf("batch seqs not contiguous at %d: %w", e.Seq, store.ErrConflict)
		}
	}
	if first != size {
		return fmt.Errorf("log %d has %d events, batch starts at %d: %w", b.Log, size, first, store.ErrConflict)
	}
	last := b.Events[len(b.Events)-1]
	if b.Checkpoint.Size != last.Seq+1 {
		return fmt.Errorf("checkpoint size %d does not cover batch ending at %d", b.Checkpoint.Size, last.Seq)
	}
	bundles.add(b.Log, first, data)
	if len(b.Tiles) > 0 {
		levels := make([]int32, len(b.Tiles))
		idxs := make([]int64, len(b.Tiles))
		tiles := make([][]byte, len(b.Tiles))
		for i, t := range b.Tiles {
			levels[i], idxs[i], tiles[i] = int32(t.Level), t.Index, t.Data
		}
		q.Queue(`INSERT INTO tiles (log, level, idx, data) SELECT $1, * FROM unnest($2::integer[], $3::bigint[], $4::bytea[])
			ON CONFLICT (log, level, idx) DO UPDATE SET data = excluded.data`, b.Log, levels, idxs, tiles)
	}
	q.Queue("INSERT INTO checkpoints (log, size, signed_at, note) VALUES ($1, $2, $3, $4)",
		b.Log, b.Checkpoint.Size, nanos(b.Checkpoint.SignedAt), b.Checkpoint.Note)
	for _, r := range b.Idempotency {
		idem.add(b.Log, r)
	}
	q.Queue("UPDATE logs SET size = $1, last_received_at = $2 WHERE id = $3", last.Seq+1, nanos(last.ReceivedAt), b.Log)
	sizes[b.Log] = last.Seq + 1
	return nil
}

// Writable implements store.Log: it begins a read-write transaction,
// takes the lock on the logs table that a commit's FOR NO KEY UPDATE of
// its logs' rows takes (ROW SHARE), and rolls back. It fails if the
// database cannot be reached, waits while something holds the table
// against commits (LOCK TABLE logs IN EXCLUSIVE MODE, say), and reports a
// server in recovery (a standby), where nothing can be written.
// When PostgreSQL cannot be reached, the error matches ErrUnavailable and
// says why, like Commit's.
//
// A ctx that ends before the lock is asked for is PostgreSQL not
// answering in time (a network partition, say), not a lock held: the
// error then matches ErrUnavailable and says so.
func (s *Store) Writable(ctx context.Context) error {
	start := time.Now()
	locking := false
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		var standby bool
		if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
			return err
		}
		if standby {
			return errors.New("postgres: the server is a read-only standby")
		}
		locking = true
		_, err := tx.Exec(ctx, "LOCK TABLE logs IN ROW SHARE MODE")
		return err
	})
	if err != nil && !locking && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &unavailableError{fmt.Sprintf("postgres: PostgreSQL at %s did not answer within %v: is the network to it down, is it stalled or overloaded, or was this server paused meanwhile?",
			s.srv.addr, time.Since(start).Round(time.Millisecond))}
	}
	return s.explain(ctx, err)
}
