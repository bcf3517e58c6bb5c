package trail_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// witnessPolicy returns a policy for the log with verifier key vkey:
// every witness of ws, all of them needed.
func witnessPolicy(t *testing.T, vkey string, ws ...*witnesstest.Witness) *policy.Policy {
	t.Helper()
	text := "log " + vkey + "\n"
	var names []string
	for i, w := range ws {
		name := fmt.Sprintf("w%d", i+1)
		names = append(names, name)
		text += fmt.Sprintf("witness %s %s %s\n", name, w.VerifierKey, w.URL)
	}
	text += "group all-of-them all " + strings.Join(names, " ") + "\nquorum all-of-them\n"
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatalf("policy.Parse(%q) = %v", text, err)
	}
	return p
}

func appendN(t *testing.T, l *trail.Log, n int, action string) {
	t.Helper()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("u%d", i)}, Action: action}
	}
	if _, err := l.AppendBatch(context.Background(), evs); err != nil {
		t.Fatalf("AppendBatch = %v", err)
	}
}

// copyDir copies a closed data directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(to, rel), os.O_CREATE|os.O_WRONLY|os.O_EXCL, info.Mode())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// witnessedSize returns the size of the log's witnessed checkpoint, after
// checking it against the policy: 0 if there is none.
func witnessedSize(t *testing.T, l *trail.Log, p *policy.Policy) int64 {
	t.Helper()
	signed, err := l.WitnessedCheckpoint(context.Background())
	if errors.Is(err, trail.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("WitnessedCheckpoint = %v", err)
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil {
		t.Fatalf("the witnessed checkpoint does not open with the log's key: %v", err)
	}
	if r := p.Check(signed); !r.Met {
		t.Fatalf("the witnessed checkpoint of size %d does not meet the policy: %v", c.Size, r)
	}
	return c.Size
}

// initLog makes a data directory at dir holding one empty log, name with
// origin (the default when ""), and returns the log's verifier key.
func initLog(t testing.TB, dir, name, origin string) string {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, name, origin)
	if err != nil {
		t.Fatal(err)
	}
	return l.VerifierKey()
}

// A log witnessed by two real witnesses, both needed: its checkpoints
// get cosigned by both; with one witness down, appends go on, the status
// says which witness fails and the witnessed size stays behind; once it
// is back on its state, witnessing catches up. A copy of the log grown
// with another history under the same key is refused by the witnesses
// and never has a witnessed checkpoint.
func TestWitnessing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	vkey := initLog(t, dir, "acme", "")
	fork := filepath.Join(t.TempDir(), "fork")
	copyDir(t, dir, fork)

	w1 := witnesstest.New(t, "", vkey)
	w2 := witnesstest.New(t, "", vkey)
	p := witnessPolicy(t, vkey, w1, w2)
	db, err := trail.Open(ctx, dir, trail.Options{WitnessPolicy: p, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := witnessedSize(t, l, p); n != 0 {
		t.Fatalf("witnessed size of a new log = %d, want none", n)
	}
	for range 3 {
		appendN(t, l, 7, "user.login")
	}
	waitFor(t, 10*time.Second, "a checkpoint cosigned by both witnesses", func() (bool, string) {
		n := witnessedSize(t, l, p)
		return n == l.Size(), fmt.Sprintf("witnessed size %d, log size %d, status %+v", n, l.Size(), db.WitnessStatus())
	})
	signed, _ := l.WitnessedCheckpoint(ctx)
	if r := p.Check(signed); !slices.Equal(r.Cosigners, []string{"w1", "w2"}) {
		t.Errorf("cosigners = %v, want w1 and w2", r.Cosigners)
	}

	// A cosigned checkpoint copied in the database under a larger size
	// is damage, not a witnessed log of that size that denies events.
	raw, err := sql.Open(sqlite.DriverName, "file:"+filepath.Join(dir, "trail.db")+"?_pragma=busy_timeout(10000)") // the DB writes meanwhile
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("INSERT INTO witnessed SELECT log, 1000, signed_at, note FROM witnessed WHERE size = (SELECT max(size) FROM witnessed)"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WitnessedCheckpoint(ctx); !errors.Is(err, trail.ErrDamaged) {
		t.Errorf("WitnessedCheckpoint with a row planted at size 1000 = %v, want ErrDamaged", err)
	}
	if _, err := raw.Exec("DELETE FROM witnessed WHERE size = 1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WitnessedCheckpoint(ctx); err != nil {
		t.Errorf("WitnessedCheckpoint once the row is gone = %v", err)
	}

	// One witness down: appends go on, witnessing stays behind.
	w2.Stop()
	before := l.Size()
	appendN(t, l, 5, "user.logout")
	waitFor(t, 10*time.Second, "the status says w2 fails and w1 cosigned the newest", func() (bool, string) {
		st := db.WitnessStatus()
		ok := len(st) == 1 && st[0].Size == l.Size() && len(st[0].Witnesses) == 2 && st[0].Witnesses[1].Err != nil && st[0].Witnesses[1].Failures > 0 && !st[0].Since.IsZero() && st[0].Witnesses[0].Size == l.Size()
		return ok, fmt.Sprintf("%+v", st)
	})
	if n := witnessedSize(t, l, p); n != before {
		t.Errorf("witnessed size with w2 down = %d, want %d", n, before)
	}
	if st := db.WitnessStatus(); st[0].Witnesses[0].Err != nil {
		t.Errorf("w1's status = %+v, want no error", st[0].Witnesses[0])
	}
	// w1 down too, and the log moves on: the events w1's last
	// cosignature covers are proved against that checkpoint, with it,
	// rather than against the latest, which no witness cosigned.
	w1.Stop()
	cosigned := l.Size()
	appendN(t, l, 2, "user.logout")
	signed, met, err := l.WitnessedAt(ctx, cosigned-1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil || met || c.Size != cosigned || !slices.Equal(p.Check(signed).Cosigners, []string{"w1"}) {
		t.Errorf("WitnessedAt(%d) = size %d (%v), met %v, cosigned by %v; want size %d cosigned by w1", cosigned-1, c.Size, err, met, p.Check(signed).Cosigners, cosigned)
	}
	w1.Restart()

	// Back on its state: caught up.
	w2.Restart()
	// The status follows the stored checkpoint a moment later (the
	// follower stores it, then publishes): both are waited for.
	waitFor(t, 40*time.Second, "witnessing catches up once w2 is back, and the status says so", func() (bool, string) {
		n := witnessedSize(t, l, p)
		st := db.WitnessStatus()
		ok := n == l.Size() && st[0].Witnesses[1].Err == nil && st[0].Since.IsZero()
		return ok, fmt.Sprintf("witnessed size %d, log size %d, status %+v (want no error and no lag)", n, l.Size(), st)
	})

	// The copy, grown with another history: first shorter than what the
	// witnesses cosigned, then longer.
	fdb, err := trail.Open(ctx, fork, trail.Options{WitnessPolicy: p, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	fl, err := fdb.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, fl, 10, "forked.event")
	time.Sleep(time.Second)
	appendN(t, fl, int(l.Size()), "forked.event")
	waitFor(t, 10*time.Second, "both witnesses refuse the fork", func() (bool, string) {
		st := fdb.WitnessStatus()
		ok := len(st) == 1 && st[0].Size == fl.Size()
		for _, w := range st[0].Witnesses {
			ok = ok && w.Err != nil && strings.Contains(w.Err.Error(), "422")
		}
		return ok, fmt.Sprintf("%+v", st)
	})
	if n := witnessedSize(t, fl, p); n != 0 {
		t.Errorf("the fork has a witnessed checkpoint of size %d", n)
	}
	if n := witnessedSize(t, l, p); n != l.Size() {
		t.Errorf("the log's witnessed size after the fork's submissions = %d, want %d", n, l.Size())
	}
}

// testLogger sends a DB's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// storeURL is the store URL of a backends location.
func storeURL(loc string) string {
	if strings.Contains(loc, "://") {
		return loc
	}
	return "sqlite:" + loc
}

// Two DBs on one store witness the same log at once, as the nodes of a
// cluster on PostgreSQL do (and trail serve beside another writer on a
// data directory), while both append: each gets the log's checkpoints
// cosigned, the witnessed checkpoint never moves back, and both end at
// the log's final size.
func TestWitnessingTwoNodes(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		url := storeURL(b.New(t))
		db, err := trail.InitStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		l, err := db.CreateLog(ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		vkey := l.VerifierKey()
		db.Close()
		w1, w2 := witnesstest.New(t, "", vkey), witnesstest.New(t, "", vkey)
		p := witnessPolicy(t, vkey, w1, w2)
		var nodes [2]*trail.Log
		for i := range nodes {
			db, err := trail.OpenStore(ctx, url, trail.Options{WitnessPolicy: p, MasterKey: b.MasterKey, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if nodes[i], err = db.Log(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
		}

		stop := make(chan struct{})
		watched := make(chan error, 1)
		go func() { // the witnessed size, as node 0 serves it, never moves back
			var last int64
			for {
				select {
				case <-stop:
					watched <- nil
					return
				case <-time.After(5 * time.Millisecond):
				}
				signed, err := nodes[0].WitnessedCheckpoint(ctx)
				if errors.Is(err, trail.ErrNotFound) {
					continue
				}
				if err != nil {
					watched <- err
					return
				}
				c, err := nodes[0].OpenCheckpoint(signed)
				if err != nil || !p.Check(signed).Met {
					watched <- fmt.Errorf("witnessed checkpoint %q: %v, policy %v", signed, err, p.Check(signed))
					return
				}
				if c.Size < last {
					watched <- fmt.Errorf("the witnessed size moved back from %d to %d", last, c.Size)
					return
				}
				last = c.Size
			}
		}()
		var wg sync.WaitGroup
		for i, l := range nodes {
			wg.Go(func() {
				for range 15 {
					evs := []event.Event{{Actor: event.Actor{ID: "u"}, Action: fmt.Sprintf("node%d.event", i)}}
					if _, err := l.AppendBatch(ctx, slices.Repeat(evs, 3)); err != nil {
						t.Errorf("node %d: AppendBatch = %v", i, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		appendN(t, nodes[0], 1, "last.event")
		var size int64
		waitFor(t, 5*time.Second, "node 1 sees node 0's last append", func() (bool, string) {
			size = max(nodes[0].Size(), nodes[1].Size())
			return nodes[1].Size() == nodes[0].Size(), fmt.Sprintf("sizes %d, %d", nodes[0].Size(), nodes[1].Size())
		})
		for i, l := range nodes {
			waitFor(t, 20*time.Second, fmt.Sprintf("node %d serves the final size witnessed", i), func() (bool, string) {
				n := witnessedSize(t, l, p)
				return n == size, fmt.Sprintf("witnessed %d, size %d", n, size)
			})
		}
		close(stop)
		if err := <-watched; err != nil {
			t.Error(err)
		}
	})
}

// A DB that would witness refuses a policy whose quorum needs witnesses
// it cannot submit to; read-only, it takes it (for checking).
func TestWitnessPolicyUnreachableQuorum(t *testing.T) {
	ctx := context.Background()
	db, l := newDataDir(t, trail.Options{})
	dir := db.Dir()
	w1 := witnesstest.New(t, "", l.VerifierKey())
	w2 := witnesstest.New(t, "", l.VerifierKey())
	db.Close()
	p, err := policy.Parse([]byte(fmt.Sprintf("witness w1 %s %s\nwitness w2 %s\ngroup both all w1 w2\nquorum both\n", w1.VerifierKey, w1.URL, w2.VerifierKey)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trail.Open(ctx, dir, trail.Options{WitnessPolicy: p}); err == nil || !strings.Contains(err.Error(), "no URL") {
		t.Errorf("Open with a quorum needing a witness without URL = %v, want an error saying so", err)
	}
	ro, err := trail.Open(ctx, dir, trail.Options{WitnessPolicy: p, ReadOnly: true})
	if err != nil {
		t.Fatalf("Open read-only = %v", err)
	}
	ro.Close()
}

// A DB witnessing with WitnessInterval submits a log's newest checkpoint
// to each witness at most once an interval, whatever its commit rate, and
// the last submission covers the last commit.
func TestWitnessInterval(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	vkey := initLog(t, dir, "acme", "")
	w1 := witnesstest.New(t, "", vkey)
	p := witnessPolicy(t, vkey, w1)
	const interval = time.Second
	db, err := trail.Open(ctx, dir, trail.Options{WitnessPolicy: p, WitnessInterval: interval, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		appendN(t, l, 1, "user.login") // a commit every 20 ms or so
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	waitFor(t, 10*time.Second, "the last commit witnessed", func() (bool, string) {
		n := witnessedSize(t, l, p)
		return n == l.Size(), fmt.Sprintf("witnessed size %d, log size %d, status %+v", n, l.Size(), db.WitnessStatus())
	})
	// One submission may start the run, then one an interval at most;
	// the one that covers the last commit may come after the loop.
	st := db.WitnessStatus()
	if max := int64(elapsed/interval) + 2; len(st) != 1 || st[0].Witnesses[0].Submissions > max || st[0].Witnesses[0].Submissions < 2 {
		t.Errorf("%d commits over %v with WitnessInterval %v made %+v; want from 2 to %d submissions", l.Size(), elapsed.Round(time.Millisecond), interval, st, max)
	}
}
