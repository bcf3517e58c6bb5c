package trail_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

const (
	tamperLog    = "audit"
	tamperOrigin = "example.com/trail/audit"
)

// tamperBatches are the sizes of the batches the tamper tests' log is
// appended in: 800 events, so three full level-0 tiles, a partial one, and
// a level-1 tile of three hashes. Checkpoints land at 1, 8, 58, 178, 181,
// 381, 445, 535, 790, 799 and 800.
var tamperBatches = []int{1, 7, 50, 120, 3, 200, 64, 90, 255, 9, 1}

// savedAfter is how many batches go in before the auditor saves a
// checkpoint (of size 58).
const savedAfter = 3

// tamperFixture is a closed store holding one log, and the checkpoints
// an auditor saved from it.
type tamperFixture struct {
	b     backends.Backend
	dir   string
	size  int64
	saved []byte // checkpoint of size savedSize
	final []byte // checkpoint of the whole log
}

const savedSize = 58

// stepClock is a clock for trail.Options.Now that moves a millisecond per
// call, so batches get distinct receipt times.
func stepClock() func() time.Time {
	var mu sync.Mutex
	now := time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
}

func newTamperFixture(t *testing.T, b backends.Backend) *tamperFixture {
	t.Helper()
	ctx := context.Background()
	f := &tamperFixture{b: b, dir: b.New(t)}
	db, err := initAt(ctx, f.dir, trail.Options{Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, tamperLog, tamperOrigin)
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(800, 1)
	for i, n := range tamperBatches {
		if _, err := l.AppendBatch(ctx, evs[:n]); err != nil {
			t.Fatalf("AppendBatch(%d events) = %v", n, err)
		}
		evs = evs[n:]
		if i+1 == savedAfter {
			if f.saved, err = l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.size = l.Size()
	if f.final, err = l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// copy returns a fresh copy of the fixture's store.
func (f *tamperFixture) copy(t *testing.T) string {
	t.Helper()
	return f.b.Copy(t, f.dir)
}

// tampered returns a copy of the fixture's store changed by mutate.
func (f *tamperFixture) tampered(t *testing.T, mutate func(storetest.Tamperer)) string {
	t.Helper()
	dir := f.copy(t)
	tp := f.b.Tamper(t, dir)
	mutate(tp)
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openLogAt opens the store at dir with opts, and its tamper log; both
// are closed when t ends.
func openLogAt(t *testing.T, dir string, opts trail.Options) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := openAt(ctx, dir, opts)
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

// must fails t if err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// isURL reports whether loc, a location a backends.Backend gave, is a
// store URL (PostgreSQL's) rather than a data directory.
func isURL(loc string) bool { return strings.Contains(loc, "://") }

// initAt creates the store at loc, a location a backends.Backend gave: a
// data directory (trail.Init), or a URL (trail.InitStore, with the
// backend's master key).
func initAt(ctx context.Context, loc string, opts trail.Options) (*trail.DB, error) {
	if !isURL(loc) {
		return trail.Init(ctx, loc, opts)
	}
	opts.MasterKey = backends.Postgres.MasterKey
	return trail.InitStore(ctx, loc, opts)
}

// openAt opens the store at loc, as initAt made it.
func openAt(ctx context.Context, loc string, opts trail.Options) (*trail.DB, error) {
	if !isURL(loc) {
		return trail.Open(ctx, loc, opts)
	}
	opts.MasterKey = backends.Postgres.MasterKey
	return trail.OpenStore(ctx, loc, opts)
}

// signer reads the log's signing key from the store at dir: from its
// keys directory, or unsealed from the database of a store URL.
func signer(t *testing.T, dir string) note.Signer {
	t.Helper()
	if isURL(dir) {
		ctx := context.Background()
		db, err := openAt(ctx, dir, trail.Options{})
		must(t, err)
		defer db.Close()
		s, err := trail.LogSigner(ctx, db, tamperLog)
		must(t, err)
		return s
	}
	b, err := os.ReadFile(filepath.Join(dir, "keys", tamperLog+".key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rebuild makes the log's derived data agree with its (tampered) events
// up to size, as an attacker would: it recomputes every Merkle tile from
// the events, and, if resign is set, signs every checkpoint the size
// still covers again, with the log's real key.
func rebuild(t *testing.T, tp storetest.Tamperer, size int64, resign note.Signer) {
	t.Helper()
	ctx := context.Background()
	roots := map[int64]tlog.Hash{}
	must(t, tp.EditCheckpoints(ctx, tamperLog, func(n int64, note []byte) []byte {
		roots[n] = tlog.Hash{}
		return note
	}))
	var evs []*event.Event
	must(t, tp.EditEvents(ctx, tamperLog, 0, size, func(in []*event.Event) []*event.Event {
		evs = in
		return in
	}))
	app, _ := merkle.NewAppender(0, nil)
	var buf []byte
	for _, e := range evs {
		if e.Seq != app.Size() {
			t.Fatalf("rebuild: no event at seq %d", app.Size())
		}
		buf = canon.Append(buf[:0], e)
		app.Append(tlog.RecordHash(buf))
		if _, ok := roots[app.Size()]; ok {
			roots[app.Size()] = app.Root()
		}
	}
	if app.Size() != size {
		t.Fatalf("rebuild: read %d events of %d", app.Size(), size)
	}
	must(t, tp.ReplaceTiles(ctx, tamperLog, app.Flush()))
	if resign == nil {
		return
	}
	must(t, tp.EditCheckpoints(ctx, tamperLog, func(n int64, note []byte) []byte {
		if n > size {
			return note
		}
		signed, err := merkle.Sign(merkle.Checkpoint{Origin: tamperOrigin, Size: n, Hash: roots[n]}, resign)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}))
}

// verify opens the store at dir read-only and verifies the log.
func verify(t *testing.T, dir string, opts trail.VerifyOptions) (trail.VerifyReport, error) {
	t.Helper()
	ctx := context.Background()
	db, err := openAt(ctx, dir, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open(read-only) = %v", err)
	}
	defer db.Close()
	l, err := db.Log(ctx, tamperLog)
	if err != nil {
		t.Fatalf("Log(%q) = %v", tamperLog, err)
	}
	return l.Verify(ctx, opts)
}

// Special values of tamperCase.seq.
const (
	anySeq = -2 // the fault may or may not be tied to an event
	noSeq  = -1 // the fault is not tied to one event
)

type tamperCase struct {
	name    string
	mutate  func(t *testing.T, tp storetest.Tamperer, dir string)
	against func(f *tamperFixture) []byte // checkpoint to verify against, if any
	seq     int64                         // VerifyError.Seq wanted (or anySeq)
	says    string                        // in the error's message, if not empty
	// tiled is what is wanted instead on a backend that stores the
	// log's partial tiles (PostgreSQL), whose hashes name an altered
	// event that only the checkpoints tell otherwise; if set.
	tiled *tamperWant
}

// tamperWant is the VerifyError a tamperCase wants.
type tamperWant struct {
	seq  int64
	says string
}

// storesPartialTiles reports whether backend b stores the rightmost
// partial tile of a log, not only its full ones.
func storesPartialTiles(b backends.Backend) bool { return b.Name == backends.Postgres.Name }

// editEvents rewrites the log's events with seqs in [from, to) in the
// store (see storetest.Tamperer).
func editEvents(t *testing.T, tp storetest.Tamperer, from, to int64, edit func([]*event.Event) []*event.Event) {
	t.Helper()
	if err := tp.EditEvents(context.Background(), tamperLog, from, to, edit); err != nil {
		t.Fatalf("edit events [%d, %d): %v", from, to, err)
	}
}

// editEvent changes the stored event at seq.
func editEvent(t *testing.T, tp storetest.Tamperer, seq int64, edit func(*event.Event)) {
	t.Helper()
	editEvents(t, tp, seq, seq+1, func(evs []*event.Event) []*event.Event {
		if len(evs) != 1 {
			t.Fatalf("no event %d to edit", seq)
		}
		edit(evs[0])
		return evs
	})
}

// deleteEvents deletes the stored events with seqs in [from, to).
func deleteEvents(t *testing.T, tp storetest.Tamperer, from, to int64) {
	t.Helper()
	editEvents(t, tp, from, to, func([]*event.Event) []*event.Event { return nil })
}

// swapRows swaps everything but the seq of the events at seqs a < b.
func swapRows(t *testing.T, tp storetest.Tamperer, a, b int64) {
	t.Helper()
	editEvents(t, tp, a, b+1, func(evs []*event.Event) []*event.Event {
		first, last := evs[0], evs[len(evs)-1]
		first.Seq, last.Seq = last.Seq, first.Seq
		return evs
	})
}

// shiftFrom moves the events at seq >= from up by one seq.
func shiftFrom(t *testing.T, tp storetest.Tamperer, from int64) {
	t.Helper()
	editEvents(t, tp, from, 1<<40, func(evs []*event.Event) []*event.Event {
		for _, e := range evs {
			e.Seq++
		}
		return evs
	})
}

// forge stores a copy of the event at seq at-1, with another actor, at
// seq at, in place of any event there, and returns its receipt time.
func forge(t *testing.T, tp storetest.Tamperer, at int64) time.Time {
	t.Helper()
	var recv time.Time
	editEvents(t, tp, at-1, at+1, func(evs []*event.Event) []*event.Event {
		f := *evs[0]
		f.Seq, f.Actor.ID, f.Reason = at, "mallory", "approved"
		recv = f.ReceivedAt
		return []*event.Event{evs[0], &f}
	})
	return recv
}

// setSize sets the log's size.
func setSize(t *testing.T, tp storetest.Tamperer, size int64, last time.Time) {
	t.Helper()
	must(t, tp.SetSize(context.Background(), tamperLog, size, last))
}

// truncate deletes the events at seq >= size, lowers the log's size to
// match, and recomputes the tiles for the shorter log.
func truncate(t *testing.T, tp storetest.Tamperer, size int64, dropCheckpoints bool) {
	t.Helper()
	var last time.Time
	editEvents(t, tp, size-1, 1<<40, func(evs []*event.Event) []*event.Event {
		last = evs[0].ReceivedAt
		return evs[:1]
	})
	setSize(t, tp, size, last)
	if dropCheckpoints {
		must(t, tp.EditCheckpoints(context.Background(), tamperLog, func(n int64, note []byte) []byte {
			if n > size {
				return nil
			}
			return note
		}))
	}
	rebuild(t, tp, size, nil)
}

// flipTileByte changes one byte of hash i of a stored tile.
func flipTileByte(t *testing.T, tp storetest.Tamperer, level int, index int64, i int) {
	t.Helper()
	err := tp.EditTile(context.Background(), tamperLog, level, index, func(data []byte) []byte {
		if len(data) < (i+1)*32 {
			t.Fatalf("tile %d/%d has %d hashes, no hash %d", level, index, len(data)/32, i)
		}
		data[i*32+7] ^= 0x40
		return data
	})
	if err != nil {
		t.Fatalf("tile %d/%d: %v", level, index, err)
	}
}

// editCheckpoint changes the note of the checkpoint of size.
func editCheckpoint(t *testing.T, tp storetest.Tamperer, size int64, edit func([]byte) []byte) {
	t.Helper()
	found := false
	must(t, tp.EditCheckpoints(context.Background(), tamperLog, func(n int64, note []byte) []byte {
		if n != size {
			return note
		}
		found = true
		return edit(note)
	}))
	if !found {
		t.Fatalf("no checkpoint %d", size)
	}
}

// editRecord changes the stored record holding event seq.
func editRecord(t *testing.T, tp storetest.Tamperer, seq int64, edit func([]byte) []byte) {
	t.Helper()
	must(t, tp.EditRecord(context.Background(), tamperLog, seq, edit))
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{name: "actor changed", seq: 300, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 300, func(e *event.Event) { e.Actor.ID = "mallory" })
		}},
		{name: "reason changed", seq: 5, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 5, func(e *event.Event) { e.Reason = "nothing to see" })
		}},
		{name: "metadata changed", seq: 700, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 700, func(e *event.Event) { e.Metadata = json.RawMessage(`{"amount":1}`) })
		}},
		{name: "outcome changed", seq: 420, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 420, func(e *event.Event) {
				if e.Outcome == event.Success {
					e.Outcome = event.Denied
				} else {
					e.Outcome = event.Success
				}
			})
		}},
		{name: "targets changed", seq: 250, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 250, func(e *event.Event) {
				if len(e.Targets) == 0 {
					e.Targets = []event.Target{{Type: "user", ID: "u1"}}
				} else {
					e.Targets = nil
				}
			})
		}},
		{name: "last receipt time moved ahead", seq: 799, says: "stored last receipt time", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			setSize(t, tp, 800, time.Date(2255, 3, 14, 0, 0, 0, 0, time.UTC))
		}},
		{name: "first event changed", seq: 0, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 0, func(e *event.Event) { e.Action = "user.logout" })
		}},
		// Events past the last full tile have only the checkpoints to
		// tell which one changed: the last checkpoint's only event,
		{name: "last event's time moved a nanosecond", seq: 799, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 799, func(e *event.Event) { e.Time = e.Time.Add(time.Nanosecond) })
		}},
		// or one of the nine events between the two checkpoints before.
		// A stored partial tile names the event.
		{name: "event of the last batch of several changed", seq: noSeq, says: "among events 790 to 798", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editEvent(t, tp, 795, func(e *event.Event) { e.Reason = "nothing to see" })
		}, tiled: &tamperWant{seq: 795, says: "stored Merkle hashes (tile 0/3) do not match the events"}},
		{name: "bundle cut short", seq: anySeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editRecord(t, tp, 300, func(data []byte) []byte { return data[:len(data)-3] })
		}},
		{name: "bundle overwritten with garbage", seq: anySeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editRecord(t, tp, 300, func(data []byte) []byte {
				rand.Read(data)
				return data
			})
		}},
		{name: "one byte of a bundle flipped", seq: anySeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editRecord(t, tp, 300, func(data []byte) []byte {
				data[40] = 'z'
				return data
			})
		}},
		{name: "event deleted", seq: 400, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			deleteEvents(t, tp, 400, 401)
		}},
		{name: "last event deleted", seq: 799, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			deleteEvents(t, tp, 799, 800)
		}},
		{name: "events swapped in a batch", seq: 200, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			swapRows(t, tp, 200, 300)
		}},
		{name: "events swapped across batches", seq: 100, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			swapRows(t, tp, 100, 600)
		}},
		{name: "forged event appended", seq: 800, mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
			setSize(t, tp, 801, forge(t, tp, 800))
			rebuild(t, tp, 801, nil)
		}},
		{name: "forged event appended, tiles left alone", seq: 800, mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
			setSize(t, tp, 801, forge(t, tp, 800))
		}},
		{name: "forged event inserted, size bumped", seq: anySeq, mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
			shiftFrom(t, tp, 300)
			forge(t, tp, 300)
			var last time.Time
			editEvent(t, tp, 800, func(e *event.Event) { last = e.ReceivedAt })
			setSize(t, tp, 801, last)
			rebuild(t, tp, 801, nil)
		}},
		{name: "forged event inserted, last event dropped", seq: 300, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			shiftFrom(t, tp, 300)
			forge(t, tp, 300)
			deleteEvents(t, tp, 800, 801)
		}},
		{name: "forged event inserted, tiles recomputed", seq: anySeq, mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
			shiftFrom(t, tp, 300)
			forge(t, tp, 300)
			deleteEvents(t, tp, 800, 801)
			rebuild(t, tp, 800, nil)
		}},
		{name: "truncated below a checkpoint", seq: 600, mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
			truncate(t, tp, 600, false)
		}},
		{name: "truncated to a checkpoint, later checkpoints dropped", seq: 535, against: func(f *tamperFixture) []byte { return f.final },
			mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
				truncate(t, tp, 535, true)
			}},
		{name: "truncated below the saved checkpoint", seq: 8, against: func(f *tamperFixture) []byte { return f.saved },
			mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
				truncate(t, tp, 8, true)
			}},
		{name: "level-0 tile hash altered", seq: 256 + 5, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			flipTileByte(t, tp, 0, 1, 5)
		}},
		// The partial level-0 tile is not stored but computed from the
		// events; a row planted for it (or left by an older version) must
		// match them.
		{name: "partial level-0 tile planted", seq: 768, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			var full []byte
			must(t, tp.EditTile(context.Background(), tamperLog, 0, 2, func(data []byte) []byte {
				full = data
				return data
			}))
			must(t, tp.EditTile(context.Background(), tamperLog, 0, 3, func([]byte) []byte { return full }))
		}},
		{name: "level-1 tile hash altered", seq: 256, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			flipTileByte(t, tp, 1, 0, 1)
		}},
		{name: "level-1 tile frontier hash altered", seq: 512, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			flipTileByte(t, tp, 1, 0, 2)
		}},
		{name: "checkpoint signature altered", seq: noSeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editCheckpoint(t, tp, 381, func(n []byte) []byte {
				i := len(n) - 20 // inside the signature's base64, clear of its padding
				if n[i] == 'A' {
					n[i] = 'B'
				} else {
					n[i] = 'A'
				}
				return n
			})
		}},
		{name: "checkpoint signed by another key", seq: noSeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			editCheckpoint(t, tp, 445, func(n []byte) []byte {
				c, err := merkle.ParseCheckpoint([]byte(strings.SplitN(string(n), "\n\n", 2)[0] + "\n"))
				if err != nil {
					t.Fatal(err)
				}
				skey, _, err := merkle.NewKey(tamperOrigin)
				if err != nil {
					t.Fatal(err)
				}
				s, err := note.NewSigner(skey)
				if err != nil {
					t.Fatal(err)
				}
				forged, err := merkle.Sign(c, s)
				if err != nil {
					t.Fatal(err)
				}
				return forged
			})
		}},
		{name: "checkpoint notes swapped", seq: noSeq, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
			notes := map[int64][]byte{}
			must(t, tp.EditCheckpoints(context.Background(), tamperLog, func(n int64, note []byte) []byte {
				notes[n] = note
				return note
			}))
			editCheckpoint(t, tp, 178, func([]byte) []byte { return notes[181] })
			editCheckpoint(t, tp, 181, func([]byte) []byte { return notes[178] })
		}},
		{name: "history forked before the saved checkpoint", seq: noSeq, against: func(f *tamperFixture) []byte { return f.saved },
			mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
				editEvent(t, tp, 10, func(e *event.Event) { e.Actor.ID = "mallory" })
				rebuild(t, tp, 800, signer(t, dir))
			}},
		{name: "history forked, against the latest checkpoint", seq: noSeq, against: func(f *tamperFixture) []byte { return f.final },
			mutate: func(t *testing.T, tp storetest.Tamperer, dir string) {
				editEvent(t, tp, 700, func(e *event.Event) { e.Actor.ID = "mallory" })
				rebuild(t, tp, 800, signer(t, dir))
			}},
	}
}

func TestTamper(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)

		t.Run("untouched", func(t *testing.T) {
			dir := f.copy(t)
			for _, against := range [][]byte{nil, f.saved, f.final} {
				rep, err := verify(t, dir, trail.VerifyOptions{Against: against})
				if err != nil {
					t.Fatalf("Verify(against %d bytes) = %v", len(against), err)
				}
				if rep.Size != f.size || rep.Checkpoints != len(tamperBatches) {
					t.Errorf("Verify() = size %d, %d checkpoints; want %d, %d", rep.Size, rep.Checkpoints, f.size, len(tamperBatches))
				}
				if against != nil && (rep.Against == nil || rep.Against.Size != checkpointSize(t, against)) {
					t.Errorf("Verify(against size %d).Against = %+v", checkpointSize(t, against), rep.Against)
				}
			}
		})

		for _, c := range tamperCases() {
			t.Run(c.name, func(t *testing.T) {
				dir := f.copy(t)
				tp := b.Tamper(t, dir)
				c.mutate(t, tp, dir)
				if err := tp.Close(); err != nil {
					t.Fatal(err)
				}
				var opts trail.VerifyOptions
				if c.against != nil {
					opts.Against = c.against(f)
					if _, err := verify(t, dir, trail.VerifyOptions{}); err != nil {
						t.Fatalf("Verify() without the saved checkpoint = %v; the tampering should pass on its own, so that the saved checkpoint is what catches it", err)
					}
				}
				rep, err := verify(t, dir, opts)
				var ve *trail.VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("Verify() = %+v, %v; want a *trail.VerifyError", rep, err)
				}
				t.Logf("Verify() = %v", err)
				want := tamperWant{seq: c.seq, says: c.says}
				if c.tiled != nil && storesPartialTiles(b) {
					want = *c.tiled
				}
				if want.seq != anySeq && ve.Seq != want.seq {
					t.Errorf("Verify() = %v: VerifyError.Seq = %d, want %d", err, ve.Seq, want.seq)
				}
				if !strings.Contains(err.Error(), want.says) {
					t.Errorf("Verify() = %v, want it to say %q", err, want.says)
				}
			})
		}

		t.Run("forked after the saved checkpoint", func(t *testing.T) {
			// A rewrite of events the saved checkpoint does not cover is
			// consistent with it; only a later checkpoint catches it.
			dir := f.copy(t)
			tp := b.Tamper(t, dir)
			editEvent(t, tp, 700, func(e *event.Event) { e.Actor.ID = "mallory" })
			rebuild(t, tp, 800, signer(t, dir))
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := verify(t, dir, trail.VerifyOptions{Against: f.saved}); err != nil {
				t.Errorf("Verify(against the checkpoint of size %d) = %v, want nil", savedSize, err)
			}
		})
	})
}

func checkpointSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	c, err := merkle.ParseCheckpoint([]byte(strings.SplitN(string(signed), "\n\n", 2)[0] + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestTamperFullTiles alters hashes in full tiles above level 0, which a
// log has from 65536 events on: a full level-1 tile, and the level-2 tile
// above it.
func TestTamperFullTiles(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("appends 66000 events; skipped with -short and under the race detector")
	}
	backends.Run(t, func(t *testing.T, b backends.Backend) { testTamperFullTiles(t, b) })
}

func testTamperFullTiles(t *testing.T, b backends.Backend) {
	ctx := context.Background()
	dir := b.New(t)
	db, err := initAt(ctx, dir, trail.Options{Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.CreateLog(ctx, tamperLog, tamperOrigin)
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(6600, 4)
	for range 10 {
		if _, err := l.AppendBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f := &tamperFixture{b: b, dir: dir, size: 66000}

	cases := []struct {
		name  string
		level int
		index int64
		hash  int
		seq   int64
	}{
		{"full level-1 tile", 1, 0, 200, 200 << 8},
		{"level-2 tile", 2, 0, 0, 0},
		{"partial level-1 tile", 1, 1, 0, 1 << 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := f.copy(t)
			tp := b.Tamper(t, dir)
			flipTileByte(t, tp, c.level, c.index, c.hash)
			tp.Close()
			_, err := verify(t, dir, trail.VerifyOptions{})
			var ve *trail.VerifyError
			if !errors.As(err, &ve) || ve.Seq != c.seq {
				t.Errorf("Verify() after altering hash %d of tile %d/%d = %v, want a VerifyError at seq %d", c.hash, c.level, c.index, err, c.seq)
			}
		})
	}
}

// TestTamperThenAppend: a writer refuses to append to a log whose stored
// state its latest signed checkpoint does not vouch for, so that no new
// checkpoint is signed over events added, removed or changed outside
// Trail; reads go on, and Verify still says what is wrong. Untouched,
// the log takes the append.
func TestTamperThenAppend(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)
		for _, c := range []struct {
			name   string
			mutate func(t *testing.T, tp storetest.Tamperer, dir string)
			says   string // what the append's error says; "" for none
			// tiled: a store that keeps partial tiles keeps the leaf
			// hash of an event changed on its own, so the tree, and a
			// checkpoint signed over it, still holds the event as it
			// was appended: such a store may take the append, and
			// Verify reports the change all the same.
			tiled bool
		}{
			{name: "untouched", mutate: func(*testing.T, storetest.Tamperer, string) {}},
			{name: "last event changed", says: "do not hash to the root of the latest checkpoint", tiled: true, mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				editEvent(t, tp, 799, func(e *event.Event) { e.Actor.ID = "mallory" })
			}},
			{name: "last event and its tiles changed", says: "do not hash to the root of the latest checkpoint", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				editEvent(t, tp, 795, func(e *event.Event) { e.Actor.ID = "mallory" })
				rebuild(t, tp, 800, nil)
			}},
			{name: "event forged past the end", says: "latest checkpoint was signed for 800", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				recv := forge(t, tp, 800)
				setSize(t, tp, 801, recv)
				rebuild(t, tp, 801, nil)
			}},
			{name: "truncated, checkpoints kept", says: "latest checkpoint was signed for 800", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				truncate(t, tp, 795, false)
			}},
			{name: "truncated inside a commit, later checkpoints removed", says: "latest checkpoint was signed for 790", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				truncate(t, tp, 795, true)
			}},
			{name: "latest checkpoint's signature changed", says: "does not verify with the log's key", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				editCheckpoint(t, tp, 800, func(n []byte) []byte {
					n[len(n)-5] ^= 1
					return n
				})
			}},
			{name: "last receipt time a year ahead", says: "ahead of this server's clock", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				setSize(t, tp, 800, time.Now().AddDate(1, 0, 0))
			}},
			{name: "latest checkpoint removed", says: "latest checkpoint was signed for 799", mutate: func(t *testing.T, tp storetest.Tamperer, _ string) {
				must(t, tp.EditCheckpoints(context.Background(), tamperLog, func(n int64, note []byte) []byte {
					if n == 800 {
						return nil
					}
					return note
				}))
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				dir := f.tampered(t, func(tp storetest.Tamperer) { c.mutate(t, tp, "") })
				db, err := openAt(ctx, dir, trail.Options{})
				if err != nil {
					t.Fatalf("open = %v; a damaged log still opens, for reading", err)
				}
				defer db.Close()
				l, err := db.Log(ctx, tamperLog)
				if err != nil {
					t.Fatalf("Log = %v; a damaged log still opens, for reading", err)
				}
				if _, err := l.GetSeq(ctx, 0); err != nil {
					t.Errorf("GetSeq(0) = %v; reads go on", err)
				}
				before := l.Size()
				_, err = l.Append(ctx, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login"})
				switch {
				case c.says == "":
					if err != nil {
						t.Fatalf("Append = %v", err)
					}
					return
				case c.tiled && storesPartialTiles(b):
					if err != nil {
						t.Fatalf("Append = %v", err)
					}
				case !errors.Is(err, trail.ErrDamaged) || !errors.Is(err, trail.ErrUnavailable) || !strings.Contains(err.Error(), c.says):
					t.Fatalf("Append = %v; want ErrDamaged and ErrUnavailable, saying %q", err, c.says)
				case l.Size() != before:
					t.Errorf("size after the refused append = %d, want %d", l.Size(), before)
				}
				db.Close()
				if _, err := verify(t, dir, trail.VerifyOptions{}); err == nil {
					t.Error("Verify after the refused append = nil, want the damage reported")
				}
			})
		}
	})
}

// TestTamperSearch: a search without filters, newest first or oldest
// first, meets the events missing at the log's end, or stored twice, and
// fails as damaged rather than answer without them.
func TestTamperSearch(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)
		for _, c := range []struct {
			name   string
			mutate func(t *testing.T, tp storetest.Tamperer)
		}{
			{"newest events deleted", func(t *testing.T, tp storetest.Tamperer) {
				editEvents(t, tp, 795, 800, func(evs []*event.Event) []*event.Event { return nil })
			}},
			{"size raised", func(t *testing.T, tp storetest.Tamperer) {
				setSize(t, tp, 805, time.Date(2025, 7, 1, 11, 0, 0, 0, time.UTC))
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				dir := f.tampered(t, func(tp storetest.Tamperer) { c.mutate(t, tp) })
				l := openLogAt(t, dir, trail.Options{ReadOnly: true})
				if page, err := l.Search(ctx, api.Query{Limit: 1000}); !errors.Is(err, trail.ErrDamaged) {
					t.Errorf("Search, newest first = %d events, %v; want ErrDamaged", len(page.Events), err)
				}
				n := 0
				var err2 error
				for _, err := range l.Events(ctx, api.Query{}) { // oldest first, as export reads
					if err != nil {
						err2 = err
						break
					}
					n++
				}
				if !errors.Is(err2, trail.ErrDamaged) {
					t.Errorf("Events, oldest first = %d events, then %v; want ErrDamaged", n, err2)
				}
			})
		}
	})
}

// TestTamperCheckpointServed: the latest checkpoint is served only as the
// log's key signed it: one whose signature was changed, or a log whose
// checkpoints were all removed, is reported as damaged, not served (or
// answered as an empty log).
func TestTamperCheckpointServed(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)
		for _, c := range []struct {
			name   string
			mutate func(t *testing.T, tp storetest.Tamperer)
		}{
			{"signature changed", func(t *testing.T, tp storetest.Tamperer) {
				editCheckpoint(t, tp, 800, func(n []byte) []byte {
					n[len(n)-5] ^= 1
					return n
				})
			}},
			{"all removed", func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.EditCheckpoints(context.Background(), tamperLog, func(int64, []byte) []byte { return nil }))
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				dir := f.tampered(t, func(tp storetest.Tamperer) { c.mutate(t, tp) })
				for _, ro := range []bool{true, false} {
					t.Run(map[bool]string{true: "read-only", false: "writable"}[ro], func(t *testing.T) {
						l := openLogAt(t, dir, trail.Options{ReadOnly: ro})
						if signed, err := l.Checkpoint(); !errors.Is(err, trail.ErrDamaged) {
							t.Errorf("Checkpoint = %d bytes, %v; want ErrDamaged", len(signed), err)
						}
					})
				}
			})
		}
	})
}

// TestTamperTileMissing: a hash tile the log has reached but the store
// lacks is reported as damaged, not as a tile not reached yet (404),
// which tlog clients would take for "try later".
func TestTamperTileMissing(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)
		ctx := context.Background()
		dir := f.tampered(t, func(tp storetest.Tamperer) {
			must(t, tp.EditTile(ctx, tamperLog, 0, 0, func([]byte) []byte { return nil }))
		})
		l := openLogAt(t, dir, trail.Options{ReadOnly: true})
		if _, err := l.HashTile(ctx, 0, 0, trail.TileWidth); !errors.Is(err, trail.ErrDamaged) || errors.Is(err, trail.ErrNotFound) {
			t.Errorf("HashTile(0/0) with the tile deleted = %v; want ErrDamaged, not ErrNotFound", err)
		}
		if _, err := l.HashTile(ctx, 0, 5, trail.TileWidth); !errors.Is(err, trail.ErrNotFound) {
			t.Errorf("HashTile(0/5), past the log = %v; want ErrNotFound", err)
		}
	})
}

// TestCopyTampered: a copy refuses a source whose events its latest
// checkpoint does not cover, or that holds an event past its end (which
// it would otherwise leave behind without a word), blames a target whose
// tiles were changed on the target, and leaves behind an idempotency
// record naming events the log does not hold there.
func TestCopyTampered(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		f := newTamperFixture(t, b)
		ctx := context.Background()
		copyTo := func(t *testing.T, src, dst string) (trail.CopyReport, error) {
			t.Helper()
			from, err := openAt(ctx, src, trail.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			to, err := initAt(ctx, dst, trail.Options{})
			if err != nil {
				to, err = openAt(ctx, dst, trail.Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer to.Close()
			return trail.Copy(ctx, from, to, trail.CopyOptions{})
		}
		for _, c := range []struct {
			name   string
			mutate func(t *testing.T, tp storetest.Tamperer)
			says   string
		}{
			{"latest checkpoint removed", func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.EditCheckpoints(ctx, tamperLog, func(n int64, note []byte) []byte {
					if n == 800 {
						return nil
					}
					return note
				}))
			}, "holds 800 events but its latest checkpoint is for 799"},
			{"event past the end", func(t *testing.T, tp storetest.Tamperer) {
				forge(t, tp, 800)
			}, "an event past the end of its log"},
		} {
			t.Run(c.name, func(t *testing.T) {
				src := f.tampered(t, func(tp storetest.Tamperer) { c.mutate(t, tp) })
				var ve *trail.VerifyError
				if _, err := copyTo(t, src, b.New(t)); !errors.As(err, &ve) || !strings.Contains(err.Error(), c.says) {
					t.Errorf("Copy = %v, want a VerifyError saying %q", err, c.says)
				}
			})
		}
		t.Run("target's tiles changed", func(t *testing.T) {
			// A target holding the first 381 events (a checkpoint's
			// size, past the first full tile), whose tiles were then
			// changed, resumed from the untouched source.
			part := f.tampered(t, func(tp storetest.Tamperer) { truncate(t, tp, 381, true) })
			dst := b.New(t)
			if _, err := copyTo(t, part, dst); err != nil {
				t.Fatal(err)
			}
			tp := b.Tamper(t, dst)
			flipTileByte(t, tp, 1, 0, 0) // on the right edge the copy resumes from
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
			_, err := copyTo(t, f.copy(t), dst)
			if err == nil || !strings.HasPrefix(err.Error(), "target: ") {
				t.Errorf("Copy onto a target with a changed tile = %v, want an error blaming the target", err)
			}
		})
	})
}
