package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store"
)

var _ store.Witnessed = (*Store)(nil)

// PutCosigned implements store.Witnessed. Every node may store cosigned
// checkpoints of a log at once: each size is inserted once, and the
// first one stored stays.
func (s *Store) PutCosigned(ctx context.Context, log int64, c store.Checkpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO witnessed (log, size, signed_at, note) VALUES ($1, $2, $3, $4)
		ON CONFLICT (log, size) DO NOTHING`, log, c.Size, nanos(c.SignedAt), c.Note)
	if isCode(err, foreignKeyViolation) {
		return fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store the cosigned checkpoint of size %d: %w", c.Size, err)
	}
	return nil
}

// Cosigned implements store.Witnessed.
func (s *Store) Cosigned(ctx context.Context, log int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, "SELECT size, signed_at, note FROM witnessed WHERE log = $1 ORDER BY size DESC LIMIT 1", log))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("cosigned checkpoint: %w", store.ErrNotFound)
	}
	return c, err
}

// CosignedAt implements store.Witnessed.
func (s *Store) CosignedAt(ctx context.Context, log, size int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, "SELECT size, signed_at, note FROM witnessed WHERE log = $1 AND size = $2", log, size))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("cosigned checkpoint of size %d: %w", size, store.ErrNotFound)
	}
	return c, err
}
