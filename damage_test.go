package trail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// damageFixture is a closed store holding one log of damageSize events,
// all of them indexed, and their ids by seq.
type damageFixture struct {
	b      backends.Backend
	dir    string
	ids    []string
	actors []string // actor ids
}

const damageSize = 600

func newDamageFixture(t *testing.T, b backends.Backend) *damageFixture {
	t.Helper()
	ctx := context.Background()
	f := &damageFixture{b: b, dir: b.New(t)}
	db, err := initAt(ctx, f.dir, trail.Options{Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, tamperLog, tamperOrigin)
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(damageSize, 3)
	for i := 0; i < damageSize; i += 100 {
		rs, err := l.AppendBatch(ctx, evs[i:i+100])
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range rs {
			f.ids = append(f.ids, r.ID)
			f.actors = append(f.actors, evs[i+j].Actor.ID)
		}
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *damageFixture) copy(t *testing.T) string {
	return f.b.Copy(t, f.dir)
}

// openLog opens the log of the store at dir (see openAt).
func openLog(t *testing.T, dir string, readOnly bool) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := openAt(ctx, dir, trail.Options{ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.Log(ctx, tamperLog)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// wantDamaged checks that err is a *trail.DamagedError at a seq in [lo,
// hi] that says to run trail verify.
func wantDamaged(t *testing.T, call string, err error, lo, hi int64) {
	t.Helper()
	var de *trail.DamagedError
	if !errors.As(err, &de) || !errors.Is(err, trail.ErrDamaged) || errors.Is(err, trail.ErrNotFound) {
		t.Errorf("%s = %v, want a *trail.DamagedError", call, err)
		return
	}
	if de.Seq < lo || de.Seq > hi {
		t.Errorf("%s = %v: DamagedError.Seq = %d, want %d to %d", call, err, de.Seq, lo, hi)
	}
	if msg := err.Error(); !strings.Contains(msg, "stored event at seq ") || !strings.Contains(msg, "run trail verify") {
		t.Errorf("%s = %q, want it to name the seq and say to run trail verify", call, msg)
	}
}

// TestDamagedEvent damages the stored record of an event in each of the
// ways its backend lists (storetest.Damage): every read that meets the
// event must report it damaged, naming its seq, never as missing nor by
// skipping it.
func TestDamagedEvent(t *testing.T) {
	backends.Run(t, testDamagedEvent)
}

func testDamagedEvent(t *testing.T, b backends.Backend) {
	f := newDamageFixture(t, b)
	ctx := context.Background()
	tp := b.Tamper(t, f.dir)
	damages := tp.Damages()
	tp.Close()
	for i, c := range damages {
		t.Run(c.Name, func(t *testing.T) {
			dir := f.copy(t)
			tp := b.Tamper(t, dir)
			seq, first, err := tp.Damages()[i].Apply(ctx, tamperLog, 300)
			if err != nil {
				t.Fatalf("damage the record of seq 300: %v", err)
			}
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("damaged seq %d (record from %d)", seq, first)
			l := openLog(t, dir, true)

			e, err := l.Get(ctx, f.ids[seq])
			if c.Decodes && err == nil {
				// The damage left the event's id as it was (another
				// actor): the event's hash tells it from the one
				// stored.
				wantDamaged(t, "ProveEvent(the event Get returned)", proveLatest(t, l, e), seq, seq)
			} else {
				wantDamaged(t, "Get(id of the damaged event)", err, seq, seq)
			}
			if !c.Decodes {
				_, err = l.GetSeq(ctx, seq)
				wantDamaged(t, "GetSeq(damaged seq)", err, seq, seq)
			}

			// A search that does not reach the event is answered.
			if p, err := l.Search(ctx, api.Query{Limit: 10}); err != nil || len(p.Events) != 10 {
				t.Errorf("Search(newest 10) = %d events, %v; want 10 and no error", len(p.Events), err)
			}
			// An export checks each event against its leaf: it tells
			// an altered event, as it tells one that does not decode.
			// For damage that hides where its record's events end (a
			// bundle's header), the first event met is one of the
			// record.
			wantEventsDamaged(t, l, first, seq)
			if c.Decodes {
				return // a search cannot tell an altered event from any other
			}
			_, err = l.Search(ctx, api.Query{Limit: 1000})
			wantDamaged(t, "Search(every event)", err, first, seq)
			_, err = l.Search(ctx, api.Query{Actor: f.actors[seq], Limit: 1000})
			wantDamaged(t, "Search(an actor's events, through the index)", err, first, seq)
		})
	}
}

// wantEventsDamaged checks that Events over the whole log yields every
// event before the damage, then a *trail.DamagedError at a seq in [lo, hi].
func wantEventsDamaged(t *testing.T, l *trail.Log, lo, hi int64) {
	t.Helper()
	var n int
	var err error
	for _, ierr := range l.Events(context.Background(), api.Query{}) {
		if ierr != nil {
			err = ierr
			break
		}
		n++
	}
	wantDamaged(t, "Events(every event)", err, lo, hi)
	var de *trail.DamagedError
	if errors.As(err, &de) && n != int(de.Seq) {
		t.Errorf("Events yielded %d events before the damage at seq %d, want them all", n, de.Seq)
	}
}

// TestEventsCheckLeaves alters events so that they still decode, in a
// full level-0 tile and in the log's last, partial one, and in a filtered
// export: Events must end at the altered event, or for the partial tile
// (whose stored hashes some backends derive from the events) at the first
// event of the tile, never yield it as the log's.
func TestEventsCheckLeaves(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newDamageFixture(t, b)
		ctx := context.Background()
		for _, c := range []struct {
			seq, lo int64
		}{
			{300, 300}, // tile 1 of 256 to 511, full
			{590, 512}, // tile 2 of 512 to 599, partial
		} {
			t.Run(fmt.Sprint(c.seq), func(t *testing.T) {
				dir := f.copy(t)
				tp := b.Tamper(t, dir)
				editEvent(t, tp, c.seq, func(e *event.Event) { e.Reason = "nothing to see" })
				must(t, tp.Close())
				l := openLog(t, dir, true)
				wantEventsDamaged(t, l, c.lo, c.seq)
				// Filtered: the actor's events before the damage named.
				var err error
				var last int64 = -1
				for e, ierr := range l.Events(ctx, api.Query{Actor: f.actors[c.seq]}) {
					if ierr != nil {
						err = ierr
						break
					}
					last = e.Seq
				}
				wantDamaged(t, "Events(the altered event's actor)", err, c.lo, c.seq)
				if de := (*trail.DamagedError)(nil); errors.As(err, &de) && last >= de.Seq {
					t.Errorf("Events(actor %s) yielded seq %d, at or past the damage named at %d", f.actors[c.seq], last, de.Seq)
				}
			})
		}
	})
}

// proveLatest returns the error of proving e against the log's latest
// checkpoint.
func proveLatest(t *testing.T, l *trail.Log, e *event.Event) error {
	t.Helper()
	signed, err := l.Checkpoint()
	must(t, err)
	c, err := l.OpenCheckpoint(signed)
	must(t, err)
	_, err = l.ProveEvent(context.Background(), e, c)
	return err
}

// TestGetWrongID: an id whose seq holds an intact event of another
// receipt time is no such event, not damage.
func TestGetWrongID(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newDamageFixture(t, b)
		testGetWrongID(t, f)
	})
}

func testGetWrongID(t *testing.T, f *damageFixture) {
	l := openLog(t, f.dir, true)
	e, err := l.GetSeq(context.Background(), 42)
	if err != nil {
		t.Fatal(err)
	}
	id := eventid.Make(tamperLog, 42, e.ReceivedAt.Add(time.Hour))
	if _, err := l.Get(context.Background(), id); !errors.Is(err, trail.ErrNotFound) || errors.Is(err, trail.ErrDamaged) {
		t.Errorf("Get(id of seq 42 an hour later) = %v, want ErrNotFound", err)
	}
}

// TestProveEvent: an event altered so that it still decodes is caught by
// its inclusion proof.
func TestProveEvent(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) { testProveEvent(t, newDamageFixture(t, b)) })
}

func testProveEvent(t *testing.T, f *damageFixture) {
	ctx := context.Background()
	dir := f.copy(t)
	tp := f.b.Tamper(t, dir)
	editEvent(t, tp, 300, func(e *event.Event) { e.Reason = "nothing to see" })
	must(t, tp.Close())
	l := openLog(t, dir, true)
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil {
		t.Fatal(err)
	}
	good, err := l.GetSeq(ctx, 299)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := l.ProveEvent(ctx, good, c)
	if err != nil {
		t.Fatalf("ProveEvent(seq 299) = %v", err)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Hash, 299, tlog.RecordHash(canon.Append(nil, good))); err != nil {
		t.Errorf("the proof of seq 299 does not check: %v", err)
	}
	bad, err := l.Get(ctx, f.ids[300])
	if err != nil {
		t.Fatalf("Get(altered event) = %v; an event that decodes is returned, its proof tells", err)
	}
	_, err = l.ProveEvent(ctx, bad, c)
	wantDamaged(t, "ProveEvent(altered seq 300)", err, 300, 300)
}

// TestStrayEvent stores an event past the log's size, as a copy of a
// record at a higher seq or as one more event in the last record: Verify
// must report it and appends must fail naming it, storing nothing.
func TestStrayEvent(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) { testStrayEvent(t, newDamageFixture(t, b)) })
}

func testStrayEvent(t *testing.T, f *damageFixture) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		seq   int64
		stray func(t *testing.T, tp storetest.Tamperer)
	}{
		{"record at the log's size", damageSize, func(t *testing.T, tp storetest.Tamperer) {
			must(t, tp.CopyRecord(ctx, tamperLog, damageSize-1, damageSize))
		}},
		{"record far past the log's size", 5000, func(t *testing.T, tp storetest.Tamperer) {
			must(t, tp.CopyRecord(ctx, tamperLog, 10, 5000))
		}},
		{"last record holding one more", damageSize, func(t *testing.T, tp storetest.Tamperer) {
			forge(t, tp, damageSize)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := f.copy(t)
			tp := f.b.Tamper(t, dir)
			c.stray(t, tp)
			must(t, tp.Close())

			_, err := verify(t, dir, trail.VerifyOptions{})
			var ve *trail.VerifyError
			if !errors.As(err, &ve) || ve.Seq != c.seq || !strings.Contains(err.Error(), "past the end of the log") {
				t.Errorf("Verify() = %v, want a VerifyError at seq %d saying it is past the end of the log", err, c.seq)
			}

			l := openLog(t, dir, false)
			_, err = l.Append(ctx, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login"})
			var de *trail.DamagedError
			if !errors.As(err, &de) || de.Seq != c.seq || !errors.Is(err, trail.ErrDamaged) {
				t.Fatalf("Append() = %v, want a *trail.DamagedError at seq %d", err, c.seq)
			}
			if msg := err.Error(); !strings.Contains(msg, "nothing was stored") || !strings.Contains(msg, "run trail verify") {
				t.Errorf("Append() = %q, want it to say nothing was stored and to run trail verify", msg)
			}
			if l.Size() != damageSize {
				t.Errorf("after the refused append the log has %d events, want %d", l.Size(), damageSize)
			}
		})
	}
}

// TestMissingEvent deletes a stored event: reads that reach its seq report
// it damaged (missing), through the id, a scan and an index alike.
func TestMissingEvent(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) { testMissingEvent(t, newDamageFixture(t, b)) })
}

func testMissingEvent(t *testing.T, f *damageFixture) {
	ctx := context.Background()
	dir := f.copy(t)
	tp := f.b.Tamper(t, dir)
	deleteEvents(t, tp, 300, 301)
	must(t, tp.Close())
	l := openLog(t, dir, true)

	_, err := l.Get(ctx, f.ids[300])
	wantDamaged(t, "Get(id of the missing event)", err, 300, 300)
	_, err = l.Search(ctx, api.Query{Limit: 1000})
	wantDamaged(t, "Search(every event)", err, 300, 300)
	_, err = l.Search(ctx, api.Query{Actor: f.actors[300], Limit: 1000})
	wantDamaged(t, "Search(the actor's events, through the index)", err, 300, 300)
	var n int
	err = nil
	for _, ierr := range l.Events(ctx, api.Query{}) {
		if ierr != nil {
			err = ierr
			break
		}
		n++
	}
	wantDamaged(t, "Events(every event)", err, 300, 300)
	if n != 300 {
		t.Errorf("Events yielded %d events before the missing one, want 300", n)
	}
	if err != nil && !strings.Contains(err.Error(), "missing") {
		t.Errorf("Events() = %v, want it to say the event is missing", err)
	}
}

// TestProveThroughDamagedTile breaks an event among the newest, whose
// level-0 tile is not full: proofs, tree hashes and hash tiles that need
// its leaf hash must be a valid answer (a store that keeps that tile) or
// a *trail.DamagedError naming it, never another error; those that do
// not need it are answered.
func TestProveThroughDamagedTile(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newDamageFixture(t, b)
		ctx := context.Background()
		const broken = 560 // in the partial tile 0/2, [512, 600)
		dir := f.copy(t)
		tp := b.Tamper(t, dir)
		must(t, tp.BreakEvent(ctx, tamperLog, broken))
		must(t, tp.Close())
		for _, readOnly := range []bool{true, false} {
			l := openLog(t, dir, readOnly)
			signed, err := l.Checkpoint()
			must(t, err)
			c, err := l.OpenCheckpoint(signed)
			must(t, err)
			for _, seq := range []int64{5, 530, 559} {
				proof, err := l.ProveInclusion(ctx, seq, c.Size)
				if err != nil {
					wantDamaged(t, fmt.Sprintf("ProveInclusion(%d, %d), read-only %v", seq, c.Size, readOnly), err, broken, broken)
					continue
				}
				e, gerr := l.GetSeq(ctx, seq)
				must(t, gerr)
				if err := tlog.CheckRecord(proof, c.Size, c.Hash, seq, tlog.RecordHash(canon.Append(nil, e))); err != nil {
					t.Errorf("ProveInclusion(%d, %d), read-only %v: the proof does not check: %v", seq, c.Size, readOnly, err)
				}
			}
			if proof, err := l.ProveConsistency(ctx, 500, c.Size); err != nil {
				wantDamaged(t, "ProveConsistency(500, 600)", err, broken, broken)
			} else if old, err := l.TreeHash(ctx, 500); err != nil {
				t.Errorf("TreeHash(500) = %v", err)
			} else if err := tlog.CheckTree(proof, c.Size, c.Hash, 500, old); err != nil {
				t.Errorf("ProveConsistency(500, 600): the proof does not check: %v", err)
			}
			if h, err := l.TreeHash(ctx, c.Size); err != nil {
				wantDamaged(t, "TreeHash(600)", err, broken, broken)
			} else if h != c.Hash {
				t.Errorf("TreeHash(600) = %x, want the checkpoint's %x", h, c.Hash)
			}
			if _, err := l.HashTile(ctx, 0, 2, damageSize-512); err != nil {
				wantDamaged(t, "HashTile(0, 2, 88)", err, broken, broken)
			}
			// Before the broken event, the tree is whole.
			if _, err := l.ProveInclusion(ctx, 520, broken); err != nil {
				t.Errorf("ProveInclusion(520, %d) = %v, want a proof", broken, err)
			}
			if _, err := l.HashTile(ctx, 0, 2, broken-512); err != nil {
				t.Errorf("HashTile(0, 2, %d) = %v, want its hashes", broken-512, err)
			}
		}
	})
}

// TestAppendNamesDamagedTile: an append to a log whose newest events'
// level-0 tile cannot be rebuilt, as one of them is broken, fails naming
// that event, not the log's last.
func TestAppendNamesDamagedTile(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newDamageFixture(t, b)
		ctx := context.Background()
		const broken = 560
		dir := f.copy(t)
		tp := b.Tamper(t, dir)
		must(t, tp.BreakEvent(ctx, tamperLog, broken))
		must(t, tp.Close())
		l := openLog(t, dir, false)
		_, err := l.Append(ctx, storetest.Events(1, 9)[0])
		if err == nil && storesPartialTiles(b) {
			return // its stored tile covers the events: verify finds the damage
		}
		var de *trail.DamagedError
		if !errors.As(err, &de) || de.Seq != broken {
			t.Errorf("Append to a log whose event %d is broken = %v, want a *trail.DamagedError at seq %d", broken, err, broken)
		}
	})
}

// TestVerifyRenamedLog: a log renamed in the database (two logs' names
// swapped, say) fails Verify at its first event: where the events keep
// the name they were stored with, every hash and checkpoint still
// matches, and the name in each event tells; where a backend gives
// events their log's name as it reads them, their hashes tell.
func TestVerifyRenamedLog(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newDamageFixture(t, b)
		dir := f.copy(t)
		tp := b.Tamper(t, dir)
		if err := tp.RenameLog(context.Background(), tamperLog, "renamed"); err != nil {
			t.Fatal(err)
		}
		must(t, tp.Close())
		db, err := openAt(context.Background(), dir, trail.Options{ReadOnly: true})
		must(t, err)
		defer db.Close()
		l, err := db.Log(context.Background(), "renamed")
		must(t, err)
		var ve *trail.VerifyError
		_, err = l.Verify(context.Background(), trail.VerifyOptions{})
		named := strings.Contains(fmt.Sprint(err), fmt.Sprintf("the event names log %q, not %q", tamperLog, "renamed"))
		if !errors.As(err, &ve) || ve.Seq != 0 || !named && !strings.Contains(err.Error(), "do not match the events") {
			t.Errorf("Verify() of a renamed log = %v, want a VerifyError at seq 0 naming both names, or its hashes", err)
		}
	})
}
