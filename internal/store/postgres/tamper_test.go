package postgres

import (
	"context"
	"testing"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/postgres/postgrestest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// TestTamperer checks the PostgreSQL Tamperer (package postgrestest),
// through which the tamper and damage tests of every package reach the
// database.
func TestTamperer(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (func(t *testing.T) store.Store, storetest.Tamperer) {
		url := pgtest.DB(t)
		open(t, url).Close()
		tp, err := postgrestest.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		return func(t *testing.T) store.Store {
			s, err := Open(context.Background(), url, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, tp
	})
}
