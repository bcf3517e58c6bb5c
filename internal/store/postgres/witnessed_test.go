package postgres

import (
	"testing"

	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestWitnessed(t *testing.T) {
	storetest.RunWitnessed(t, func(t *testing.T) func() storetest.LogWitnessed {
		url := pgtest.DB(t)
		return func() storetest.LogWitnessed { return open(t, url) }
	})
}
