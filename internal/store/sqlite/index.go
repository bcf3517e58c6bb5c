package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// The background indexer adds committed events to the scattered-key
// indexes (by_actor, by_ip, by_target, events_fts) in chunks of
// Options.IndexChunk events, sorted by key, under the same write lock as
// Commit but in transactions of its own. Each log's indexed_size records how
// far it got, in the same transaction as the entries, so a crash loses only
// the chunk in flight, which is redone.
//
// Searches never miss an event because of this: events at or above
// indexed_size are scanned directly (see Search). The lag only costs search
// time, and it is bounded: a Commit that finds a log more than
// Options.MaxIndexLag events behind indexes a chunk itself first.

func (s *Store) wakeIndexer() {
	select {
	case s.indexWake <- struct{}{}:
	default:
	}
}

func (s *Store) indexLoop() {
	defer close(s.done)
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case <-s.indexWake:
		}
		for {
			s.wmu.Lock()
			more, err := s.indexChunk(ctx, 0)
			s.wmu.Unlock()
			if err != nil {
				s.logger.ErrorContext(ctx, "indexing failed; searches scan unindexed events instead", "err", err)
				break
			}
			if !more {
				break
			}
			select {
			case <-s.stop:
				return
			default:
			}
		}
	}
}

// indexLag reports how many events of log are not indexed yet, given its
// size.
func (s *Store) indexLag(log, size int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return size - s.indexed[log]
}

// indexChunk indexes up to IndexChunk events of one lagging log (of log,
// if non-zero) and reports whether it did any work. The caller holds wmu.
func (s *Store) indexChunk(ctx context.Context, only int64) (bool, error) {
	var log, size, done int64
	var name string
	q := "SELECT id, name, size, indexed_size FROM logs WHERE indexed_size < size ORDER BY size - indexed_size DESC LIMIT 1"
	args := []any{}
	if only != 0 {
		q = "SELECT id, name, size, indexed_size FROM logs WHERE indexed_size < size AND id = ?"
		args = append(args, only)
	}
	err := s.w.QueryRowContext(ctx, q, args...).Scan(&log, &name, &size, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A chunk never crosses a segment boundary.
	end := min(size, done+int64(s.opts.IndexChunk), (done>>segBits+1)<<segBits)

	// Index entries are derived data: a chunk lost on power failure is
	// redone, so its commit need not wait for fsync. (The next event commit
	// syncs the WAL, chunk included.)
	if _, err := s.w.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return false, err
	}
	defer s.w.ExecContext(ctx, "PRAGMA synchronous = FULL")

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	type entry struct {
		a, b string
		k    int64
	}
	var actors, ips, targets []entry
	type doc struct {
		k    int64
		text string
	}
	docs := make([]doc, 0, end-done)
	rows, err := tx.QueryContext(ctx, "SELECT "+eventCols+" FROM events WHERE k >= ? AND k < ? ORDER BY k", eventKey(log, done), eventKey(log, end))
	if err != nil {
		return false, err
	}
	sc := newScanner(log, name)
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			rows.Close()
			return false, err
		}
		k := sc.k
		actors = append(actors, entry{a: e.Actor.ID, k: k})
		if e.Source.IP != "" {
			ips = append(ips, entry{a: e.Source.IP, k: k})
		}
		for _, t := range e.Targets {
			targets = append(targets, entry{a: t.Type, b: t.ID, k: k})
		}
		docs = append(docs, doc{k, e.SearchText()})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if int64(len(docs)) != end-done {
		return false, fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", log, end-done, done, end, len(docs))
	}
	seg := segOf(eventKey(log, done))
	byKey := func(x, y entry) int {
		return cmp.Or(cmp.Compare(x.a, y.a), cmp.Compare(x.b, y.b), cmp.Compare(x.k, y.k))
	}
	for _, ix := range []struct {
		sql     string
		entries []entry
		two     bool
	}{
		{"INSERT INTO by_actor (seg, actor_id, k) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", actors, false},
		{"INSERT INTO by_ip (seg, ip, k) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", ips, false},
		{"INSERT INTO by_target (seg, type, id, k) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", targets, true},
	} {
		slices.SortFunc(ix.entries, byKey)
		st, err := tx.PrepareContext(ctx, ix.sql)
		if err != nil {
			return false, err
		}
		for _, en := range ix.entries {
			if ix.two {
				_, err = st.ExecContext(ctx, seg, en.a, en.b, en.k)
			} else {
				_, err = st.ExecContext(ctx, seg, en.a, en.k)
			}
			if err != nil {
				st.Close()
				return false, fmt.Errorf("index: %w", err)
			}
		}
		st.Close()
	}
	fts, err := tx.PrepareContext(ctx, "INSERT INTO events_fts (rowid, text) VALUES (?, ?)")
	if err != nil {
		return false, err
	}
	defer fts.Close()
	for _, d := range docs {
		if _, err := fts.ExecContext(ctx, d.k, d.text); err != nil {
			return false, fmt.Errorf("full-text index: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE logs SET indexed_size = ? WHERE id = ?", end, log); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.indexed[log] = end
	s.mu.Unlock()
	return true, nil
}
