package backends_test

import (
	"context"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store/postgres"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestPostgres makes a store in a new database, copies it, and tampers
// with the copy: the copy holds the log as committed, and the original
// does not see the copy's change.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	b := backends.Postgres
	if len(b.MasterKey) != 32 {
		t.Errorf("MasterKey is %d bytes, want 32", len(b.MasterKey))
	}
	openAt := func(loc string) *postgres.Store {
		s, err := postgres.Open(ctx, loc, postgres.Options{Migrate: true})
		if err != nil {
			t.Fatalf("Open(%s) = %v", loc, err)
		}
		return s
	}
	src := b.New(t)
	s := openAt(src)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC), storetest.Events(300, 1)...)
	s.Close()

	dst := b.Copy(t, src)
	if dst == src {
		t.Fatalf("Copy(%s) = the same location", src)
	}
	c := openAt(dst)
	defer c.Close()
	storetest.CheckLog(t, c, w)
	tp := b.Tamper(t, dst)
	if err := tp.EditCheckpoints(ctx, "audit", func(int64, []byte) []byte { return nil }); err != nil {
		t.Fatalf("EditCheckpoints on the copy = %v", err)
	}
	if st, err := c.State(ctx, w.Info.ID); err != nil || st.Checkpoint != nil {
		t.Errorf("State of the copy after its checkpoints were deleted = %+v, %v; want no checkpoint", st.Checkpoint, err)
	}
	s = openAt(src)
	defer s.Close()
	storetest.CheckLog(t, s, w)
}
