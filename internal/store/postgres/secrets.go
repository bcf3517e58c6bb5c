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

// ResealSecrets implements store.Secrets. The transaction locks the
// secrets' rows, so a PutSecret racing it either lands before it, and is
// resealed, or waits for it; a secret put after the read fails the
// transaction's check and nothing changes.
func (s *Store) ResealSecrets(ctx context.Context, reseal func(name string, sealed []byte) ([]byte, error)) (n int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// LOCK … EXCLUSIVE keeps out PutSecret until the transaction ends;
		// reads go on.
		if _, err := tx.Exec(ctx, "LOCK TABLE secrets IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT name, data FROM secrets ORDER BY name")
		if err != nil {
			return err
		}
		type secret struct {
			name string
			data []byte
		}
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (secret, error) {
			var sc secret
			err := r.Scan(&sc.name, &sc.data)
			return sc, err
		})
		if err != nil {
			return err
		}
		for _, sc := range all {
			data, err := reseal(sc.name, sc.data)
			if err != nil {
				return &resealError{err}
			}
			if data == nil {
				data = []byte{}
			}
			if _, err := tx.Exec(ctx, "UPDATE secrets SET data = $1 WHERE name = $2", data, sc.name); err != nil {
				return err
			}
		}
		n = len(all)
		return nil
	})
	var re *resealError
	if errors.As(err, &re) {
		return 0, re.err
	}
	if err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", s.explain(ctx, err))
	}
	return n, nil
}

// resealError carries the error of the caller's reseal function out of
// the transaction untouched.
type resealError struct{ err error }

func (e *resealError) Error() string { return e.err.Error() }
