package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// CreateKey implements store.Store.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	if s.w == nil {
		return ErrReadOnly
	}
	for _, sc := range k.Scopes {
		if sc == "" || strings.Contains(sc, ",") {
			return fmt.Errorf("key scope %q: must be a non-empty word", sc)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var one int
	err := s.w.QueryRowContext(ctx, "SELECT 1 FROM logs WHERE id = ?", k.Log).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("log %d: %w", k.Log, store.ErrNotFound)
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
	var revoked int64
	if !k.RevokedAt.IsZero() {
		revoked = k.RevokedAt.UnixNano()
	}
	res, err := s.w.ExecContext(ctx,
		"INSERT INTO keys (id, log, name, scopes, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		k.ID, k.Log, k.Name, strings.Join(k.Scopes, ","), k.Hash, k.CreatedAt.UnixNano(), revoked)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	return s.checkFiles()
}

const keyCols = "id, log, name, scopes, hash, created_at, revoked_at"

func scanKey(sc interface{ Scan(...any) error }) (store.Key, error) {
	var k store.Key
	var scopes string
	var created, revoked int64
	if err := sc.Scan(&k.ID, &k.Log, &k.Name, &scopes, &k.Hash, &created, &revoked); err != nil {
		return k, err
	}
	if scopes != "" {
		k.Scopes = strings.Split(scopes, ",")
	}
	k.CreatedAt = time.Unix(0, created).UTC()
	if revoked != 0 {
		k.RevokedAt = time.Unix(0, revoked).UTC()
	}
	return k, nil
}

// Key implements store.Store.
func (s *Store) Key(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, "SELECT "+keyCols+" FROM keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return k, err
}

// Keys implements store.Store.
func (s *Store) Keys(ctx context.Context, log int64) ([]store.Key, error) {
	q, args := "SELECT "+keyCols+" FROM keys ORDER BY created_at, id", []any(nil)
	if log != 0 {
		q, args = "SELECT "+keyCols+" FROM keys WHERE log = ? ORDER BY created_at, id", []any{log}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey implements store.Store.
func (s *Store) RevokeKey(ctx context.Context, id string, t time.Time) error {
	if s.w == nil {
		return ErrReadOnly
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	at := t.UnixNano()
	if at == 0 {
		at = 1
	}
	if err := s.syncFull(ctx); err != nil {
		return err
	}
	if err := s.checkFiles(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE keys SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?", at, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return s.checkFiles()
}
