package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store"
)

var _ store.Secrets = (*Store)(nil)

// PutSecret implements store.Secrets: the primary key on name makes the
// first writer win, whichever node it runs on.
func (s *Store) PutSecret(ctx context.Context, name string, sealed []byte) error {
	if sealed == nil {
		sealed = []byte{}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, data, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, name, sealed, nanos(time.Now()))
	if err != nil {
		return fmt.Errorf("store secret %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("secret %q: %w", name, store.ErrExists)
	}
	return nil
}

// Secret implements store.Secrets.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, "SELECT data FROM secrets WHERE name = $1", name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("secret %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return data, nil
}
