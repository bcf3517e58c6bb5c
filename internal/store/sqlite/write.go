package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// bundlesPerInsert is how many bundles one multi-row INSERT carries.
const bundlesPerInsert = 8

// inserter holds the write connection's prepared statements.
type inserter struct {
	one, many *sql.Stmt // events: 1 bundle, bundlesPerInsert bundles
	action    *sql.Stmt // a new action, counted by the indexer
	count     *sql.Stmt // the indexer's: adds to an action's count
	tile      *sql.Stmt
	ckpt      *sql.Stmt
	setSize   *sql.Stmt
	last      *sql.Stmt // the key and header of a log's highest bundle
	// The indexer's: counts, rowsPerRollup rows and 1 row; index rows,
	// for each of indexTables the sizes of indexRowsPerInsert.
	rollup, rollup1 *sql.Stmt
	index           []*sql.Stmt
	tail            *sql.Stmt // a posting tail row (tail.go)
}

func newInserter(ctx context.Context, w *sql.DB) (*inserter, error) {
	rows := strings.TrimSuffix(strings.Repeat("(?, ?), ", bundlesPerInsert), ", ")
	in := &inserter{}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&in.one, "INSERT INTO events (k, data) VALUES (?, ?)"},
		{&in.many, "INSERT INTO events (k, data) VALUES " + rows},
		{&in.action, "INSERT OR IGNORE INTO actions (log, action, count) VALUES (?, ?, 0)"},
		{&in.count, "INSERT INTO actions (log, action, count) VALUES (?, ?, ?) ON CONFLICT (log, action) DO UPDATE SET count = count + excluded.count"},
		{&in.tile, "INSERT INTO tiles (k, data) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET data = excluded.data"},
		{&in.ckpt, "INSERT INTO checkpoints (log, size, signed_at, note) VALUES (?, ?, ?, ?)"},
		{&in.setSize, "UPDATE logs SET size = ?, last_received_at = ? WHERE id = ? AND size = ?"},
		{&in.last, "SELECT k, substr(data, 1, 2) FROM events WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT 1"},
		{&in.rollup, addRollup(rowsPerRollup)},
		{&in.rollup1, addRollup(1)},
		{&in.tail, "INSERT INTO posting_tail (seg, t, k, data) VALUES (?, ?, ?, ?)"},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			in.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*p.st = st
	}
	for t := range indexTables {
		for _, rows := range indexRowsPerInsert {
			if !indexTables[t].withSeg {
				in.index = append(in.index, nil) // not prepared ahead
				continue
			}
			st, err := w.PrepareContext(ctx, indexInsert(t, rows))
			if err != nil {
				in.close()
				return nil, fmt.Errorf("prepare: %w", err)
			}
			in.index = append(in.index, st)
		}
	}
	return in, nil
}

func (in *inserter) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{in.one, in.many, in.action, in.count, in.tile, in.ckpt, in.setSize, in.last, in.rollup, in.rollup1, in.tail} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, st := range in.index {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// Commit implements store.Store. All batches go into one transaction, so one
// fsync of the WAL makes all of them durable.
func (s *Store) Commit(ctx context.Context, batches []store.Batch) error {
	if s.w == nil {
		return ErrReadOnly
	}
	// Encoded before the write lock is taken, so that the indexer can
	// hold it meanwhile.
	packed := make([]packedBatch, len(batches))
	for i, b := range batches {
		packed[i] = pack(b.Events)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.gone != nil {
		return s.gone
	}
	for _, b := range batches {
		if len(b.Events) > 0 {
			s.ix.keepUp(ctx, b.Log, b.Events[0].Seq)
		}
	}
	if err := s.syncFull(ctx); err != nil {
		return err // fail closed: no commit without its fsync
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	added := make([][]string, len(batches))
	for i := range batches {
		if added[i], err = s.commitBatch(ctx, tx, &batches[i], packed[i]); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// Committed, but to the files at the path?
	if err := s.checkFiles(); err != nil {
		return err
	}
	for i, b := range batches {
		s.ix.recent.Add(b.Log, b.Events)
		s.knowActions(b.Log, added[i])
	}
	s.ix.wake()
	return nil
}

// packedBatch is a batch's events encoded as bundles, and the actions
// they use.
type packedBatch struct {
	starts  []int64 // first seq of each bundle
	data    [][]byte
	actions []string
}

func pack(evs []*event.Event) packedBatch {
	var p packedBatch
	if len(evs) > 0 {
		p.starts, p.data = packBundles(evs)
	}
	seen := make(map[string]bool, 16)
	for _, e := range evs {
		if !seen[e.Action] {
			seen[e.Action] = true
			p.actions = append(p.actions, e.Action)
		}
	}
	return p
}

// commitBatch writes b in tx and returns the actions it added to the
// actions table.
func (s *Store) commitBatch(ctx context.Context, tx *sql.Tx, b *store.Batch, p packedBatch) ([]string, error) {
	if len(b.Events) == 0 {
		return nil, nil
	}
	if b.Log <= 0 || b.Log > maxTileLog {
		return nil, fmt.Errorf("log %d: %w", b.Log, store.ErrNotFound)
	}
	first := b.Events[0].Seq
	for i, e := range b.Events {
		if e.Seq != first+int64(i) {
			return nil, fmt.Errorf("batch seqs not contiguous at %d: %w", e.Seq, store.ErrConflict)
		}
	}
	last := b.Events[len(b.Events)-1]
	if last.Seq >= 1<<seqBits {
		return nil, fmt.Errorf("log %d is full (%d events)", b.Log, int64(1)<<seqBits)
	}
	// The log's size moves first, and only from where the batch starts:
	// one statement checks that nobody appended meanwhile and claims the
	// seqs.
	res, err := tx.StmtContext(ctx, s.ins.setSize).ExecContext(ctx, last.Seq+1, last.ReceivedAt.UnixNano(), b.Log, first)
	if err != nil {
		return nil, fmt.Errorf("update log size: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		var size int64
		err := tx.QueryRowContext(ctx, "SELECT size FROM logs WHERE id = ?", b.Log).Scan(&size)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("log %d: %w", b.Log, store.ErrNotFound)
		case err != nil:
			return nil, err
		}
		return nil, fmt.Errorf("log %d has %d events, batch starts at %d: %w", b.Log, size, first, store.ErrConflict)
	}
	if err := s.checkPastEnd(ctx, tx, b.Log, first); err != nil {
		return nil, err
	}

	many, one := tx.StmtContext(ctx, s.ins.many), tx.StmtContext(ctx, s.ins.one)
	starts, data := p.starts, p.data
	args := make([]any, 0, 2*bundlesPerInsert)
	for len(starts) > 0 {
		n := 1
		st := one
		if len(starts) >= bundlesPerInsert {
			n, st = bundlesPerInsert, many
		}
		args = args[:0]
		for i := range n {
			args = append(args, eventKey(b.Log, starts[i]), data[i])
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return nil, fmt.Errorf("insert events: %w", err)
		}
		starts, data = starts[n:], data[n:]
	}

	known, err := s.knownActions(ctx, tx, b.Log)
	if err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	var added []string
	var action *sql.Stmt
	for _, a := range p.actions {
		if known[a] {
			continue
		}
		if action == nil {
			action = tx.StmtContext(ctx, s.ins.action)
		}
		if _, err := action.ExecContext(ctx, b.Log, a); err != nil {
			return nil, fmt.Errorf("add action: %w", err)
		}
		added = append(added, a)
	}
	tile := tx.StmtContext(ctx, s.ins.tile)
	for _, t := range b.Tiles {
		if t.Level < 0 || t.Level >= 1<<(tileLogShift-tileLevelShift) || t.Index < 0 || t.Index >= 1<<tileLevelShift {
			return nil, fmt.Errorf("tile %d/%d out of range", t.Level, t.Index)
		}
		if t.Level == 0 && len(t.Data) < fullTile {
			continue // its leaves are the log's last events (Tile)
		}
		if _, err := tile.ExecContext(ctx, tileKey(b.Log, t.Level, t.Index), t.Data); err != nil {
			return nil, fmt.Errorf("store tile: %w", err)
		}
	}
	if b.Checkpoint.Size != last.Seq+1 {
		return nil, fmt.Errorf("checkpoint size %d does not cover batch ending at %d", b.Checkpoint.Size, last.Seq)
	}
	if _, err := tx.StmtContext(ctx, s.ins.ckpt).ExecContext(ctx, b.Log, b.Checkpoint.Size, b.Checkpoint.SignedAt.UnixNano(), b.Checkpoint.Note); err != nil {
		return nil, fmt.Errorf("store checkpoint: %w", err)
	}
	for _, r := range b.Idempotency {
		// A record older than the replay window may still hold the key;
		// the new request replaces it. A newer one was committed by
		// another request meanwhile: this commit stores nothing.
		if !r.Replaces.IsZero() {
			var created int64
			err := tx.QueryRowContext(ctx, "SELECT created_at FROM idempotency WHERE scope = ? AND key = ?", r.Scope, r.Key).Scan(&created)
			switch {
			case err == nil && created >= r.Replaces.UnixNano():
				return nil, fmt.Errorf("idempotency key %q: %w", r.Key, store.ErrIdempotencyTaken)
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return nil, fmt.Errorf("read idempotency record: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO idempotency (scope, key, log, fingerprint, receipts, created_at) VALUES (?, ?, ?, ?, ?, ?)",
			r.Scope, r.Key, b.Log, r.Fingerprint, r.Receipts, r.CreatedAt.UnixNano()); err != nil {
			return nil, fmt.Errorf("store idempotency record: %w", err)
		}
	}
	return added, nil
}

// checkPastEnd returns a *store.DamagedError if log holds an event at seq
// or past it, where its size says it ends: stored outside Trail, it would
// clash with the events committed there, or hide them from reads. It
// reads the header of the log's highest bundle, at the right edge of the
// events table.
func (s *Store) checkPastEnd(ctx context.Context, tx *sql.Tx, log, seq int64) error {
	end := eventKey(log, seq)
	var k int64
	var head []byte
	err := tx.StmtContext(ctx, s.ins.last).QueryRowContext(ctx, eventKey(log, 0), eventKey(log+1, 0)).Scan(&k, &head)
	if errors.Is(err, sql.ErrNoRows) || err == nil && k < end && k+bundleLen(head) <= end {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the log's last events: %w", err)
	}
	// Name the first: seq itself if the bundle before it runs on past it,
	// else the first bundle at or past it.
	stray := seq
	var data []byte
	err = tx.QueryRowContext(ctx, "SELECT k, data FROM events WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT 1",
		eventKey(log, max(0, seq-bundleMax)), end).Scan(&k, &data)
	if errors.Is(err, sql.ErrNoRows) || err == nil && k+bundleLen(data) <= end {
		err = tx.QueryRowContext(ctx, "SELECT min(k) FROM events WHERE k >= ? AND k < ?", end, eventKey(log+1, 0)).Scan(&k)
		stray = k - eventKey(log, 0)
	}
	if err != nil {
		return fmt.Errorf("read the log's last events: %w", err)
	}
	return &store.DamagedError{Seq: stray, Problem: fmt.Sprintf("it is stored past the end of the log (%d events)", seq)}
}

// maxKnownActions bounds the actions remembered per log; a commit tries
// to add any other action it uses, which the table ignores if present.
const maxKnownActions = 10000

// knownActions returns actions of log known to be in the actions table,
// read in tx the first time. The caller holds wmu.
func (s *Store) knownActions(ctx context.Context, tx *sql.Tx, log int64) (map[string]bool, error) {
	if known := s.actionsOf[log]; known != nil {
		return known, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT action FROM actions WHERE log = ? LIMIT ?", log, maxKnownActions)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	known := map[string]bool{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		known[a] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if s.actionsOf == nil {
		s.actionsOf = map[int64]map[string]bool{}
	}
	s.actionsOf[log] = known
	return known, nil
}

// knowActions remembers actions that a commit added to log's. The caller
// holds wmu.
func (s *Store) knowActions(log int64, actions []string) {
	known := s.actionsOf[log]
	for _, a := range actions {
		if known == nil || len(known) >= maxKnownActions {
			return
		}
		known[a] = true
	}
}

var outcomes = []event.Outcome{event.Success, event.Failure, event.Denied, event.Errored}

func outcomeCode(o event.Outcome) int64 {
	for i, x := range outcomes {
		if x == o {
			return int64(i)
		}
	}
	return 0
}

// Writable implements store.Store: the database file and its directory
// must still be the ones at its path (files.go); it begins an immediate
// transaction, which takes SQLite's write lock, and rolls it back; and at
// most once a second it checks that the files can still be written and
// the disk takes a page (writeProbe).
func (s *Store) Writable(ctx context.Context) error {
	if s.w == nil {
		return ErrReadOnly
	}
	s.wmu.Lock()
	err := s.checkFiles()
	if err == nil {
		var tx *sql.Tx
		if tx, err = s.w.BeginTx(ctx, nil); err == nil {
			err = tx.Rollback()
		}
	}
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	return s.probe()
}
