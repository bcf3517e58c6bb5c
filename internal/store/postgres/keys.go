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
		return r, s.explain(ctx, err)
	}
	r.CreatedAt = fromNanos(created)
	return r, nil
}

// ExpireIdempotency implements store.Access.
func (s *Store) ExpireIdempotency(ctx context.Context, cutoff time.Time) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM idempotency WHERE created_at < $1", nanos(cutoff))
	return err
}

// IdempotencyOf implements store.Access.
func (s *Store) IdempotencyOf(ctx context.Context, log int64, since time.Time, after *store.Idempotency, limit int) ([]store.Idempotency, error) {
	// The bound on created_at alone, which the index ranges over.
	from := since
	if after != nil && after.CreatedAt.After(from) {
		from = after.CreatedAt
	}
	sql := "SELECT scope, key, fingerprint, receipts, created_at FROM idempotency WHERE log = $1 AND created_at >= $2"
	args := []any{log, nanos(from), limit}
	if after != nil {
		sql += " AND (created_at, scope, key) > ($4, $5, $6)"
		args = append(args, nanos(after.CreatedAt), after.Scope, after.Key)
	}
	rows, err := s.pool.Query(ctx, sql+" ORDER BY created_at, scope, key LIMIT $3", args...)
	if err != nil {
		return nil, fmt.Errorf("list idempotency records: %w", err)
	}
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Idempotency, error) {
		var r store.Idempotency
		var created int64
		err := row.Scan(&r.Scope, &r.Key, &r.Fingerprint, &r.Receipts, &created)
		r.CreatedAt = fromNanos(created)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list idempotency records: %w", err)
	}
	return rs, nil
}

// ImportIdempotency implements store.Access: one statement.
func (s *Store) ImportIdempotency(ctx context.Context, log int64, rs []store.Idempotency) (int, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	scopes, keys := make([]string, len(rs)), make([]string, len(rs))
	fps, receipts := make([][]byte, len(rs)), make([][]byte, len(rs))
	created := make([]int64, len(rs))
	for i, r := range rs {
		scopes[i], keys[i], fps[i], receipts[i], created[i] = r.Scope, r.Key, r.Fingerprint, r.Receipts, nanos(r.CreatedAt)
	}
	// The log is looked for apart: a record whose key is taken is not
	// inserted, nor checked against the foreign key.
	var found, stored int
	err := s.pool.QueryRow(ctx, `WITH l AS (SELECT id FROM logs WHERE id = $1),
		ins AS (INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at)
			SELECT s, k, l.id, f, r, c FROM l, unnest($2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::bigint[]) AS u(s, k, f, r, c)
			ON CONFLICT (scope, key) DO NOTHING RETURNING 1)
		SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM ins)`, log, scopes, keys, fps, receipts, created).Scan(&found, &stored)
	if err != nil {
		return 0, fmt.Errorf("store idempotency records: %w", err)
	}
	if found == 0 {
		return 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	return stored, nil
}
