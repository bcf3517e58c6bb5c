package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trail-audit/trail/internal/store"
)

var _ store.Witnessed = (*Store)(nil)

// PutCosigned implements store.Witnessed.
func (s *Store) PutCosigned(ctx context.Context, log int64, c store.Checkpoint) error {
	if s.w == nil {
		return ErrReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var one int
	err := s.w.QueryRowContext(ctx, "SELECT 1 FROM logs WHERE id = ?", log).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := s.syncFull(ctx); err != nil {
		return err
	}
	if err := s.checkFiles(); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx,
		"INSERT INTO witnessed (log, size, signed_at, note) VALUES (?, ?, ?, ?) ON CONFLICT (log, size) DO NOTHING",
		log, c.Size, c.SignedAt.UnixNano(), c.Note); err != nil {
		return fmt.Errorf("store the cosigned checkpoint of size %d: %w", c.Size, err)
	}
	return s.checkFiles()
}

// Cosigned implements store.Witnessed.
func (s *Store) Cosigned(ctx context.Context, log int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx, "SELECT size, signed_at, note FROM witnessed WHERE log = ? ORDER BY size DESC LIMIT 1", log))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("cosigned checkpoint: %w", store.ErrNotFound)
	}
	return c, err
}

// CosignedAt implements store.Witnessed.
func (s *Store) CosignedAt(ctx context.Context, log, size int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx, "SELECT size, signed_at, note FROM witnessed WHERE log = ? AND size = ?", log, size))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("cosigned checkpoint of size %d: %w", size, store.ErrNotFound)
	}
	return c, err
}
