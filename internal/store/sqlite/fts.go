package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Full-text indexing runs behind ingest: Commit only wakes the indexer,
// which adds committed events to events_fts in chunks of Options.FTSChunk
// under the same write lock, in transactions of their own. Each log's
// fts_size records how far it got, in the same transaction as the terms, so
// a crash loses nothing but the progress of the chunk in flight. Searches
// scan the events above fts_size directly, so they never miss an event; the
// lag only costs search speed, and the indexer catches up within one chunk
// of ingest pauses.

func (s *Store) wakeFTS() {
	select {
	case s.ftsWake <- struct{}{}:
	default:
	}
}

func (s *Store) ftsLoop() {
	defer close(s.done)
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ftsWake:
		}
		for {
			more, err := s.indexChunk(ctx)
			if err != nil {
				s.logger.ErrorContext(ctx, "full-text indexing failed; searches scan unindexed events instead", "err", err)
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

// indexChunk indexes up to FTSChunk events of one log that lags, and
// reports whether it did any work.
func (s *Store) indexChunk(ctx context.Context) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var log, size, done int64
	var name string
	err := s.w.QueryRowContext(ctx, "SELECT id, name, size, fts_size FROM logs WHERE fts_size < size ORDER BY size - fts_size DESC LIMIT 1").Scan(&log, &name, &size, &done)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	end := min(size, done+int64(s.opts.FTSChunk))

	// The terms are derived data: a commit that is lost on power failure is
	// redone, so it need not wait for fsync.
	if _, err := s.w.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return false, err
	}
	defer s.w.ExecContext(ctx, "PRAGMA synchronous = FULL")

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT "+eventCols+" FROM events WHERE k >= ? AND k < ? ORDER BY k", eventKey(log, done), eventKey(log, end))
	if err != nil {
		return false, err
	}
	sc := newScanner(log, name)
	type doc struct {
		k    int64
		text string
	}
	docs := make([]doc, 0, end-done)
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			rows.Close()
			return false, err
		}
		docs = append(docs, doc{sc.k, e.SearchText()})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if int64(len(docs)) != end-done {
		return false, fmt.Errorf("log %d: expected %d events in [%d, %d), found %d", log, end-done, done, end, len(docs))
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO events_fts (rowid, text) VALUES (?, ?)")
	if err != nil {
		return false, err
	}
	defer ins.Close()
	for _, d := range docs {
		if _, err := ins.ExecContext(ctx, d.k, d.text); err != nil {
			return false, fmt.Errorf("index: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE logs SET fts_size = ? WHERE id = ?", end, log); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.ftsSize[log] = end
	s.mu.Unlock()
	return true, nil
}
