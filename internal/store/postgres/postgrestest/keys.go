package postgrestest

import (
	"context"

	"github.com/trail-audit/trail/internal/store"
)

// SetKey implements storetest.Tamperer.
func (tp *Tamperer) SetKey(ctx context.Context, log string, k store.Key) error {
	var revoked int64
	if !k.RevokedAt.IsZero() {
		revoked = k.RevokedAt.UnixNano()
	}
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return tp.write(ctx, log, func(t tx, id int64) error {
		_, err := t.exec(`INSERT INTO keys (id, log, name, scopes, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO UPDATE SET log = $2, name = $3, scopes = $4, hash = $5, created_at = $6, revoked_at = $7`,
			k.ID, id, k.Name, scopes, k.Hash, k.CreatedAt.UnixNano(), revoked)
		return err
	})
}
