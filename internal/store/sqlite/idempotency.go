package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// Idempotency implements store.Store.
func (s *Store) Idempotency(ctx context.Context, scope, key string, since time.Time) (store.Idempotency, error) {
	r := store.Idempotency{Scope: scope, Key: key}
	var created int64
	err := s.r.QueryRowContext(ctx, "SELECT fingerprint, receipts, created_at FROM idempotency WHERE scope = ? AND key = ? AND created_at >= ?",
		scope, key, since.UnixNano()).Scan(&r.Fingerprint, &r.Receipts, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("idempotency key: %w", store.ErrNotFound)
	}
	r.CreatedAt = time.Unix(0, created).UTC()
	return r, err
}

// ExpireIdempotency implements store.Store.
func (s *Store) ExpireIdempotency(ctx context.Context, cutoff time.Time) error {
	if s.w == nil {
		return ErrReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.w.ExecContext(ctx, "DELETE FROM idempotency WHERE created_at < ?", cutoff.UnixNano())
	return err
}
