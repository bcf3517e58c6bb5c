package trail_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// newDataDir creates a data directory holding log "acme" and returns the
// open DB and log.
func newDataDir(t *testing.T, opts trail.Options) (*trail.DB, *trail.Log) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, filepath.Join(t.TempDir(), "data"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

// An append whose commit went to files no longer at the data directory's
// path is refused, saying so, and so is every append after it; Ready
// says the same.
func TestDataDirectoryGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone func(t *testing.T, dir string)
	}{
		{"removed", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			other, err := trail.Init(context.Background(), dir, trail.Options{})
			if err != nil {
				t.Fatal(err)
			}
			other.Close()
		}},
		{"database replaced", func(t *testing.T, dir string) {
			// A copy put in place of the database file, as a restore
			// from a backup would.
			db := filepath.Join(dir, trail.DatabaseFile)
			data, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(db+".new", db); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, l := newDataDir(t, trail.Options{})
			evs := storetest.Events(3, 1)
			if _, err := l.Append(ctx, evs[0]); err != nil {
				t.Fatal(err)
			}
			if err := db.Ready(ctx); err != nil {
				t.Fatalf("Ready before = %v", err)
			}
			tc.gone(t, db.Dir())
			for i, e := range evs[1:] {
				rc, err := l.Append(ctx, e)
				if !errors.Is(err, trail.ErrUnavailable) || !strings.Contains(err.Error(), "removed or replaced") || !strings.Contains(err.Error(), db.Dir()) {
					t.Fatalf("Append %d after the data directory was %s = %+v, %v; want ErrUnavailable saying the directory %s was removed or replaced", i+1, tc.name, rc, err, db.Dir())
				}
			}
			if err := db.Ready(ctx); !errors.Is(err, trail.ErrUnavailable) || !strings.Contains(err.Error(), "removed or replaced") {
				t.Errorf("Ready after the data directory was %s = %v, want ErrUnavailable saying so", tc.name, err)
			}
			if l.Size() != 1 {
				t.Errorf("Size() = %d after refused appends, want 1", l.Size())
			}
		})
	}
}

// Two DBs on one data directory, as trail serve and trail append beside
// it: each appends after the other's events without an error, and the
// log verifies.
func TestTwoWritersOneDirectory(t *testing.T) {
	ctx := context.Background()
	server, sl := newDataDir(t, trail.Options{})
	cli, err := trail.Open(ctx, server.Dir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cl, err := cli.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(40, 1)
	var ids []string
	for i := 0; i < len(evs); i += 2 {
		for j, l := range []*trail.Log{sl, cl} {
			if i%4 == 2 && j == 0 { // sometimes a batch
				rs, err := l.AppendBatch(ctx, []trail.Event{evs[i]})
				if err != nil {
					t.Fatalf("AppendBatch %d through DB %d: %v", i, j, err)
				}
				ids = append(ids, rs[0].ID)
				continue
			}
			rc, err := l.Append(ctx, evs[i+j])
			if err != nil {
				t.Fatalf("Append %d through DB %d: %v", i+j, j, err)
			}
			if want := int64(len(ids)); rc.Seq != want {
				t.Fatalf("Append %d through DB %d got seq %d, want %d", i+j, j, rc.Seq, want)
			}
			ids = append(ids, rc.ID)
		}
	}
	// Idempotent appends are re-sequenced too.
	rs, replayed, err := sl.AppendIdempotent(ctx, evs[:2], trail.Idempotency{Scope: "k", Key: "one", Fingerprint: []byte{1}})
	if err != nil || replayed {
		t.Fatalf("AppendIdempotent = %v, %v", replayed, err)
	}
	if _, err := cl.Append(ctx, evs[2]); err != nil {
		t.Fatal(err)
	}
	again, replayed, err := sl.AppendIdempotent(ctx, evs[:2], trail.Idempotency{Scope: "k", Key: "one", Fingerprint: []byte{1}})
	if err != nil || !replayed || fmt.Sprint(again) != fmt.Sprint(rs) {
		t.Errorf("AppendIdempotent again = %v, %v, %v; want the first receipts %v replayed", again, replayed, err, rs)
	}
	if _, err := sl.Append(ctx, evs[3]); err != nil {
		t.Fatal(err)
	}
	server.Close()
	cli.Close()

	ro, err := trail.Open(ctx, server.Dir(), trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	l, err := ro.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(ids) + 4); l.Size() != want {
		t.Errorf("log holds %d events, want %d", l.Size(), want)
	}
	for _, id := range ids {
		if _, err := l.Get(ctx, id); err != nil {
			t.Errorf("Get(%s): %v", id, err)
		}
	}
	if rep, err := l.Verify(ctx, trail.VerifyOptions{}); err != nil || rep.Size != l.Size() {
		t.Errorf("Verify = %+v, %v; want all %d events checked", rep, err, l.Size())
	}
}

// A second DB opened with Lock on a directory is refused, naming the
// process holding it; DBs without Lock open beside it; Close lets go.
func TestLock(t *testing.T) {
	ctx := context.Background()
	server, _ := newDataDir(t, trail.Options{Lock: true})
	dir := server.Dir()
	_, err := trail.Open(ctx, dir, trail.Options{Lock: true})
	if pid := fmt.Sprintf("process %d", os.Getpid()); !errors.Is(err, trail.ErrLocked) || !strings.Contains(err.Error(), pid) {
		t.Fatalf("Open with Lock beside a DB holding it = %v, want ErrLocked naming %s", err, pid)
	}
	for _, opts := range []trail.Options{{}, {ReadOnly: true}, {ReadOnly: true, Lock: true}} {
		db, err := trail.Open(ctx, dir, opts)
		if err != nil {
			t.Fatalf("Open(%+v) beside a DB holding the lock: %v", opts, err)
		}
		db.Close()
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := trail.Open(ctx, dir, trail.Options{Lock: true})
	if err != nil {
		t.Fatalf("Open with Lock after the holder closed: %v", err)
	}
	again.Close()
}
