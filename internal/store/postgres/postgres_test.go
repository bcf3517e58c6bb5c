package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// t0 is when the tests' logs start receiving events: after the times of
// storetest.Events.
var t0 = time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)

// testLogger sends a store's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// open opens the database at url, migrating it, and closes it when t ends.
func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Migrate: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(migrate) = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// indexed waits until the indexes of w's log cover every event appended
// so far.
func indexed(t *testing.T, s *Store, w *storetest.Writer) {
	t.Helper()
	if err := s.WaitIndexed(context.Background(), w.Info.ID); err != nil {
		t.Fatalf("WaitIndexed(%q) = %v", w.Info.Name, err)
	}
}

// newStore opens a store on a database of its own.
func newStore(t *testing.T) *Store { return open(t, pgtest.DB(t)) }

// raw connects to the database at url directly, to change it behind the
// store's back.
func raw(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestLog(t *testing.T) {
	storetest.RunLog(t, func(t *testing.T) store.Log { return newStore(t) })
}

func TestAccess(t *testing.T) {
	storetest.RunAccess(t, func(t *testing.T) storetest.LogAccess { return newStore(t) })
}

// TestReopen checks that committed logs survive closing the store and that
// a writer resumes from the reopened store's State.
func TestReopen(t *testing.T) {
	url := pgtest.DB(t)
	s := open(t, url)
	a := storetest.NewWriter(t, s, "a")
	evs := storetest.Events(600, 1)
	a.Append(t, s, t0, evs[:300]...)
	s.Close()
	s = open(t, url)
	storetest.CheckLog(t, s, a)
	a.Append(t, s, t0.Add(time.Second), evs[300:]...)
	storetest.CheckLog(t, s, a)
}

// TestSharedCommits commits one batch through several Stores on one
// database at once: the log's row lock lets exactly one win, and the
// others get store.ErrConflict, not a duplicate-key error.
func TestSharedCommits(t *testing.T) {
	url := pgtest.DB(t)
	const n = 6
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = open(t, url)
	}
	w := storetest.NewWriter(t, stores[0], "audit")
	evs := storetest.Events(400, 2)
	w.Append(t, stores[0], t0, evs[:100]...)
	for round := range 5 {
		b := w.Batch(t, t0.Add(time.Duration(round+1)*time.Second), evs[100+round*60:100+round*60+60]...)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { errs[i] = s.Commit(context.Background(), []store.Batch{b}) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d: store %d: Commit = %v, want nil or an error wrapping store.ErrConflict", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of %d concurrent Commits of one batch succeeded, want 1", round, won, n)
		}
		w.Committed(t, b)
		for _, s := range stores {
			if size, err := s.Size(context.Background(), w.Info.ID); err != nil || size != w.Size() {
				t.Fatalf("round %d: Size = %d, %v; want %d", round, size, err, w.Size())
			}
		}
	}
	for _, s := range stores {
		storetest.CheckLog(t, s, w)
	}
}

// TestCommitPastEnd stores an event past the log's size behind the
// store's back: a commit that would reach it fails with a
// *store.DamagedError naming it, and stores nothing.
func TestCommitPastEnd(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(20, 3)
	w.Append(t, s, t0, evs[:5]...)
	conn := raw(t, url)
	editRecords(t, conn, w.Info.ID, 0, func(recs [][]byte) [][]byte { return append(recs, nil, nil, nil, recs[4]) })
	b := w.Batch(t, t0.Add(time.Second), evs[5:10]...)
	err := s.Commit(ctx, []store.Batch{b})
	var d *store.DamagedError
	if !errors.As(err, &d) || d.Seq != 8 {
		t.Fatalf("Commit(seqs 5-9 with seq 8 stored) = %v, want a *store.DamagedError at seq 8", err)
	}
	if _, err := s.CheckpointAt(ctx, w.Info.ID, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CheckpointAt(10) after the failed commit = %v, want ErrNotFound", err)
	}
	if size, err := s.Size(ctx, w.Info.ID); err != nil || size != 5 {
		t.Errorf("Size after the failed commit = %d, %v; want 5", size, err)
	}
	editRecords(t, conn, w.Info.ID, 0, func(recs [][]byte) [][]byte { return recs[:5] })
	w.Append(t, s, t0.Add(2*time.Second), evs[5:10]...)
	storetest.CheckLog(t, s, w)
}

// TestDamagedEvent overwrites stored events behind the store's back: Get,
// Scan and Walk fail with a *store.DamagedError naming the event.
func TestDamagedEvent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(10, 4)...)
	conn := raw(t, url)
	for _, c := range []struct {
		name string
		edit func(recs [][]byte) [][]byte
		seq  int64
	}{
		{"undecodable", func(recs [][]byte) [][]byte { recs[3] = []byte(`{"a`); return recs }, 3},
		{"moved", func(recs [][]byte) [][]byte { recs[6] = recs[7]; return recs }, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			editRecords(t, conn, w.Info.ID, 0, c.edit)
			var d *store.DamagedError
			if _, err := s.Get(ctx, w.Info.ID, c.seq); !errors.As(err, &d) || d.Seq != c.seq {
				t.Errorf("Get(%d) = %v, want a *store.DamagedError at seq %d", c.seq, err, c.seq)
			}
			var err error
			n := 0
			for _, err = range s.Scan(ctx, w.Info.ID, c.seq-1, 10) {
				if err != nil {
					break
				}
				n++
			}
			if !errors.As(err, &d) || d.Seq != c.seq || n != 1 {
				t.Errorf("Scan(%d, 10) = %d events then %v, want 1 then a *store.DamagedError at seq %d", c.seq-1, n, err, c.seq)
			}
			err = s.Walk(ctx, w.Info.ID, 0, 10, func(*event.Event) error { return nil })
			if !errors.As(err, &d) || d.Seq > c.seq {
				t.Errorf("Walk = %v, want a *store.DamagedError at or before seq %d", err, c.seq)
			}
		})
	}
}

// TestCrossCommits commits batches of two logs through two Stores at once,
// each naming the logs in the opposite order: the rows are locked in id
// order, so neither waits for the other forever, and every commit either
// lands whole or fails with store.ErrConflict.
func TestCrossCommits(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s1, s2 := open(t, url), open(t, url)
	a, b := storetest.NewWriter(t, s1, "a"), storetest.NewWriter(t, s1, "b")
	evs := storetest.Events(200, 5)
	for round := range 10 {
		recv := t0.Add(time.Duration(round) * time.Second)
		ba, bb := a.Batch(t, recv, evs[round*10:round*10+10]...), b.Batch(t, recv, evs[round*10+100:round*10+110]...)
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		var err1, err2 error
		var wg sync.WaitGroup
		wg.Go(func() { err1 = s1.Commit(ctx, []store.Batch{ba, bb}) })
		wg.Go(func() { err2 = s2.Commit(ctx, []store.Batch{bb, ba}) })
		wg.Wait()
		cancel()
		if (err1 == nil) == (err2 == nil) || err1 != nil && !errors.Is(err1, store.ErrConflict) || err2 != nil && !errors.Is(err2, store.ErrConflict) {
			t.Fatalf("round %d: Commit(a, b) = %v and Commit(b, a) = %v at once; want one nil, one ErrConflict", round, err1, err2)
		}
		a.Committed(t, ba)
		b.Committed(t, bb)
	}
	storetest.CheckLog(t, s2, a)
	storetest.CheckLog(t, s2, b)
}

// TestWritable: a store on a live database is writable; a closed one is
// not.
func TestWritable(t *testing.T) {
	s := newStore(t)
	if err := s.Writable(context.Background()); err != nil {
		t.Fatalf("Writable() = %v", err)
	}
	s.Close()
	if err := s.Writable(context.Background()); err == nil {
		t.Errorf("Writable() of a closed store = nil, want an error")
	}
}

// TestScanLargeEvents scans events big enough that a chunk of them passes
// scanBytes before scanChunk: the scan goes on from where the chunk
// stopped, skipping and repeating nothing.
func TestScanLargeEvents(t *testing.T) {
	s := newStore(t)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(400, 6)
	for i := range evs {
		pad := strings.Repeat(string(rune('a'+i%26)), 30000)
		evs[i].Metadata = json.RawMessage(`{"pad":"` + pad + `"}`)
	}
	if n := 400 * 30000; n < 2*scanBytes {
		t.Fatalf("%d bytes of events fill fewer than 2 chunks of %d bytes", n, scanBytes)
	}
	w.Append(t, s, t0, evs[:200]...)
	w.Append(t, s, t0.Add(time.Second), evs[200:]...)
	storetest.CheckLog(t, s, w)
}

// TestManyCheckpoints reads more checkpoints than one query of Checkpoints
// returns.
func TestManyCheckpoints(t *testing.T) {
	s := newStore(t)
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(scanChunk+5, 7)
	for i := range evs {
		w.Append(t, s, t0.Add(time.Duration(i)*time.Millisecond), evs[i])
	}
	storetest.CheckLog(t, s, w)
}

// TestSynchronousCommit: a database whose default is synchronous_commit
// off still gets durable commits from the store, and one whose default
// plans prepared statements once for all arguments still gets searches
// planned for theirs.
func TestSynchronousCommit(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	conn := raw(t, url)
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	s := open(t, url)
	var got string
	if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil || got != "on" {
		t.Errorf("synchronous_commit of the store's connections = %q, %v; want on", got, err)
	}
	if err := s.pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&got); err != nil || got != "force_custom_plan" {
		t.Errorf("plan_cache_mode of the store's connections = %q, %v; want force_custom_plan", got, err)
	}
}

// TestCommitLockedGuess: a Store that made a log's last commit builds the
// next one on where it left the log, and locks, checks and writes in one
// round trip. When the guess is wrong (another Store committed since, or
// something was stored past the log's end), the check under the lock
// catches it, build is called again with the log as locked, and only
// that commit is stored; damage is reported as such.
func TestCommitLockedGuess(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s1, s2 := open(t, url), open(t, url)
	w := storetest.NewWriter(t, s1, "audit")
	evs := storetest.Events(40, 9)
	// Guessing again at once after a wrong guess, until the last steps.
	defer func(d time.Duration) { guessAfter = d }(guessAfter)
	guessAfter = 0
	type call struct {
		size  int64
		moved bool
	}
	// commit commits evs through s, known at size known, building the
	// batch on whatever size build is given, as the writer does.
	commit := func(s *Store, known int64, evs []event.Event) ([]call, error) {
		var calls []call
		var b store.Batch
		err := s.CommitLocked(ctx, map[int64]int64{w.Info.ID: known}, func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, error) {
			_, mv := moved[w.Info.ID]
			calls = append(calls, call{sizes[w.Info.ID], mv})
			b = w.BatchAt(t, sizes[w.Info.ID], t0.Add(time.Duration(known)*time.Second), evs...)
			return []store.Batch{b}, nil
		})
		if err == nil {
			w.Committed(t, b)
		}
		return calls, err
	}
	want := func(step string, got []call, err error, want ...call) {
		t.Helper()
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: CommitLocked = %v, build called with %v; want nil, build called with %v", step, err, got, want)
		}
	}

	calls, err := commit(s1, 0, evs[0:5])
	want("first commit", calls, err, call{0, false})
	calls, err = commit(s1, 5, evs[5:12])
	want("commit after its own", calls, err, call{5, false})

	// A build that finds its caller's state moved since known (a read
	// reloaded it) is called again with the log as locked.
	var sizes []int64
	var b store.Batch
	err = s1.CommitLocked(ctx, map[int64]int64{w.Info.ID: 12}, func(got map[int64]int64, _ map[int64]store.State) ([]store.Batch, error) {
		if sizes = append(sizes, got[w.Info.ID]); len(sizes) == 1 {
			return nil, store.ErrConflict
		}
		b = w.Batch(t, t0.Add(30*time.Second), evs[12:13]...)
		return []store.Batch{b}, nil
	})
	if err != nil || !slices.Equal(sizes, []int64{12, 12}) {
		t.Fatalf("CommitLocked whose build fails once = %v, build called at %v; want nil, build called twice at 12", err, sizes)
	}
	w.Committed(t, b)

	// A record past the end of the bundle s1 last appended to: the guess
	// is caught, and the commit through the lock reports the damage.
	conn := raw(t, url)
	editRecords(t, conn, w.Info.ID, 0, func(recs [][]byte) [][]byte { return append(recs, nil, recs[1]) })
	calls, err = commit(s1, 13, evs[13:15])
	var d *store.DamagedError
	if !errors.As(err, &d) || d.Seq != 14 || !slices.Equal(calls, []call{{13, false}, {13, false}}) {
		t.Fatalf("CommitLocked with seq 14 stored behind the Store's back = %v, build called with %v; want a *store.DamagedError at seq 14, build called twice at 13", err, calls)
	}
	if size, err := s1.Size(ctx, w.Info.ID); err != nil || size != 13 {
		t.Fatalf("Size after the failed commit = %d, %v; want 13", size, err)
	}
	editRecords(t, conn, w.Info.ID, 0, func(recs [][]byte) [][]byte { return recs[:13] })
	calls, err = commit(s1, 13, evs[13:15])
	want("commit once repaired", calls, err, call{13, false})

	// A bundle past the end.
	if _, err := conn.Exec(ctx, "INSERT INTO event_bundles (log, first_seq, data) SELECT log, 48, data FROM event_bundles WHERE log = $1 AND first_seq = 0", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	calls, err = commit(s1, 15, evs[15:20])
	if !errors.As(err, &d) || d.Seq != 48 || !slices.Equal(calls, []call{{15, false}, {15, false}}) {
		t.Fatalf("CommitLocked with a bundle stored at seq 48 = %v, build called with %v; want a *store.DamagedError at seq 48, build called twice at 15", err, calls)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM event_bundles WHERE log = $1 AND first_seq = 48", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	calls, err = commit(s1, 15, evs[15:20])
	want("commit once the bundle is gone", calls, err, call{15, false})

	// Another Store's commit.
	guessAfter = time.Hour
	w.Append(t, s2, t0.Add(time.Minute), evs[20:25]...)
	calls, err = commit(s1, 20, evs[25:30])
	want("commit after another Store's", calls, err, call{20, false}, call{25, true})
	// For a while after a wrong guess, the Store does not guess: the
	// commit goes through the lock and read at once.
	w.Append(t, s2, t0.Add(2*time.Minute), evs[30:33]...)
	calls, err = commit(s1, 30, evs[33:40])
	want("commit right after a wrong guess", calls, err, call{33, true})
	storetest.CheckLog(t, s2, w)
}

// TestFrozenNode: a node that stops in the middle of a transaction
// holding its log's row (here: a connection of its pool that locked the
// row and then says nothing) holds the other nodes' commits to the log
// only until PostgreSQL ends its idle transaction (idleInTransaction);
// they then commit, and the frozen node's transaction is gone.
func TestFrozenNode(t *testing.T) {
	defer func(d time.Duration) { idleInTransaction = d }(idleInTransaction)
	idleInTransaction = time.Second
	ctx := context.Background()
	url := pgtest.DB(t)
	frozen, other := open(t, url), open(t, url)
	w := storetest.NewWriter(t, other, "audit")
	w.Append(t, other, t0, storetest.Events(3, 1)...)

	conn, err := frozen.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, lockQuery, []int64{w.Info.ID}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	b := w.Batch(t, t0.Add(time.Second), storetest.Events(2, 2)...)
	if err := other.Commit(cctx, []store.Batch{b}); err != nil {
		t.Fatalf("Commit while another node's transaction holds the log: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	w.Committed(t, b)
	if took := time.Since(start); took < idleInTransaction/2 {
		t.Errorf("Commit returned after %v, before the other transaction could have been ended", took)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("the frozen node's transaction committed after PostgreSQL should have ended it")
	}
	if size, err := other.Size(ctx, w.Info.ID); err != nil || size != 5 {
		t.Errorf("Size = %d, %v; want 5", size, err)
	}
}

// TestCheckSettings: a connection that commits without waiting for the
// flush, or runs transactions above read committed (as through a pooler
// that drops Trail's startup settings and a role whose defaults are
// so), is refused with an error naming the setting and the fix; the
// settings Trail gives its connections pass.
func TestCheckSettings(t *testing.T) {
	ctx := context.Background()
	conn := raw(t, pgtest.DB(t))
	for _, c := range []struct {
		set, want string
	}{
		{"SET synchronous_commit = on", ""},
		{"SET synchronous_commit = local", ""},
		{"SET synchronous_commit = off", "synchronous_commit is off"},
		{"SET synchronous_commit = on; SET default_transaction_isolation = 'repeatable read'", "transactions are repeatable read"},
		{"SET default_transaction_isolation = 'serializable'", "transactions are serializable"},
		{"SET default_transaction_isolation = 'read committed'", ""},
	} {
		if _, err := conn.Exec(ctx, c.set); err != nil {
			t.Fatal(err)
		}
		err := checkSettings(ctx, conn)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("after %s: checkSettings = %v, want nil", c.set, err)
		case c.want != "" && (!errors.Is(err, errSettings) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "ALTER ROLE")):
			t.Errorf("after %s: checkSettings = %v, want errSettings saying %q and how to fix it", c.set, err, c.want)
		}
	}
}
