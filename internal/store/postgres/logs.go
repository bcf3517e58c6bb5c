package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trail-audit/trail/internal/store"
)

// PostgreSQL error codes the store branches on.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// Times are stored as nanoseconds since the epoch (see 0001_init.sql).
func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// CreateLog implements store.Log.
func (s *Store) CreateLog(ctx context.Context, name, origin, verifierKey string) (store.LogInfo, error) {
	li := store.LogInfo{Name: name, Origin: origin, VerifierKey: verifierKey, CreatedAt: time.Now().UTC()}
	err := s.pool.QueryRow(ctx, "INSERT INTO logs (name, origin, verifier_key, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
		name, origin, verifierKey, nanos(li.CreatedAt)).Scan(&li.ID)
	if isCode(err, uniqueViolation) {
		return store.LogInfo{}, fmt.Errorf("log %q: %w", name, store.ErrExists)
	}
	if err != nil {
		return store.LogInfo{}, fmt.Errorf("create log %q: %w", name, err)
	}
	return li, nil
}

const logCols = "id, name, origin, verifier_key, created_at"

func scanLog(row pgx.Row) (store.LogInfo, error) {
	var li store.LogInfo
	var created int64
	err := row.Scan(&li.ID, &li.Name, &li.Origin, &li.VerifierKey, &created)
	li.CreatedAt = fromNanos(created)
	return li, err
}

// Log implements store.Log.
func (s *Store) Log(ctx context.Context, name string) (store.LogInfo, error) {
	li, err := scanLog(s.pool.QueryRow(ctx, "SELECT "+logCols+" FROM logs WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.LogInfo{}, fmt.Errorf("log %q: %w", name, store.ErrNotFound)
	}
	return li, err
}

// Logs implements store.Log.
func (s *Store) Logs(ctx context.Context) ([]store.LogInfo, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+logCols+" FROM logs ORDER BY name COLLATE \"C\"")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.LogInfo, error) { return scanLog(r) })
}

// logSize reads a log's size, or store.ErrNotFound.
func (s *Store) logSize(ctx context.Context, log int64) (int64, error) {
	var size int64
	err := s.pool.QueryRow(ctx, "SELECT size FROM logs WHERE id = $1", log).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
	}
	return size, err
}
