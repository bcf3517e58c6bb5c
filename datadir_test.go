package trail_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
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
				rs, err := l.AppendBatch(ctx, []event.Event{evs[i]})
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

// waitFor calls ok until it reports true, failing t if it has not within
// d; what it says last is the failure's message.
func waitFor(t *testing.T, d time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		done, msg := ok()
		if done {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What a second DB on the data directory appends (trail append beside
// trail serve), the first one's reads see within 2 seconds without an
// append of its own: each kind of read alone, polled after another
// append through the second DB, shows it. The indexer of the first
// DB indexes those events too, once the second one is closed.
func TestReadsFollowOtherWriter(t *testing.T) {
	ctx := context.Background()
	server, sl := newDataDir(t, trail.Options{})
	if _, err := sl.AppendBatch(ctx, storetest.Events(100, 7)); err != nil {
		t.Fatal(err)
	}
	if _, err := sl.Search(ctx, api.Query{}); err != nil {
		t.Fatal(err)
	}
	cli, err := trail.Open(ctx, server.Dir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cl, err := cli.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}

	// cliAppend appends n events of actor cli-<round> through the second
	// DB, crossing tile boundaries on the way, and returns the receipt
	// of the last and the log's size after it.
	cliAppend := func(round, n int) (api.Receipt, int64) {
		t.Helper()
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("cli-%d", round)}, Action: fmt.Sprintf("cli.round%d", round)}
		}
		rs, err := cl.AppendBatch(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		last := rs[len(rs)-1]
		return last, last.Seq + 1
	}
	for round, read := range []struct {
		name string
		ok   func(last api.Receipt, size int64, round int) (bool, string)
	}{
		{"Size", func(_ api.Receipt, size int64, _ int) (bool, string) {
			return sl.Size() == size, fmt.Sprintf("Size() = %d, want %d", sl.Size(), size)
		}},
		{"Checkpoint", func(_ api.Receipt, size int64, _ int) (bool, string) {
			signed, err := sl.Checkpoint()
			if err != nil {
				return false, err.Error()
			}
			c, err := sl.OpenCheckpoint(signed)
			return err == nil && c.Size == size, fmt.Sprintf("Checkpoint() of size %d, %v; want size %d", c.Size, err, size)
		}},
		{"Get", func(last api.Receipt, _ int64, _ int) (bool, string) {
			e, err := sl.Get(ctx, last.ID)
			return err == nil && e.ID == last.ID, fmt.Sprintf("Get(%s) = %v", last.ID, err)
		}},
		{"Search", func(last api.Receipt, _ int64, round int) (bool, string) {
			p, err := sl.Search(ctx, api.Query{Actor: fmt.Sprintf("cli-%d", round), Limit: 1})
			return err == nil && len(p.Events) == 1 && p.Events[0].ID == last.ID, fmt.Sprintf("Search(actor cli-%d) = %d events, %v; want %s", round, len(p.Events), err, last.ID)
		}},
		{"Search by action", func(last api.Receipt, _ int64, round int) (bool, string) {
			p, err := sl.Search(ctx, api.Query{Action: fmt.Sprintf("cli.round%d", round), Limit: 1})
			return err == nil && len(p.Events) == 1 && p.Events[0].ID == last.ID, fmt.Sprintf("Search(action cli.round%d) = %d events, %v; want %s", round, len(p.Events), err, last.ID)
		}},
		{"ProveInclusion", func(last api.Receipt, size int64, _ int) (bool, string) {
			_, err := sl.ProveInclusion(ctx, last.Seq, size)
			return err == nil, fmt.Sprintf("ProveInclusion(%d, %d) = %v", last.Seq, size, err)
		}},
	} {
		last, size := cliAppend(round, 70+round*60)
		waitFor(t, 2*time.Second, read.name+" sees the other DB's appends", func() (bool, string) { return read.ok(last, size, round) })

		// Everything else agrees with it: the proof checks against
		// the checkpoint, and every event is there.
		signed, err := sl.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		c, err := sl.OpenCheckpoint(signed)
		if err != nil || c.Size != size || sl.Size() != size {
			t.Fatalf("after %s: Checkpoint() of size %d (%v), Size() = %d; want %d", read.name, c.Size, err, sl.Size(), size)
		}
		e, err := sl.Get(ctx, last.ID)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := sl.ProveInclusion(ctx, last.Seq, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(proof, size, c.Hash, last.Seq, tlog.RecordHash(canon.Append(nil, e))); err != nil {
			t.Fatalf("after %s: the proof of seq %d does not check against the checkpoint: %v", read.name, last.Seq, err)
		}
	}

	// The first DB appends after them, and the log verifies.
	rc, err := sl.Append(ctx, event.Event{Actor: event.Actor{ID: "server"}, Action: "server.append"})
	if err != nil || rc.Seq != sl.Size()-1 {
		t.Fatalf("Append through the first DB = %+v, %v; want seq %d", rc, err, sl.Size()-1)
	}
	if rep, err := sl.Verify(ctx, trail.VerifyOptions{}); err != nil || rep.Size != sl.Size() {
		t.Errorf("Verify = %+v, %v; want all %d events checked", rep, err, sl.Size())
	}

	// Events appended by a DB that is closed at once, as trail append
	// is, are indexed by the first DB's indexer, once it is idle (woken
	// by no commit of its own).
	if err := sl.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	last, _ := cliAppend(100, 500)
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the first DB's indexer indexes them", func() (bool, string) {
		st, err := server.IndexStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Lag["acme"] == 0, fmt.Sprintf("IndexStatus().Lag[acme] = %d", st.Lag["acme"])
	})
	if p, err := sl.Search(ctx, api.Query{Actor: "cli-100"}); err != nil || len(p.Events) != 100 || p.Events[0].ID != last.ID {
		t.Errorf("Search(actor cli-100) once indexed = %d events, %v; want 100, newest %s", len(p.Events), err, last.ID)
	}
}

// Appends through two DBs on one data directory while the first one's
// reads follow the second's: every append gets its own seq, every read
// succeeds, the size a reader sees never goes back, and the log verifies.
func TestFollowWhileAppending(t *testing.T) {
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
	const perWriter = 40
	var mu sync.Mutex
	var ids []string
	var writers sync.WaitGroup
	for i, l := range []*trail.Log{sl, sl, sl, cl, cl} {
		writers.Go(func() {
			for j := range perWriter {
				rc, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("w%d", i)}, Action: "test.append", Metadata: json.RawMessage(fmt.Sprintf(`{"n":%d}`, j))})
				if err != nil {
					t.Errorf("writer %d: Append %d: %v", i, j, err)
					return
				}
				mu.Lock()
				ids = append(ids, rc.ID)
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 2 {
		readers.Go(func() {
			var seen int64
			for {
				select {
				case <-done:
					return
				default:
				}
				size := sl.Size()
				if size < seen {
					t.Errorf("reader %d: Size() = %d after %d", i, size, seen)
					return
				}
				seen = size
				if size == 0 {
					continue
				}
				if _, err := sl.GetSeq(ctx, size-1); err != nil {
					t.Errorf("reader %d: GetSeq(%d) = %v", i, size-1, err)
					return
				}
				if _, err := sl.Search(ctx, api.Query{Action: "test.*", Limit: 5}); err != nil {
					t.Errorf("reader %d: Search = %v", i, err)
					return
				}
				if _, err := sl.ProveInclusion(ctx, size-1, size); err != nil {
					t.Errorf("reader %d: ProveInclusion(%d, %d) = %v", i, size-1, size, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		return
	}
	var want int64
	if len(ids) != 5*perWriter {
		t.Fatalf("%d appends succeeded, want %d", len(ids), 5*perWriter)
	}
	waitFor(t, 2*time.Second, "Size() counts every append", func() (bool, string) {
		want = sl.Size()
		return want == int64(len(ids)), fmt.Sprintf("Size() = %d, want %d", want, len(ids))
	})
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("id %s given twice", id)
		}
		seen[id] = true
		if _, err := sl.Get(ctx, id); err != nil {
			t.Errorf("Get(%s) = %v", id, err)
		}
	}
	if rep, err := sl.Verify(ctx, trail.VerifyOptions{}); err != nil || rep.Size != want {
		t.Errorf("Verify = %+v, %v; want all %d events checked", rep, err, want)
	}
}
