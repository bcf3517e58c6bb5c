package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// RunLog runs the conformance tests of store.Log, in parallel. open must
// return a new, empty store on each call and close it when the test ends
// (t.Cleanup).
func RunLog(t *testing.T, open func(t *testing.T) store.Log) {
	tests := []struct {
		name string
		test func(*testing.T, store.Log)
	}{
		{"Logs", testLogs},
		{"NotFound", testNotFound},
		{"CommitAtomic", testCommitAtomic},
		{"CommitConflict", testCommitConflict},
		{"StateResumes", testStateResumes},
		{"Size", testSize},
		{"Get", testGet},
		{"Scan", testScan},
		{"Large", testLarge},
		{"Checkpoints", testCheckpoints},
		{"Isolation", testIsolation},
		{"Concurrent", testConcurrent},
		{"CommitLocked", testCommitLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, open(t))
		})
	}
}

// CheckLog checks everything the store says about w's log against what w
// committed: State (and that it resumes the tree), every event by Get and
// Scan, every tile, every checkpoint, and that nothing lies past the end.
func CheckLog(t *testing.T, s store.Log, w *Writer) {
	t.Helper()
	ctx := context.Background()
	log, size := w.Info.ID, w.Size()

	st, err := s.State(ctx, log)
	if err != nil {
		t.Fatalf("State(%q) = %v", w.Info.Name, err)
	}
	if st.Size != size {
		t.Fatalf("State(%q).Size = %d, want %d", w.Info.Name, st.Size, size)
	}
	var wantLast time.Time
	if size > 0 {
		wantLast = w.Events[size-1].ReceivedAt
	}
	if !st.LastReceivedAt.Equal(wantLast) {
		t.Errorf("State(%q).LastReceivedAt = %v, want %v", w.Info.Name, st.LastReceivedAt, wantLast)
	}
	switch {
	case len(w.Checkpoints) == 0 && st.Checkpoint != nil:
		t.Errorf("State(%q).Checkpoint = size %d, want nil", w.Info.Name, st.Checkpoint.Size)
	case len(w.Checkpoints) > 0:
		checkCheckpoint(t, fmt.Sprintf("State(%q).Checkpoint", w.Info.Name), st.Checkpoint, w.Checkpoints[len(w.Checkpoints)-1])
	}
	app, err := merkle.NewAppender(st.Size, st.Rightmost)
	if err != nil {
		t.Fatalf("NewAppender(State(%q)) = %v", w.Info.Name, err)
	}
	if got, want := app.Root(), w.TreeHash(t, size); got != want {
		t.Errorf("root of the tree resumed from State(%q) = %v, want %v", w.Info.Name, got, want)
	}

	var n int64
	for e, err := range s.Scan(ctx, log, 0, size+10) {
		if err != nil {
			t.Fatalf("Scan(%q, 0, %d) failed after %d events: %v", w.Info.Name, size+10, n, err)
		}
		if n >= size {
			t.Fatalf("Scan(%q, 0, %d) yielded seq %d past the log's %d events", w.Info.Name, size+10, e.Seq, size)
		}
		checkEvent(t, fmt.Sprintf("Scan(%q) event %d", w.Info.Name, n), e, w.Events[n])
		n++
	}
	if n != size {
		t.Fatalf("Scan(%q, 0, %d) yielded %d events, want %d", w.Info.Name, size+10, n, size)
	}
	// Walk, from the middle; the events it lends are copied before the
	// next call may reuse them.
	from := size / 3
	var walked []*event.Event
	err = s.Walk(ctx, log, from, size+10, func(e *event.Event) error {
		if int64(len(walked)) >= size-from {
			return fmt.Errorf("seq %d past the log's %d events", e.Seq, size)
		}
		var c event.Event
		if err := json.Unmarshal(canon.Append(nil, e), &c); err != nil {
			return err
		}
		walked = append(walked, &c)
		return nil
	})
	if err != nil || int64(len(walked)) != size-from {
		t.Fatalf("Walk(%q, %d, %d) = %d events, %v; want %d", w.Info.Name, from, size+10, len(walked), err, size-from)
	}
	for i, e := range walked {
		checkEvent(t, fmt.Sprintf("Walk(%q) event %d", w.Info.Name, from+int64(i)), e, w.Events[from+int64(i)])
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(ctx, log, 0, size, func(*event.Event) error { calls++; return stop }); size > 0 && (!errors.Is(err, stop) || calls != 1) {
		t.Errorf("Walk whose callback fails = %v after %d calls, want its error after 1", err, calls)
	}
	for _, seq := range []int64{0, size / 2, size - 1} {
		if seq < 0 || seq >= size {
			continue
		}
		e, err := s.Get(ctx, log, seq)
		if err != nil {
			t.Fatalf("Get(%q, %d) = %v", w.Info.Name, seq, err)
		}
		checkEvent(t, fmt.Sprintf("Get(%q, %d)", w.Info.Name, seq), e, w.Events[seq])
	}
	_, err = s.Get(ctx, log, size)
	isNotFound(t, fmt.Sprintf("Get(%q, %d) past the end", w.Info.Name, size), err)

	for _, tile := range tlog.NewTiles(merkle.TileHeight, 0, size) {
		want := w.TileData(t, tile)
		got, err := s.Tile(ctx, log, tile.L, tile.N)
		if err != nil {
			t.Fatalf("Tile(%q, %d, %d) = %v", w.Info.Name, tile.L, tile.N, err)
		}
		if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
			t.Fatalf("Tile(%q, %d, %d) = %d bytes that do not start with the tile's %d bytes", w.Info.Name, tile.L, tile.N, len(got), len(want))
		}
	}
	next := (size + 255) / 256 // first level-0 tile with no leaves
	_, err = s.Tile(ctx, log, 0, next)
	isNotFound(t, fmt.Sprintf("Tile(%q, 0, %d) past the end", w.Info.Name, next), err)

	var got []store.Checkpoint
	for c, err := range s.Checkpoints(ctx, log) {
		if err != nil {
			t.Fatalf("Checkpoints(%q) = %v", w.Info.Name, err)
		}
		got = append(got, c)
	}
	if len(got) != len(w.Checkpoints) {
		t.Fatalf("Checkpoints(%q) yielded %d checkpoints, want %d", w.Info.Name, len(got), len(w.Checkpoints))
	}
	for i := range got {
		checkCheckpoint(t, fmt.Sprintf("Checkpoints(%q)[%d]", w.Info.Name, i), &got[i], w.Checkpoints[i])
	}
	last := int64(0)
	if len(w.Checkpoints) > 0 {
		last = w.Checkpoints[len(w.Checkpoints)-1].Size
	}
	_, err = s.CheckpointAt(ctx, log, last+1)
	isNotFound(t, fmt.Sprintf("CheckpointAt(%q, %d) past the last", w.Info.Name, last+1), err)
}

func checkCheckpoint(t *testing.T, call string, got *store.Checkpoint, want store.Checkpoint) {
	t.Helper()
	switch {
	case got == nil:
		t.Errorf("%s = nil, want size %d", call, want.Size)
	case got.Size != want.Size:
		t.Errorf("%s.Size = %d, want %d", call, got.Size, want.Size)
	case !bytes.Equal(got.Note, want.Note):
		t.Errorf("%s.Note =\n%s\nwant\n%s", call, got.Note, want.Note)
	case !got.SignedAt.Equal(want.SignedAt):
		t.Errorf("%s.SignedAt = %v, want %v", call, got.SignedAt, want.SignedAt)
	}
}

func testLogs(t *testing.T, s store.Log) {
	ctx := context.Background()
	logs, err := s.Logs(ctx)
	if err != nil || len(logs) != 0 {
		t.Fatalf("Logs() of a new store = %v, %v; want none", logs, err)
	}
	before := time.Now().Add(-time.Minute)
	ws := map[string]*Writer{}
	for _, name := range []string{"beta", "alpha", "gamma-2"} {
		ws[name] = NewWriter(t, s, name)
	}
	ids := map[int64]string{}
	for name, w := range ws {
		li := w.Info
		if li.ID <= 0 {
			t.Errorf("CreateLog(%q).ID = %d, want > 0", name, li.ID)
		}
		if other, ok := ids[li.ID]; ok {
			t.Errorf("CreateLog(%q).ID = %d, the same as log %q's", name, li.ID, other)
		}
		ids[li.ID] = name
		if li.CreatedAt.Before(before) || li.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("CreateLog(%q).CreatedAt = %v, want about now", name, li.CreatedAt)
		}
		got, err := s.Log(ctx, name)
		if err != nil {
			t.Fatalf("Log(%q) = %v", name, err)
		}
		if got.ID != li.ID || got.Name != li.Name || got.Origin != li.Origin || got.VerifierKey != li.VerifierKey || !got.CreatedAt.Equal(li.CreatedAt) {
			t.Errorf("Log(%q) = %+v, want %+v", name, got, li)
		}
		st, err := s.State(ctx, li.ID)
		if err != nil {
			t.Fatalf("State(%q) = %v", name, err)
		}
		if st.Size != 0 || len(st.Rightmost) != 0 || st.Checkpoint != nil || !st.LastReceivedAt.IsZero() {
			t.Errorf("State(%q) of a new log = %+v, want size 0, no tiles, no checkpoint, zero time", name, st)
		}
	}

	_, err = s.CreateLog(ctx, "alpha", "elsewhere/alpha", "elsewhere/alpha+00000000+AAAA")
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateLog(%q) again = %v, want an error wrapping store.ErrExists", "alpha", err)
	}
	if got, err := s.Log(ctx, "alpha"); err != nil || got.Origin != ws["alpha"].Info.Origin || got.VerifierKey != ws["alpha"].Info.VerifierKey {
		t.Errorf("Log(%q) after a failed CreateLog = %+v, %v; want it unchanged", "alpha", got, err)
	}

	logs, err = s.Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, li := range logs {
		names = append(names, li.Name)
		if w := ws[li.Name]; w == nil || li.ID != w.Info.ID || li.VerifierKey != w.Info.VerifierKey {
			t.Errorf("Logs() holds %+v, not a log that was created", li)
		}
	}
	if want := []string{"alpha", "beta", "gamma-2"}; !slices.Equal(names, want) {
		t.Errorf("Logs() = %q, want %q", names, want)
	}

	_, err = s.Log(ctx, "delta")
	isNotFound(t, `Log("delta")`, err)
}

func testNotFound(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	w.Append(t, s, recvAt(0), Events(3, 1)...)
	bad := w.Info.ID + 1000
	cases := []struct {
		name string
		call func() error
	}{
		{"State(unknown log)", func() error { _, err := s.State(ctx, bad); return err }},
		{"Get(unknown log, 0)", func() error { _, err := s.Get(ctx, bad, 0); return err }},
		{"Get(log, size)", func() error { _, err := s.Get(ctx, w.Info.ID, 3); return err }},
		{"Get(log, -1)", func() error { _, err := s.Get(ctx, w.Info.ID, -1); return err }},
		{"Get(log, 1<<40)", func() error { _, err := s.Get(ctx, w.Info.ID, 1<<40); return err }},
		{"Get(log, 1<<62)", func() error { _, err := s.Get(ctx, w.Info.ID, 1<<62); return err }},
		{"Tile(unknown log, 0, 0)", func() error { _, err := s.Tile(ctx, bad, 0, 0); return err }},
		{"Tile(log, 0, 1)", func() error { _, err := s.Tile(ctx, w.Info.ID, 0, 1); return err }},
		{"Tile(log, 1, 0)", func() error { _, err := s.Tile(ctx, w.Info.ID, 1, 0); return err }},
		{"CheckpointAt(unknown log, 3)", func() error { _, err := s.CheckpointAt(ctx, bad, 3); return err }},
		{"CheckpointAt(log, 2)", func() error { _, err := s.CheckpointAt(ctx, w.Info.ID, 2); return err }},
		{"CheckpointAt(log, 0)", func() error { _, err := s.CheckpointAt(ctx, w.Info.ID, 0); return err }},
		{"Scan(unknown log)", func() error {
			for _, err := range s.Scan(ctx, bad, 0, 10) {
				return err
			}
			return nil
		}},
		{"Commit(batch for unknown log)", func() error {
			b := w.Batch(t, recvAt(1), Events(2, 2)...)
			b.Log = bad
			return s.Commit(ctx, []store.Batch{b})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			isNotFound(t, c.name, c.call())
		})
	}
	CheckLog(t, s, w)
}

func testCommitAtomic(t *testing.T, s store.Log) {
	ctx := context.Background()
	a := NewWriter(t, s, "a")
	b := NewWriter(t, s, "b")
	appendBatches(t, s, a, Events(300, 10), 0, 200, 100)
	appendBatches(t, s, b, Events(10, 11), 0, 10)

	grow := a.Batch(t, recvAt(5), Events(100, 12)...) // size 300 to 400: tiles 0/1 and 1/0 change, 0/1 fills
	cases := []struct {
		name    string
		batches []store.Batch
	}{
		{"second batch starts past its log's end", []store.Batch{grow, b.BatchAt(t, 12, recvAt(5), Events(5, 13)...)}},
		{"second batch repeats the first's seqs", []store.Batch{grow, a.Batch(t, recvAt(5), Events(50, 14)...)}},
		{"second batch starts inside its log", []store.Batch{grow, b.BatchAt(t, 9, recvAt(5), Events(5, 15)...)}},
		{"third batch conflicts", []store.Batch{b.Batch(t, recvAt(5), Events(3, 16)...), grow, b.BatchAt(t, 0, recvAt(5), Events(1, 17)...)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Commit(ctx, c.batches)
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Commit = %v, want an error wrapping store.ErrConflict", err)
			}
			CheckLog(t, s, a)
			CheckLog(t, s, b)
			_, err = s.Get(ctx, a.Info.ID, 300)
			isNotFound(t, "Get(a, 300) after the failed commit", err)
			_, err = s.CheckpointAt(ctx, a.Info.ID, 400)
			isNotFound(t, "CheckpointAt(a, 400) after the failed commit", err)
		})
	}

	// The batch that was rolled back commits now, alone and then along
	// with a batch of the other log.
	if err := s.Commit(ctx, []store.Batch{grow}); err != nil {
		t.Fatalf("Commit(the first batch alone) = %v", err)
	}
	a.Committed(t, grow)
	ab := []store.Batch{a.Batch(t, recvAt(6), Events(30, 18)...), b.Batch(t, recvAt(6), Events(300, 19)...)}
	if err := s.Commit(ctx, ab); err != nil {
		t.Fatalf("Commit(a batch of each log) = %v", err)
	}
	a.Committed(t, ab[0])
	b.Committed(t, ab[1])
	CheckLog(t, s, a)
	CheckLog(t, s, b)
}

func testCommitConflict(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	appendBatches(t, s, w, Events(5, 20), 0, 5)
	cases := []struct {
		name  string
		first int64
	}{
		{"gap", 6},
		{"overlap", 4},
		{"from zero", 0},
		{"far ahead", 1 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Commit(ctx, []store.Batch{w.BatchAt(t, c.first, recvAt(1), Events(3, 21)...)})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("Commit(batch at seq %d of a log of 5) = %v, want an error wrapping store.ErrConflict", c.first, err)
			}
			CheckLog(t, s, w)
		})
	}

	// Two writers build on the same state; the second to commit loses.
	b1 := w.Batch(t, recvAt(2), Events(4, 22)...)
	b2 := w.Batch(t, recvAt(2), Events(2, 23)...)
	if err := s.Commit(ctx, []store.Batch{b1}); err != nil {
		t.Fatal(err)
	}
	w.Committed(t, b1)
	if err := s.Commit(ctx, []store.Batch{b2}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Commit(stale batch) = %v, want an error wrapping store.ErrConflict", err)
	}
	CheckLog(t, s, w)

	// Seqs that skip inside a batch are refused too (with any error).
	gap := w.Batch(t, recvAt(3), Events(3, 24)...)
	gap.Events[2].Seq++
	if err := s.Commit(ctx, []store.Batch{gap}); err == nil {
		t.Errorf("Commit(batch with seqs %v) = nil, want an error", seqs(gap.Events))
	}
	CheckLog(t, s, w)
}

// testStateResumes grows a log across tile boundaries and checks at each
// size that an Appender resumed from State continues exactly as the
// writer's: same root, same tiles for the next batch.
func testStateResumes(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	evs := Events(1400, 30)
	for i, n := range []int{1, 254, 1, 1, 300, 210, 1, 255, 256, 1} {
		st, err := s.State(ctx, w.Info.ID)
		if err != nil {
			t.Fatal(err)
		}
		app, err := merkle.NewAppender(st.Size, st.Rightmost)
		if err != nil {
			t.Fatalf("NewAppender(State at size %d) = %v", st.Size, err)
		}
		if got, want := app.Root(), w.Root(); got != want {
			t.Fatalf("root resumed from State at size %d = %v, want %v", st.Size, got, want)
		}
		next := w.Batch(t, recvAt(i), evs[:n]...)
		for _, e := range next.Events {
			app.Append(tlog.RecordHash(canonical(e)))
		}
		if got, want := app.Flush(), next.Tiles; !sameTiles(got, want) {
			t.Fatalf("tiles of %d events appended to the tree resumed at size %d = %s, want %s", n, st.Size, tileNames(got), tileNames(want))
		}
		if err := s.Commit(ctx, []store.Batch{next}); err != nil {
			t.Fatal(err)
		}
		w.Committed(t, next)
		evs = evs[n:]
	}
	CheckLog(t, s, w)
}

func sameTiles(a, b []merkle.Tile) bool {
	return slices.EqualFunc(a, b, func(x, y merkle.Tile) bool {
		return x.Level == y.Level && x.Index == y.Index && bytes.Equal(x.Data, y.Data)
	})
}

func tileNames(ts []merkle.Tile) string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%d/%d×%d", t.Level, t.Index, len(t.Data)/32))
	}
	return fmt.Sprint(out)
}

func testSize(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	checkSize(t, "", s, w)
	for i, n := range []int{1, 255, 300} {
		w.Append(t, s, recvAt(i), Events(n, uint64(150+i))...)
		checkSize(t, "", s, w)
	}
	_, err := s.Size(ctx, w.Info.ID+100)
	isNotFound(t, "Size(no such log)", err)
}

// testCommitLocked checks store.LockingLog, for a store that is one: build
// gets the logs' sizes, its error comes back with nothing stored, and
// concurrent CommitLocked calls on one log take turns, each building on
// the size the one before left.
func testCommitLocked(t *testing.T, s store.Log) {
	ls, ok := s.(store.LockingLog)
	if !ok {
		t.Skip("not a store.LockingLog")
	}
	ctx := context.Background()
	a := NewWriter(t, s, "a")
	b := NewWriter(t, s, "b")
	appendBatches(t, s, a, Events(20, 30), 0, 20)

	var got map[int64]int64
	var batch store.Batch
	// a is known at a stale size, b at its own.
	err := ls.CommitLocked(ctx, map[int64]int64{b.Info.ID: 0, a.Info.ID: 3, -7: 0}, func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, error) {
		got = sizes
		if st, ok := moved[a.Info.ID]; !ok || st.Size != 20 || st.Checkpoint == nil || st.Checkpoint.Size != 20 || len(st.Rightmost) == 0 {
			t.Errorf("CommitLocked gave build log a's state %+v (%v), want it at 20 with its checkpoint and rightmost tiles", st, ok)
		}
		if _, ok := moved[b.Info.ID]; ok || len(moved) != 1 {
			t.Errorf("CommitLocked gave build the states of %d logs, want a's alone: b is at the size known", len(moved))
		}
		batch = a.Batch(t, recvAt(1), Events(5, 31)...)
		return []store.Batch{batch}, nil
	})
	if err != nil {
		t.Fatalf("CommitLocked = %v", err)
	}
	if want := map[int64]int64{a.Info.ID: 20, b.Info.ID: 0}; !maps.Equal(got, want) {
		t.Errorf("CommitLocked gave build the sizes %v, want %v (none for a log that does not exist)", got, want)
	}
	a.Committed(t, batch)
	CheckLog(t, s, a)

	failed := errors.New("build failed")
	err = ls.CommitLocked(ctx, map[int64]int64{a.Info.ID: a.Size()}, func(map[int64]int64, map[int64]store.State) ([]store.Batch, error) {
		return []store.Batch{a.Batch(t, recvAt(2), Events(3, 32)...)}, failed
	})
	if !errors.Is(err, failed) {
		t.Errorf("CommitLocked with a failing build = %v, want its error", err)
	}
	err = ls.CommitLocked(ctx, map[int64]int64{a.Info.ID: a.Size()}, func(map[int64]int64, map[int64]store.State) ([]store.Batch, error) {
		return []store.Batch{b.Batch(t, recvAt(2), Events(3, 33)...)}, nil
	})
	if err == nil {
		t.Error("CommitLocked of a batch of a log it did not lock: no error")
	}
	CheckLog(t, s, a)
	CheckLog(t, s, b)

	const workers, each = 6, 5
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				// Known at 0: every commit after the first finds the log
				// moved, and gets its state.
				err := ls.CommitLocked(ctx, map[int64]int64{b.Info.ID: 0}, func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, error) {
					mu.Lock()
					defer mu.Unlock()
					if sizes[b.Info.ID] != b.Size() {
						return nil, fmt.Errorf("build got size %d, the log has %d", sizes[b.Info.ID], b.Size())
					}
					if st, ok := moved[b.Info.ID]; b.Size() > 0 && (!ok || st.Size != b.Size() || st.Checkpoint == nil || st.Checkpoint.Size != st.Size) {
						return nil, fmt.Errorf("build got the state %+v (%v), the log has %d", st, ok, b.Size())
					}
					bt := b.Batch(t, recvAt(3), Events(1+j, uint64(40+i*each+j))...)
					// Recorded before the commit: the next build waits
					// for this commit's lock, and sees it.
					b.Committed(t, bt)
					return []store.Batch{bt}, nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent CommitLocked = %v", err)
	}
	CheckLog(t, s, b)
}
