package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/postgres"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// testMasterKey makes a master key file in a temporary directory and
// returns its bytes.
func testMasterKey(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := CreateMasterKey(path); err != nil {
		t.Fatal(err)
	}
	key, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestPostgresStore: InitStore creates the schema, a log and its sealed
// key; a second DB on the database, as another server would open it,
// appends after the first and reads what it appended, and both sign with
// the one key.
func TestPostgresStore(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := testMasterKey(t)

	if _, err := OpenStore(ctx, url, Options{MasterKey: master}); !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "trail init --store") {
		t.Fatalf("OpenStore(empty database) = %v, want ErrNotInitialized saying to run trail init", err)
	}
	a, err := InitStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatalf("InitStore: %v", err)
	}
	defer a.Close()
	if _, err := InitStore(ctx, url, Options{MasterKey: master}); err == nil || !strings.Contains(err.Error(), "already holds a Trail store") {
		t.Errorf("InitStore(initialised database) = %v, want an error saying it holds a store", err)
	}
	la, err := a.CreateLog(ctx, "app", "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := la.Append(ctx, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login"}); err != nil {
		t.Fatal(err)
	}

	b, err := OpenStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatalf("OpenStore(second server): %v", err)
	}
	defer b.Close()
	lb, err := b.Log(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if lb.VerifierKey() != la.VerifierKey() {
		t.Fatalf("verifier keys differ between servers: %s and %s", lb.VerifierKey(), la.VerifierKey())
	}
	r, err := lb.Append(ctx, event.Event{Actor: event.Actor{ID: "bob"}, Action: "user.logout"})
	if err != nil {
		t.Fatalf("append through the second server: %v", err)
	}
	if r.Seq != 1 {
		t.Errorf("second server's append got seq %d, want 1", r.Seq)
	}
	e, err := la.GetSeq(ctx, 1)
	if err != nil || e.Actor.ID != "bob" {
		t.Fatalf("first server reads seq 1 = %+v, %v; want bob's event", e, err)
	}
	if _, err := la.Append(ctx, event.Event{Actor: event.Actor{ID: "carol"}, Action: "user.login"}); err != nil {
		t.Fatalf("append through the first server after the second's: %v", err)
	}
	if res, err := lb.Verify(ctx, VerifyOptions{}); err != nil || res.Size != 3 {
		t.Fatalf("Verify = %+v, %v; want 3 events verified", res, err)
	}
}

// TestPostgresStrictIsolation: a database whose default isolation is
// repeatable read or serializable (a DBA's setting) takes appends
// through two servers at once as any other: every one is stored, each
// once, and the log verifies.
func TestPostgresStrictIsolation(t *testing.T) {
	for _, level := range []string{"repeatable read", "serializable"} {
		t.Run(level, func(t *testing.T) {
			ctx := context.Background()
			url := pgtest.DB(t)
			master := testMasterKey(t)
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = conn.Exec(ctx, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', current_database(), '"+level+"'); END $$")
			conn.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			a, err := InitStore(ctx, url, Options{MasterKey: master})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if _, err := a.CreateLog(ctx, "app", "example.com/app"); err != nil {
				t.Fatal(err)
			}
			b, err := OpenStore(ctx, url, Options{MasterKey: master})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			const writers, each = 8, 20
			errs := make(chan error, writers)
			for g := range writers {
				go func() {
					db := []*DB{a, b}[g%2]
					l, err := db.Log(ctx, "app")
					for i := 0; err == nil && i < each; i++ {
						_, err = l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("w%d", g)}, Action: "user.login"})
					}
					errs <- err
				}()
			}
			for range writers {
				if err := <-errs; err != nil {
					t.Errorf("append: %v", err)
				}
			}
			l, err := a.Log(ctx, "app")
			if err != nil {
				t.Fatal(err)
			}
			if res, err := l.Verify(ctx, VerifyOptions{}); err != nil || res.Size != writers*each {
				t.Errorf("Verify = %+v, %v; want %d events verified", res, err, writers*each)
			}
		})
	}
}

// TestPostgresMasterKey: writing needs the master key, reading does not; a
// wrong key is refused with an error saying so; RotateMasterKey reseals
// every secret, after which only the new key works.
func TestPostgresMasterKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master, other := testMasterKey(t), testMasterKey(t)
	db, err := InitStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLog(ctx, "app", ""); err != nil {
		t.Fatal(err)
	}
	secret, err := db.SessionSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	if _, err := OpenStore(ctx, url, Options{}); err == nil || !strings.Contains(err.Error(), "--master-key-file") {
		t.Errorf("OpenStore(no master key) = %v, want an error naming --master-key-file", err)
	}
	ro, err := OpenStore(ctx, url, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenStore(read-only, no master key) = %v", err)
	}
	if _, err := ro.Log(ctx, "app"); err != nil {
		t.Errorf("read-only Log = %v", err)
	}
	ro.Close()

	// A server given the wrong master key file refuses to start, rather
	// than start and fail every append.
	if wrong, err := OpenStore(ctx, url, Options{MasterKey: other}); err == nil || !strings.Contains(err.Error(), "different master key") || !strings.Contains(err.Error(), "trail init") {
		if wrong != nil {
			wrong.Close()
		}
		t.Errorf("OpenStore(another master key) = %v, want an error saying the key differs", err)
	}

	// Every secret is under the new key already: nothing to do.
	if n, err := RotateMasterKey(ctx, url, other, master); err != nil || n != 0 {
		t.Errorf("RotateMasterKey to the key every secret is sealed under = %d, %v; want 0 resealed", n, err)
	}
	// A signing key neither key opens: refused.
	if _, err := RotateMasterKey(ctx, url, other, testMasterKey(t)); err == nil || !strings.Contains(err.Error(), "different master key") {
		t.Errorf("RotateMasterKey from a wrong old key = %v, want it refused", err)
	}
	n, err := RotateMasterKey(ctx, url, master, other)
	if err != nil || n != 2 {
		t.Fatalf("RotateMasterKey = %d, %v; want 2 secrets (a signing key, the session secret)", n, err)
	}
	if old, err := OpenStore(ctx, url, Options{MasterKey: master}); err == nil || !strings.Contains(err.Error(), "different master key") {
		if old != nil {
			old.Close()
		}
		t.Errorf("OpenStore(the old master key after rotating) = %v, want it refused", err)
	}
	db, err = OpenStore(ctx, url, Options{MasterKey: other})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "app")
	if err != nil {
		t.Fatalf("Log with the new master key: %v", err)
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "a"}, Action: "x.y"}); err != nil {
		t.Fatalf("append after rotating: %v", err)
	}
	if got, err := db.SessionSecret(ctx); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("session secret after rotating = %x, %v; want it unchanged", got, err)
	}
}

// TestPostgresOneSecretChanged: a signing key changed in the database
// fails its own log, saying so, and not the server: the master key opens
// the other secrets, so the store opens and the other log appends.
func TestPostgresOneSecretChanged(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := testMasterKey(t)
	db, err := InitStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := db.CreateLog(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE secrets SET data = set_byte(data, 20, get_byte(data, 20) # 1) WHERE name = 'log/a/signer'"); err != nil {
		t.Fatal(err)
	}

	db, err = OpenStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatalf("OpenStore with one secret changed = %v, want it open", err)
	}
	defer db.Close()
	if _, err := db.Log(ctx, "a"); err == nil || !strings.Contains(err.Error(), "changed in the database") {
		t.Errorf("Log(a) with its key changed = %v, want an error saying it does not unseal", err)
	}
	l, err := db.Log(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "x"}, Action: "x.y"}); err != nil {
		t.Errorf("append to b = %v", err)
	}
}

// TestPostgresSessions: a session signed out through one server is ended
// on every other.
func TestPostgresSessions(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := testMasterKey(t)
	a, err := InitStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sa, err := a.SessionSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sb, err := b.SessionSecret(ctx); err != nil || !bytes.Equal(sa, sb) {
		t.Fatalf("session secrets differ between servers: %x, %x (%v)", sa, sb, err)
	}
	if ended, err := b.SessionEnded(ctx, "s1"); err != nil || ended {
		t.Fatalf("SessionEnded before sign-out = %v, %v", ended, err)
	}
	for range 2 {
		if err := a.EndSession(ctx, "s1", time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("EndSession: %v", err)
		}
	}
	if ended, err := b.SessionEnded(ctx, "s1"); err != nil || !ended {
		t.Errorf("SessionEnded on the other server = %v, %v; want true", ended, err)
	}
	if ended, err := b.SessionEnded(ctx, "s2"); err != nil || ended {
		t.Errorf("SessionEnded(another session) = %v, %v; want false", ended, err)
	}
}

// TestMigrateStore: MigrateStore creates the schema of an empty database
// and then finds nothing to do; OpenStore refuses a database that lacks
// migrations unless asked to migrate.
func TestMigrateStore(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	m, err := MigrateStore(ctx, url, nil)
	if err != nil || m.From != 0 || m.To != postgres.LatestSchema() {
		t.Fatalf("MigrateStore(empty) = %+v, %v; want 0 to %d", m, err, postgres.LatestSchema())
	}
	m, err = MigrateStore(ctx, url, nil)
	if err != nil || m.From != m.To || m.To != postgres.LatestSchema() {
		t.Fatalf("MigrateStore(migrated) = %+v, %v; want nothing to do", m, err)
	}
	db, err := OpenStore(ctx, url, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenStore after MigrateStore: %v", err)
	}
	db.Close()
	if _, err := MigrateStore(ctx, "sqlite:"+filepath.Join(t.TempDir(), "none"), nil); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("MigrateStore(sqlite dir without a store) = %v, want ErrNotInitialized", err)
	}
}

// TestCreateMasterKey: the file is made mode 0600, never over an existing
// one, and two keys differ.
func TestCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	if err := CreateMasterKey(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(path)
	if err := CreateMasterKey(path); err == nil {
		t.Error("CreateMasterKey over an existing file: no error")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("CreateMasterKey changed an existing file")
	}
	path2 := filepath.Join(dir, "k2")
	if err := CreateMasterKey(path2); err != nil {
		t.Fatal(err)
	}
	k1, _ := LoadMasterKey(path)
	k2, _ := LoadMasterKey(path2)
	if len(k1) != 32 || bytes.Equal(k1, k2) {
		t.Errorf("keys %x and %x: want two different 32-byte keys", k1, k2)
	}
	// In a directory that is not there: the error says so.
	missing := filepath.Join(dir, "nodir")
	if err := CreateMasterKey(filepath.Join(missing, "k")); err == nil || !strings.Contains(err.Error(), "the directory "+missing+" does not exist") {
		t.Errorf("CreateMasterKey in a missing directory = %v, want it to name the directory", err)
	}
}

// TestRotateWhileServersRun: a server still running with the old master
// key after a rekey seals viewer sign-outs, and a first session secret,
// under it; a server with the new key is unavailable for viewers, saying
// what to run. The same rekey run again reseals those, keeps what the
// first run sealed, and a server with the new key then reads them. A
// rekey to a third key remakes viewer secrets sealed under neither key
// (viewers sign in again; the sign-outs stand) rather than fail.
func TestRotateWhileServersRun(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	k1, k2, k3 := testMasterKey(t), testMasterKey(t), testMasterKey(t)
	db, err := InitStore(ctx, url, Options{MasterKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLog(ctx, "app", ""); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old, err := OpenStore(ctx, url, Options{MasterKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Log(ctx, "app"); err != nil {
		t.Fatal(err)
	}

	if _, err := RotateMasterKey(ctx, url, k1, k2); err != nil {
		t.Fatal(err)
	}
	// The old server goes on, sealing under k1.
	if _, err := old.SessionSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.EndSession(ctx, "sess1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fresh, err := OpenStore(ctx, url, Options{MasterKey: k2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.SessionSecret(ctx); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "same trail rekey again") {
		t.Errorf("session secret sealed by a server with the old key = %v, want ErrUnavailable saying what to do", err)
	}
	fresh.Close()

	// The same rekey again: the signing key stays as the first run
	// sealed it, the viewer's secrets move to k2.
	if _, err := RotateMasterKey(ctx, url, k1, k2); err != nil {
		t.Fatalf("the same rekey again, after a server sealed under the old key: %v", err)
	}
	fresh, err = OpenStore(ctx, url, Options{MasterKey: k2})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := fresh.SessionSecret(ctx); err != nil || len(s) != 32 {
		t.Errorf("session secret after the same rekey again = %x, %v", s, err)
	}
	if ended, err := fresh.SessionEnded(ctx, "sess1"); err != nil || !ended {
		t.Errorf("sign-out after the same rekey again = %v, %v; want it to stand", ended, err)
	}
	fresh.Close()

	// Under k1 again, from an old server, then to k3 from k2: remade.
	if err := old.EndSession(ctx, "sess2", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateMasterKey(ctx, url, k2, k3); err != nil {
		t.Fatalf("rekey after a server sealed under the old key: %v", err)
	}
	db, err = OpenStore(ctx, url, Options{MasterKey: k3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s, err := db.SessionSecret(ctx); err != nil || len(s) != 32 {
		t.Errorf("session secret after the rekey = %x, %v", s, err)
	}
	for _, id := range []string{"sess1", "sess2"} {
		if ended, err := db.SessionEnded(ctx, id); err != nil || !ended {
			t.Errorf("sign-out %s after the rekey = %v, %v; want it to stand", id, ended, err)
		}
	}
	l, err := db.Log(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "a"}, Action: "x.y"}); err != nil {
		t.Fatalf("append with the newest key: %v", err)
	}
	// A signing key sealed under no key given still stops the rekey.
	if _, err := RotateMasterKey(ctx, url, k1, k2); err == nil {
		t.Error("rekey from a key that opens no signing key = nil")
	}
	if _, err := RotateMasterKey(ctx, url, k2, testMasterKey(t)); err == nil {
		t.Error("rekey from a key that opens no signing key = nil")
	}
}

// TestPostgresCommitGathersWhileLocked: appends that queue while a
// commit waits for its log's lock, held by another server, join that
// commit once the lock is granted, rather than wait for a commit of
// their own behind it; those to another log, or with an idempotency key,
// go in the next commit. The events of the commit are received when it
// is built, after every request that joined it arrived.
func TestPostgresCommitGathersWhileLocked(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := testMasterKey(t)
	t0 := time.Now().UTC()
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a, err := InitStore(ctx, url, Options{MasterKey: master, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	la, err := a.CreateLog(ctx, "app", "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.CreateLog(ctx, "other", "example.com/other")
	if err != nil {
		t.Fatal(err)
	}
	ev := func(actor string) event.Event {
		return event.Event{Actor: event.Actor{ID: actor}, Action: "user.login"}
	}
	if _, err := la.Append(ctx, ev("first")); err != nil {
		t.Fatal(err)
	}
	// Another server appends, so that this one's next commit must read
	// the log under its lock before it builds.
	b, err := OpenStore(ctx, url, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lb, err := b.Log(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Append(ctx, ev("second")); err != nil {
		t.Fatal(err)
	}

	// And holds the log, as its commits do.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM logs WHERE name = 'app' FOR NO KEY UPDATE"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var commits []CommitStats
	a.ObserveCommits(func(s CommitStats) {
		mu.Lock()
		commits = append(commits, s)
		mu.Unlock()
	})
	const n = 10
	errs := make(chan error, n+2)
	appendOne := func(i int) {
		_, err := la.Append(ctx, ev(fmt.Sprintf("u%d", i)))
		errs <- err
	}
	go appendOne(0)
	waitUntil(t, "the first commit to wait for the log's lock", func() (bool, error) {
		var waiting int
		err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return waiting > 0, err
	})
	// The others arrive an hour later, by the server's clock.
	later := t0.Add(time.Hour)
	clock.Store(later.UnixNano())
	for i := 1; i < n/2; i++ {
		go appendOne(i)
	}
	go func() {
		_, err := other.Append(ctx, ev("other"))
		errs <- err
	}()
	go func() {
		_, _, err := la.AppendIdempotent(ctx, []event.Event{ev("idem")}, Idempotency{Scope: "s", Key: "k", Fingerprint: []byte{1}})
		errs <- err
	}()
	for i := n / 2; i < n; i++ {
		go appendOne(i)
	}
	waitUntil(t, "the other appends to queue", func() (bool, error) { return len(a.w.reqs) == n+1, nil })
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range n + 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(commits) != 2 || commits[0].Requests != n || commits[1].Requests != 2 {
		t.Errorf("commits = %+v, want one of the %d appends to app, then one of the other two", commits, n)
	}
	if la.Size() != n+3 || other.Size() != 1 {
		t.Errorf("sizes %d and %d, want %d and 1", la.Size(), other.Size(), n+3)
	}
	for seq := int64(2); seq < 2+n; seq++ {
		e, err := la.GetSeq(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if !e.ReceivedAt.Equal(later) {
			t.Errorf("event %d of the joined commit received at %s, want %s, when the commit was built", seq, e.ReceivedAt, later)
		}
	}
}

// waitUntil polls cond until it holds, failing the test after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
