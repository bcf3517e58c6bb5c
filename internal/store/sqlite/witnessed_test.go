package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestWitnessed(t *testing.T) {
	storetest.RunWitnessed(t, func(t *testing.T) func() storetest.LogWitnessed {
		path := filepath.Join(t.TempDir(), "trail.db")
		first := true
		return func() storetest.LogWitnessed {
			if first {
				first = false
				return create(t, path, Options{Logger: testLogger(t)})
			}
			return open(t, path, Options{Logger: testLogger(t)})
		}
	})
}

// TestMigration0002 opens a database of schema version 1, as an older
// Trail left it: the store upgrades it and keeps cosigned checkpoints in
// it, beside the log that version 1 held.
func TestMigration0002(t *testing.T) {
	ctx := context.Background()
	path, db := emptyFile(t)
	if err := migrate(ctx, db, migrations[:1]); err != nil {
		t.Fatalf("migrate to 0001: %v", err)
	}
	exec(t, db, "INSERT INTO logs (id, name, origin, verifier_key, created_at) VALUES (1, 'audit', 'example.com/audit', 'audit+00000000+AAAA', 0)")
	db.Close()

	s := open(t, path, Options{Logger: testLogger(t)})
	if v := userVersion(t, s.r); v != 2 {
		t.Fatalf("user_version after opening = %d, want 2", v)
	}
	want := store.Checkpoint{Size: 5, Note: []byte("example.com/audit\n5\nroot=\n\n— w1 abc=\n"), SignedAt: t0}
	if err := s.PutCosigned(ctx, 1, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Cosigned(ctx, 1)
	if err != nil || got.Size != want.Size || string(got.Note) != string(want.Note) || !got.SignedAt.Equal(want.SignedAt) {
		t.Errorf("Cosigned = %+v, %v; want %+v", got, err, want)
	}
}
