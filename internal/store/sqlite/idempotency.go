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

// IdempotencyOf implements store.Access.
func (s *Store) IdempotencyOf(ctx context.Context, log int64, since time.Time, after *store.Idempotency, limit int) ([]store.Idempotency, error) {
	// The bound on created_at alone, which the index ranges over.
	from := since
	if after != nil && after.CreatedAt.After(from) {
		from = after.CreatedAt
	}
	q := "SELECT scope, key, fingerprint, receipts, created_at FROM idempotency WHERE log = ? AND created_at >= ?"
	args := []any{log, from.UnixNano()}
	if after != nil {
		q += " AND (created_at, scope, key) > (?, ?, ?)"
		args = append(args, after.CreatedAt.UnixNano(), after.Scope, after.Key)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY created_at, scope, key LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list idempotency records: %w", err)
	}
	defer rows.Close()
	var rs []store.Idempotency
	for rows.Next() {
		var r store.Idempotency
		var created int64
		if err := rows.Scan(&r.Scope, &r.Key, &r.Fingerprint, &r.Receipts, &created); err != nil {
			return nil, fmt.Errorf("list idempotency records: %w", err)
		}
		r.CreatedAt = time.Unix(0, created).UTC()
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list idempotency records: %w", err)
	}
	return rs, nil
}

// ImportIdempotency implements store.Access: one transaction.
func (s *Store) ImportIdempotency(ctx context.Context, log int64, rs []store.Idempotency) (int, error) {
	if s.w == nil {
		return 0, ErrReadOnly
	}
	if len(rs) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.syncFull(ctx); err != nil {
		return 0, err
	}
	if err := s.checkFiles(); err != nil {
		return 0, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, "SELECT 1 FROM logs WHERE id = ?", log).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	} else if err != nil {
		return 0, err
	}
	stored := 0
	for _, r := range rs {
		res, err := tx.ExecContext(ctx, "INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING",
			r.Scope, r.Key, log, r.Fingerprint, r.Receipts, r.CreatedAt.UnixNano())
		if err != nil {
			return 0, fmt.Errorf("store idempotency records: %w", err)
		}
		n, _ := res.RowsAffected()
		stored += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store idempotency records: %w", err)
	}
	return stored, nil
}
