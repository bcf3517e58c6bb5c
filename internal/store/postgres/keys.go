package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/internal/store"
)

// CreateKey implements store.Access.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	var revoked int64
	if !k.RevokedAt.IsZero() {
		revoked = nanos(k.RevokedAt)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO keys (id, log, name, scopes, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO NOTHING`, k.ID, k.Log, k.Name, scopes, k.Hash, nanos(k.CreatedAt), revoked)
	if isCode(err, foreignKeyViolation) {
		return fmt.Errorf("log %d: %w", k.Log, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	return nil
}

const keyCols = "id, log, name, scopes, hash, created_at, revoked_at"

func scanKey(row pgx.Row) (store.Key, error) {
	var k store.Key
	var created, revoked int64
	if err := row.Scan(&k.ID, &k.Log, &k.Name, &k.Scopes, &k.Hash, &created, &revoked); err != nil {
		return store.Key{}, err
	}
	k.CreatedAt = fromNanos(created)
	if revoked != 0 {
		k.RevokedAt = fromNanos(revoked)
	}
	return k, nil
}

// Key implements store.Access.
func (s *Store) Key(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyCols+" FROM keys WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		// Every authenticated request may come here: PostgreSQL down is
		// ErrUnavailable, which the server answers with 503.
		return k, s.explain(ctx, err)
	}
	return k, nil
}

// Keys implements store.Access: oldest first, ties broken by id in byte
// order.
func (s *Store) Keys(ctx context.Context, log int64) ([]store.Key, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyCols+` FROM keys WHERE $1::bigint = 0 OR log = $1 ORDER BY created_at, id COLLATE "C"`, log)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Key, error) { return scanKey(r) })
}

// RevokeKey implements store.Access. A key's first revocation time stays.
func (s *Store) RevokeKey(ctx context.Context, id string, t time.Time) error {
	at := nanos(t)
	if at == 0 {
		at = 1 // 0 means not revoked
	}
	tag, err := s.pool.Exec(ctx, "UPDATE keys SET revoked_at = CASE WHEN revoked_at = 0 THEN $1 ELSE revoked_at END WHERE id = $2", at, id)
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// Idempotency implements store.Access.
func (s *Store) Idempotency(ctx context.Context, scope, key string, since time.Time) (store.Idempotency, error) {
	r := store.Idempotency{Scope: scope, Key: key}
	var created int64
	err := s.pool.QueryRow(ctx, "SELECT fingerprint, receipts, created_at FROM idempotency WHERE scope = $1 AND key = $2 AND created_at >= $3",
		scope, key, nanos(since)).Scan(&r.Fingerprint, &r.Receipts, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("idempotency key: %w", store.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	r.CreatedAt = fromNanos(created)
	return r, nil
}

// ExpireIdempotency implements store.Access.
func (s *Store) ExpireIdempotency(ctx context.Context, cutoff time.Time) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM idempotency WHERE created_at < $1", nanos(cutoff))
	return err
}
