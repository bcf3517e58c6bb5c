package sqlitetest

import (
	"context"
	"strings"

	"github.com/trail-audit/trail/internal/store"
)

// SetKey implements storetest.Tamperer.
func (tp *Tamperer) SetKey(ctx context.Context, log string, k store.Key) error {
	var revoked int64
	if !k.RevokedAt.IsZero() {
		revoked = k.RevokedAt.UnixNano()
	}
	return tp.write(ctx, log, func(c conn, id int64) error {
		_, err := c.exec("INSERT OR REPLACE INTO keys (id, log, name, scopes, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			k.ID, id, k.Name, strings.Join(k.Scopes, ","), k.Hash, k.CreatedAt.UnixNano(), revoked)
		return err
	})
}
