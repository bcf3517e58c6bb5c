package trail_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// copyAdmin is who creates and revokes API keys in the copy tests.
var copyAdmin = trail.Caller{Actor: event.Actor{ID: "cli:test", Type: "user"}}

// copySource is a closed store holding logs to copy, and API keys of
// them.
type copySource struct {
	loc     string
	valid   string // secret of a valid key of log "many"
	revoked string // secret of a revoked key of log "many"
	other   string // secret of a valid key of log "big"
}

// copyLogs are the sizes of the commits of each log of a copySource:
// "many" gets many small commits and some big ones (more than a target
// commit carries by default), "big" a few big ones, "empty" none.
var copyLogs = map[string][]int{
	"many":  manyCommits(),
	"big":   {3000, 1, 25000, 7},
	"empty": nil,
}

func manyCommits() []int {
	var ns []int
	for i := range 400 {
		ns = append(ns, 1+i%3)
	}
	ns = append(ns, 21000, 1, 300)
	for range 100 {
		ns = append(ns, 1)
	}
	return ns
}

// newCopySource makes a copySource in a store of b.
func newCopySource(t *testing.T, b backends.Backend) *copySource {
	t.Helper()
	ctx := context.Background()
	src := &copySource{loc: b.New(t)}
	db, err := trail.InitStore(ctx, copyURL(src.loc), trail.Options{Now: stepClock(), MasterKey: copyMaster})
	must(t, err)
	defer db.Close()
	seed := uint64(1)
	for _, name := range []string{"many", "big", "empty"} {
		l, err := db.CreateLog(ctx, name, "example.com/trail/"+name)
		must(t, err)
		for _, n := range copyLogs[name] {
			seed++
			if _, err := l.AppendBatch(ctx, storetest.Events(n, seed)); err != nil {
				t.Fatalf("AppendBatch(%d events) = %v", n, err)
			}
		}
	}
	src.valid, _, err = db.CreateKey(ctx, copyAdmin, "many", "app", trail.ScopeAppend, trail.ScopeRead)
	must(t, err)
	var info trail.KeyInfo
	src.revoked, info, err = db.CreateKey(ctx, copyAdmin, "many", "old", trail.ScopeRead)
	must(t, err)
	must(t, db.RevokeKey(ctx, copyAdmin, info.ID))
	src.other, _, err = db.CreateKey(ctx, copyAdmin, "big", "", trail.ScopeAdmin)
	must(t, err)
	must(t, db.Close())
	return src
}

// copyMaster is the master key of the PostgreSQL stores of the copy
// tests (a sqlite store ignores it).
var copyMaster = backends.Postgres.MasterKey

// copyURL returns the store URL of loc, a location a backends.Backend
// gave: a data directory, or a URL.
func copyURL(loc string) string {
	if strings.Contains(loc, "://") {
		return loc
	}
	return "sqlite:" + loc
}

// copyStores opens the store at src read-only, with its master key, and
// the store at to, made unless it exists, for writing; both close when t
// ends.
func copyStores(t *testing.T, src, to string) (*trail.DB, *trail.DB) {
	t.Helper()
	ctx := context.Background()
	from, err := trail.OpenStore(ctx, copyURL(src), trail.Options{ReadOnly: true, MasterKey: copyMaster})
	must(t, err)
	t.Cleanup(func() { from.Close() })
	dst, err := trail.OpenStore(ctx, copyURL(to), trail.Options{MasterKey: copyMaster})
	if errors.Is(err, trail.ErrNotInitialized) {
		dst, err = trail.InitStore(ctx, copyURL(to), trail.Options{MasterKey: copyMaster})
	}
	must(t, err)
	t.Cleanup(func() { dst.Close() })
	return from, dst
}

// sameCheckpoints fails t unless the log name holds the same checkpoints
// in both stores, byte for byte, with the same signing times, up to the
// target's size; and returns the target's size.
func sameCheckpoints(t *testing.T, from, to *trail.DB, name string) int64 {
	t.Helper()
	ctx := context.Background()
	src, err := trail.StoredCheckpoints(ctx, from, name)
	must(t, err)
	dst, err := trail.StoredCheckpoints(ctx, to, name)
	must(t, err)
	if len(dst) > len(src) {
		t.Fatalf("log %q: the target holds %d checkpoints, the source %d", name, len(dst), len(src))
	}
	for i, c := range dst {
		s := src[i]
		if c.Size != s.Size || !bytes.Equal(c.Note, s.Note) || !c.SignedAt.Equal(s.SignedAt) {
			t.Fatalf("log %q: checkpoint %d: target (size %d, signed %v) %q, source (size %d, signed %v) %q",
				name, i, c.Size, c.SignedAt, c.Note, s.Size, s.SignedAt, s.Note)
		}
	}
	if len(dst) == 0 {
		return 0
	}
	return dst[len(dst)-1].Size
}

// verifyLog fails t unless the log name of db verifies, with size events.
func verifyLog(t *testing.T, db *trail.DB, name string, size int64) {
	t.Helper()
	ctx := context.Background()
	l, err := db.Log(ctx, name)
	must(t, err)
	rep, err := l.Verify(ctx, trail.VerifyOptions{})
	if err != nil {
		t.Fatalf("log %q: Verify = %v", name, err)
	}
	if rep.Size != size {
		t.Fatalf("log %q: Verify checked %d events, want %d", name, rep.Size, size)
	}
}

func TestCopy(t *testing.T) {
	for _, perCommit := range []int{0, 7} {
		t.Run(fmt.Sprintf("checkpoints-per-commit-%d", perCommit), func(t *testing.T) {
			testCopy(t, perCommit)
		})
	}
}

func testCopy(t *testing.T, perCommit int) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)
	from, to := copyStores(t, src.loc, b.New(t))
	var calls int
	rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{
		MaxCommitCheckpoints: perCommit,
		Progress: func(p trail.CopyProgress) {
			calls++
			if p.Done > p.Total {
				t.Errorf("progress of %q: %d done of %d", p.Log, p.Done, p.Total)
			}
		},
	})
	if err != nil {
		t.Fatalf("Copy = %v", err)
	}
	if calls == 0 {
		t.Error("Copy never called Progress")
	}
	wantLogs := []string{"big", "empty", "many"}
	if len(rep.Logs) != len(wantLogs) {
		t.Fatalf("Copy reported %d logs, want %d", len(rep.Logs), len(wantLogs))
	}
	for i, lr := range rep.Logs {
		if lr.Name != wantLogs[i] || !lr.Created || !lr.Done || lr.From != 0 || lr.Events != lr.Size {
			t.Errorf("Copy report of log %d = %+v, want %q created and done from 0", i, lr, wantLogs[i])
		}
		srcLog, err := from.Log(ctx, lr.Name)
		must(t, err)
		if lr.Size != srcLog.Size() {
			t.Errorf("log %q: copied %d events, the source holds %d", lr.Name, lr.Size, srcLog.Size())
		}
		if got := sameCheckpoints(t, from, to, lr.Name); got != lr.Size {
			t.Errorf("log %q: the target's latest checkpoint is of size %d, want %d", lr.Name, got, lr.Size)
		}
		verifyLog(t, to, lr.Name, lr.Size)
		dstLog, err := to.Log(ctx, lr.Name)
		must(t, err)
		if dstLog.Origin() != srcLog.Origin() || dstLog.VerifierKey() != srcLog.VerifierKey() {
			t.Errorf("log %q: target origin %q key %s, source %q %s", lr.Name, dstLog.Origin(), dstLog.VerifierKey(), srcLog.Origin(), srcLog.VerifierKey())
		}
	}
	if many := rep.Logs[2]; many.Keys != 2 || many.Revoked != 1 {
		t.Errorf("log many: created %d keys and revoked %d, want 2 and 1", many.Keys, many.Revoked)
	}
	// A second run finds every log copied, and copies nothing.
	rep, err = trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many"}})
	must(t, err)
	if lr := rep.Logs[0]; lr.Created || lr.Events != 0 || lr.Keys != 0 || lr.Revoked != 0 || !lr.Done {
		t.Errorf("second Copy of log many = %+v, want nothing done", lr)
	}

	// The target's copy of each log continues with the moved signing key.
	for _, name := range wantLogs {
		l, err := to.Log(ctx, name)
		must(t, err)
		if _, err := l.AppendBatch(ctx, storetest.Events(3, 99)); err != nil {
			t.Fatalf("log %q: append to the copy: %v", name, err)
		}
		verifyLog(t, to, name, l.Size())
	}
	for _, k := range []struct {
		secret, log string
		ok          bool
	}{{src.valid, "many", true}, {src.revoked, "many", false}, {src.other, "big", true}} {
		info, err := to.Authenticate(ctx, k.secret)
		switch {
		case k.ok && err != nil:
			t.Errorf("target: Authenticate(key of %s) = %v", k.log, err)
		case k.ok && info.Log != k.log:
			t.Errorf("target: key of %s is of log %q", k.log, info.Log)
		case !k.ok && err == nil:
			t.Errorf("target: Authenticate(revoked key) works")
		}
	}

}

// TestCopyUnrecordedKey: a key of the source whose creation its log does
// not record (added to its keys table outside Trail) is left behind and
// counted, and the copy verifies.
func TestCopyUnrecordedKey(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)
	h := sha256.Sum256([]byte("trail_00000000000000000000000000000000_planted"))
	tp := b.Tamper(t, src.loc)
	must(t, tp.SetKey(ctx, "many", store.Key{ID: "00000000000000000000000000000000", Name: "planted", Scopes: []string{"admin"}, Hash: h[:], CreatedAt: time.Now()}))
	must(t, tp.Close())
	from, to := copyStores(t, src.loc, b.New(t))
	rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many"}})
	must(t, err)
	if lr := rep.Logs[0]; lr.Keys != 2 || lr.KeysUnrecorded != 1 || !lr.Done {
		t.Errorf("Copy of log many = %+v, want 2 keys copied and 1 left behind, unrecorded", lr)
	}
	if _, err := to.Key(ctx, "00000000000000000000000000000000"); !errors.Is(err, trail.ErrNotFound) {
		t.Errorf("target: the unrecorded key = %v, want ErrNotFound", err)
	}
	l, err := to.Log(ctx, "many")
	must(t, err)
	verifyLog(t, to, "many", l.Size())
}

// An interrupted copy, or one made before more appends, continues where
// it stopped.
func TestCopyResume(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)
	dst := b.New(t)
	from, to := copyStores(t, src.loc, dst)

	cctx, cancel := context.WithCancel(ctx)
	commits := 0
	rep, err := trail.Copy(cctx, from, to, trail.CopyOptions{
		Logs:                 []string{"many"},
		MaxCommitCheckpoints: 50,
		Progress: func(p trail.CopyProgress) {
			if p.Done > 0 {
				commits++
			}
			if commits == 3 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy with its context canceled = %v, want context.Canceled", err)
	}
	part := rep.Logs[0]
	if part.Done || part.Events == 0 || part.Events >= part.Size {
		t.Fatalf("interrupted Copy = %+v, want part of the log copied", part)
	}
	if got := sameCheckpoints(t, from, to, "many"); got != part.Events {
		t.Fatalf("after the interrupted copy the target's latest checkpoint is of size %d, want %d", got, part.Events)
	}

	rep, err = trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many"}})
	must(t, err)
	if lr := rep.Logs[0]; lr.Created || lr.From != part.Events || lr.Size != part.Size || !lr.Done {
		t.Fatalf("resumed Copy = %+v, want it to go on from %d to %d", lr, part.Events, part.Size)
	}
	if got := sameCheckpoints(t, from, to, "many"); got != part.Size {
		t.Fatalf("target's latest checkpoint is of size %d, want %d", got, part.Size)
	}

	// More appends to the source (through a writer beside the read-only
	// source DB) are copied by the next run.
	w, err := trail.OpenStore(ctx, copyURL(src.loc), trail.Options{MasterKey: copyMaster})
	must(t, err)
	wl, err := w.Log(ctx, "many")
	must(t, err)
	for i := range 5 {
		_, err := wl.AppendBatch(ctx, storetest.Events(1+i, uint64(100+i)))
		must(t, err)
	}
	size := wl.Size()
	must(t, w.Close())
	rep, err = trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many"}})
	must(t, err)
	if lr := rep.Logs[0]; lr.From != part.Size || lr.Size != size || lr.Checkpoints != 5 {
		t.Fatalf("Copy after appends = %+v, want 5 commits from %d to %d", lr, part.Size, size)
	}
	if got := sameCheckpoints(t, from, to, "many"); got != size {
		t.Fatalf("target's latest checkpoint is of size %d, want %d", got, size)
	}
	verifyLog(t, to, "many", size)
}

// Copy refuses a target log that is not an earlier state of the
// source's, and changes nothing in it.
func TestCopyDiverged(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)

	t.Run("history", func(t *testing.T) {
		// Copy the source, then append to it and to the copy, the same
		// number of events but different ones.
		dst := b.New(t)
		srcCopy := b.Copy(t, src.loc)
		func() {
			from, to := copyStores(t, srcCopy, dst)
			_, err := trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"big"}})
			must(t, err)
			l, err := to.Log(ctx, "big")
			must(t, err)
			_, err = l.AppendBatch(ctx, storetest.Events(4, 7))
			must(t, err)
			must(t, to.Close())
			must(t, from.Close())
		}()
		w, err := trail.Open(ctx, srcCopy, trail.Options{})
		must(t, err)
		wl, err := w.Log(ctx, "big")
		must(t, err)
		_, err = wl.AppendBatch(ctx, storetest.Events(4, 8))
		must(t, err)
		_, err = wl.AppendBatch(ctx, storetest.Events(2, 9))
		must(t, err)
		must(t, w.Close())

		from, to := copyStores(t, srcCopy, dst)
		before, err := trail.StoredCheckpoints(ctx, to, "big")
		must(t, err)
		_, err = trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"big"}})
		if !errors.Is(err, trail.ErrDiverged) {
			t.Fatalf("Copy onto a diverged log = %v, want ErrDiverged", err)
		}
		after, err := trail.StoredCheckpoints(ctx, to, "big")
		must(t, err)
		if len(after) != len(before) {
			t.Fatalf("Copy refused, and yet the target's checkpoints went from %d to %d", len(before), len(after))
		}
	})

	t.Run("key", func(t *testing.T) {
		// A log of the same name and origin, made in the target with
		// another key.
		dst := b.New(t)
		from, to := copyStores(t, src.loc, dst)
		_, err := to.CreateLog(ctx, "many", "example.com/trail/many")
		must(t, err)
		_, err = trail.Copy(ctx, from, to, trail.CopyOptions{})
		if !errors.Is(err, trail.ErrDiverged) {
			t.Fatalf("Copy onto a log with another key = %v, want ErrDiverged", err)
		}
	})
}

// A damaged source event stops the copy with an error naming its seq,
// and nothing from there on is copied.
func TestCopyDamagedSource(t *testing.T) {
	for _, b := range []backends.Backend{backends.SQLite, backends.Postgres} {
		t.Run(b.Name, func(t *testing.T) { testCopyDamagedSource(t, b) })
	}
}

func testCopyDamagedSource(t *testing.T, b backends.Backend) {
	ctx := context.Background()
	src := newCopySource(t, b)
	const bad = 21777 // inside the 21000-event commit of "many"
	for _, tc := range []struct {
		name   string
		tamper func(tp storetest.Tamperer) error
	}{
		{"edited", func(tp storetest.Tamperer) error {
			return tp.EditEvents(ctx, "many", bad, bad+1, func(evs []*event.Event) []*event.Event {
				evs[0].Action = "user.delete"
				evs[0].Actor.ID = "mallory"
				return evs
			})
		}},
		{"broken", func(tp storetest.Tamperer) error { return tp.BreakEvent(ctx, "many", bad) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := b.Copy(t, src.loc)
			tp := b.Tamper(t, loc)
			must(t, tc.tamper(tp))
			must(t, tp.Close())
			from, to := copyStores(t, loc, b.New(t))
			rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many"}, MaxCommitCheckpoints: 100})
			var ve *trail.VerifyError
			if !errors.As(err, &ve) || ve.Seq != bad {
				t.Fatalf("Copy of a damaged log = %v, want a *VerifyError at seq %d", err, bad)
			}
			// The commits before the damaged one are copied, and
			// none from it on.
			cps, err := trail.StoredCheckpoints(ctx, from, "many")
			must(t, err)
			var want int64
			for _, c := range cps {
				if c.Size <= bad {
					want = c.Size
				}
			}
			if got := sameCheckpoints(t, from, to, "many"); got != want || rep.Logs[0].Events != want {
				t.Fatalf("after the damage the target holds %d events (report %d), want %d", got, rep.Logs[0].Events, want)
			}
			verifyLog(t, to, "many", want)
		})
	}
}

// A round trip sqlite -> postgres -> sqlite keeps every checkpoint, the
// signing keys and the API keys, and the copies verify and take appends.
func TestCopyPostgresRoundTrip(t *testing.T) {
	ctx := context.Background()
	sq := backends.SQLite
	src := newCopySource(t, sq)
	pg := backends.Postgres.New(t)
	back := sq.New(t)
	hops := []struct{ from, to string }{{src.loc, pg}, {pg, back}}
	for i, hop := range hops {
		from, to := copyStores(t, hop.from, hop.to)
		rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{MaxCommitCheckpoints: 100})
		if err != nil {
			t.Fatalf("hop %d: Copy = %v", i, err)
		}
		for _, lr := range rep.Logs {
			if !lr.Created || !lr.Done {
				t.Errorf("hop %d: Copy of log %q = %+v, want it created and done", i, lr.Name, lr)
			}
			if got := sameCheckpoints(t, from, to, lr.Name); got != lr.Size {
				t.Errorf("hop %d: log %q: the target's latest checkpoint is of size %d, want %d", i, lr.Name, got, lr.Size)
			}
			verifyLog(t, to, lr.Name, lr.Size)
		}
		if _, err := to.Authenticate(ctx, src.valid); err != nil {
			t.Errorf("hop %d: target: Authenticate(valid key) = %v", i, err)
		}
		if _, err := to.Authenticate(ctx, src.revoked); err == nil {
			t.Errorf("hop %d: target: the revoked key works", i)
		}
		must(t, from.Close())
		must(t, to.Close())
	}
	// The checkpoints at the end are the source's, byte for byte, and
	// the copy signs new ones with the same key.
	from, to := copyStores(t, src.loc, back)
	for _, name := range []string{"many", "big", "empty"} {
		size := sameCheckpoints(t, from, to, name)
		l, err := to.Log(ctx, name)
		must(t, err)
		if l.Size() != size {
			t.Fatalf("log %q: %d events after the round trip, want %d", name, l.Size(), size)
		}
		_, err = l.AppendBatch(ctx, storetest.Events(2, 5))
		must(t, err)
		verifyLog(t, to, name, size+2)
	}
}

// A source checkpoint whose signature does not verify stops the copy
// before the commit it closes, naming its size.
func TestCopyForgedCheckpoint(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)
	loc := b.Copy(t, src.loc)
	cps := func() []int64 {
		from, err := trail.Open(ctx, loc, trail.Options{ReadOnly: true})
		must(t, err)
		defer from.Close()
		all, err := trail.StoredCheckpoints(ctx, from, "big")
		must(t, err)
		var sizes []int64
		for _, c := range all {
			sizes = append(sizes, c.Size)
		}
		return sizes
	}()
	forged := cps[2] // the checkpoint closing the 25000-event commit
	tp := b.Tamper(t, loc)
	must(t, tp.EditCheckpoints(ctx, "big", func(size int64, note []byte) []byte {
		if size != forged {
			return note
		}
		// Another signature of the same length.
		out := bytes.Clone(note)
		i := len(out) - 10
		out[i] ^= 'A' ^ 'B'
		return out
	}))
	must(t, tp.Close())
	from, to := copyStores(t, loc, b.New(t))
	_, err := trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"big"}})
	var ve *trail.VerifyError
	if !errors.As(err, &ve) || !strings.Contains(ve.Problem, fmt.Sprintf("size %d", forged)) {
		t.Fatalf("Copy of a log with a forged checkpoint = %v, want a *VerifyError naming its size %d", err, forged)
	}
	if got := sameCheckpoints(t, from, to, "big"); got != cps[1] {
		t.Fatalf("after the forged checkpoint the target's latest checkpoint is of size %d, want %d", got, cps[1])
	}
}

// Copy takes along the idempotency records of the appends it copies: a
// retry through the target gets the first receipts back. The record of
// an append made to the source while the copy runs, past the size the
// copy stops at, waits for the next run, with its event.
func TestCopyIdempotency(t *testing.T) {
	for _, b := range []backends.Backend{backends.SQLite, backends.Postgres} {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			loc := backends.SQLite.New(t)
			db, err := trail.InitStore(ctx, copyURL(loc), trail.Options{})
			must(t, err)
			l, err := db.CreateLog(ctx, "app", "example.com/trail/app")
			must(t, err)
			first := trail.Idempotency{Scope: "key1", Key: "req-1", Fingerprint: []byte("body 1")}
			want, _, err := l.AppendIdempotent(ctx, storetest.Events(3, 1), first)
			must(t, err)
			_, _, err = l.AppendIdempotent(ctx, storetest.Events(1, 2), trail.Idempotency{Scope: "key1", Key: "req-2", Fingerprint: []byte("body 2")})
			must(t, err)

			from, to := copyStores(t, loc, b.New(t))
			late := trail.Idempotency{Scope: "key1", Key: "late", Fingerprint: []byte("body 3")}
			rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{Progress: func(p trail.CopyProgress) {
				if p.Done == 0 {
					// Past the size this run copies to.
					if _, _, err := l.AppendIdempotent(ctx, storetest.Events(1, 3), late); err != nil {
						t.Errorf("append to the source during the copy: %v", err)
					}
				}
			}})
			must(t, err)
			if lr := rep.Logs[0]; lr.Size != 4 || lr.Idempotency != 2 || !lr.Done {
				t.Fatalf("Copy = %+v, want 4 events and 2 idempotency records", lr)
			}
			dst, err := to.Log(ctx, "app")
			must(t, err)
			got, replayed, err := dst.AppendIdempotent(ctx, storetest.Events(3, 1), first)
			if err != nil || !replayed || !slices.Equal(got, want) {
				t.Errorf("retry through the target = %v, replayed %v, %v; want the first receipts %v", got, replayed, err, want)
			}
			if _, _, err := dst.AppendIdempotent(ctx, storetest.Events(1, 9), trail.Idempotency{Scope: "key1", Key: "req-2", Fingerprint: []byte("other")}); !errors.Is(err, trail.ErrIdempotencyConflict) {
				t.Errorf("another request under a copied key = %v, want ErrIdempotencyConflict", err)
			}
			if dst.Size() != 4 {
				t.Errorf("target size after the retries = %d, want 4", dst.Size())
			}

			// The next run copies the late append and its record.
			rep, err = trail.Copy(ctx, from, to, trail.CopyOptions{})
			must(t, err)
			if lr := rep.Logs[0]; lr.Events != 1 || lr.Idempotency != 1 {
				t.Fatalf("second Copy = %+v, want 1 event and 1 idempotency record", lr)
			}
			if _, replayed, err := dst.AppendIdempotent(ctx, storetest.Events(1, 3), late); err != nil || !replayed {
				t.Errorf("retry of the late append through the target: replayed %v, %v", replayed, err)
			}
			must(t, db.Close())
		})
	}
}

// A log the source lacks, among those asked for, stops the copy before
// it copies any of them.
func TestCopyMissingLog(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	src := newCopySource(t, b)
	from, to := copyStores(t, src.loc, b.New(t))
	rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{Logs: []string{"many", "nope"}})
	if !errors.Is(err, trail.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) || len(rep.Logs) != 0 {
		t.Fatalf("Copy of logs many and nope = %+v, %v; want ErrNotFound naming nope, nothing copied", rep, err)
	}
	if _, err := to.Log(ctx, "many"); !errors.Is(err, trail.ErrNotFound) {
		t.Errorf("target: log many = %v, want ErrNotFound: nothing copied", err)
	}
}
