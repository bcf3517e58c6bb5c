package postgres

import (
	"testing"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestSecrets(t *testing.T) {
	storetest.RunSecrets(t, func(t *testing.T) func() store.Secrets {
		url := pgtest.DB(t)
		return func() store.Secrets { return open(t, url) }
	})
}
