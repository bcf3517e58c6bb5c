package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if v := userVersion(t, s.r); v != schemaVersion {
		t.Fatalf("user_version after opening = %d, want %d", v, schemaVersion)
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

// TestMigration0003 opens a database of schema version 2 holding
// idempotency records: the store upgrades it, keeps them, and finds
// them by creation time.
func TestMigration0003(t *testing.T) {
	ctx := context.Background()
	path, db := emptyFile(t)
	if err := migrate(ctx, db, migrations[:2]); err != nil {
		t.Fatalf("migrate to 0002: %v", err)
	}
	exec(t, db,
		"INSERT INTO logs (id, name, origin, verifier_key, created_at) VALUES (1, 'audit', 'example.com/audit', 'audit+00000000+AAAA', 0)",
		"INSERT INTO idempotency (scope, key, log, fingerprint, receipts, created_at) VALUES ('k1', 'b', 1, x'01', '[]', 20), ('k1', 'a', 1, x'02', '[]', 10), ('k2', 'a', 1, x'03', '[]', 20)")
	db.Close()

	s := open(t, path, Options{Logger: testLogger(t)})
	if v := userVersion(t, s.r); v != schemaVersion {
		t.Fatalf("user_version after opening = %d, want %d", v, schemaVersion)
	}
	if plan := explain(t, s.r, "SELECT scope FROM idempotency WHERE created_at >= 15 ORDER BY created_at", nil); !strings.Contains(plan, "idempotency_created_at") {
		t.Errorf("query plan of records by creation time: %q; want it to use idempotency_created_at", plan)
	}
	rs, err := s.IdempotencyOf(ctx, 1, time.Unix(0, 15), nil, 10)
	if err != nil || len(rs) != 2 || rs[0].Scope+rs[0].Key != "k1b" || rs[1].Scope+rs[1].Key != "k2a" {
		t.Errorf("IdempotencyOf(since 15 ns) = %+v, %v; want k1/b then k2/a", rs, err)
	}
}
