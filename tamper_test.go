package trail_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store/sqlite"
	"github.com/trail-audit/trail/internal/store/storetest"
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

// tamperFixture is a closed data directory holding one log, and the
// checkpoints an auditor saved from it.
type tamperFixture struct {
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

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	ctx := context.Background()
	f := &tamperFixture{dir: filepath.Join(t.TempDir(), "data")}
	db, err := trail.Init(ctx, f.dir, trail.Options{Now: stepClock()})
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

// copy returns a fresh copy of the fixture's data directory.
func (f *tamperFixture) copy(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.dir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// rawDB opens a data directory's database directly, as an attacker with
// file access would.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, trail.DatabaseFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Keys of the SQLite schema: events k = log<<40 | seq, tiles k =
// log<<43 | level<<40 | index.
func logID(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRow("SELECT id FROM logs WHERE name = ?", tamperLog).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func eventKey(log, seq int64) int64               { return log<<40 | seq }
func tileKey(log int64, level int, i int64) int64 { return log<<43 | int64(level)<<40 | i }

// signer reads the log's signing key from the data directory.
func signer(t *testing.T, dir string) note.Signer {
	t.Helper()
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

// rebuild makes the log's derived data agree with its (tampered) events,
// as an attacker would: it recomputes every Merkle tile from the events,
// and, if resign is set, signs every checkpoint the log's size still
// covers again, with the log's real key.
func rebuild(t *testing.T, dir string, resign note.Signer) {
	t.Helper()
	ctx := context.Background()
	db := rawDB(t, dir)
	var size int64
	if err := db.QueryRow("SELECT size FROM logs WHERE name = ?", tamperLog).Scan(&size); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, trail.DatabaseFile), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	li, err := st.Log(ctx, tamperLog)
	if err != nil {
		t.Fatal(err)
	}
	roots := map[int64]tlog.Hash{}
	for c, err := range st.Checkpoints(ctx, li.ID) {
		if err != nil {
			t.Fatal(err)
		}
		roots[c.Size] = tlog.Hash{}
	}
	app, _ := merkle.NewAppender(0, nil)
	var buf []byte
	for e, err := range st.Scan(ctx, li.ID, 0, size) {
		if err != nil {
			t.Fatal(err)
		}
		buf = canon.Append(buf[:0], e)
		app.Append(tlog.RecordHash(buf))
		if _, ok := roots[app.Size()]; ok {
			roots[app.Size()] = app.Root()
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if app.Size() != size {
		t.Fatalf("rebuild: read %d events of %d", app.Size(), size)
	}

	mustExec(t, db, "DELETE FROM tiles WHERE k >= ? AND k < ?", tileKey(li.ID, 0, 0), tileKey(li.ID+1, 0, 0))
	for _, tile := range app.Flush() {
		mustExec(t, db, "INSERT INTO tiles (k, data) VALUES (?, ?)", tileKey(li.ID, tile.Level, tile.Index), tile.Data)
	}
	if resign == nil {
		return
	}
	for n, root := range roots {
		if n > size {
			continue
		}
		signed, err := merkle.Sign(merkle.Checkpoint{Origin: li.Origin, Size: n, Hash: root}, resign)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", signed, li.ID, n)
	}
}

// verify opens dir read-only and verifies the log.
func verify(t *testing.T, dir string, opts trail.VerifyOptions) (trail.VerifyReport, error) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Open(ctx, dir, trail.Options{ReadOnly: true})
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
	mutate  func(t *testing.T, dir string, db *sql.DB, log int64)
	against func(f *tamperFixture) []byte // checkpoint to verify against, if any
	seq     int64                         // VerifyError.Seq wanted (or anySeq)
	says    string                        // in the error's message, if not empty
}

// editEvents rewrites the log's events with seqs in [from, to) in the
// database file (see sqlite.EditEvents).
func editEvents(t *testing.T, db *sql.DB, log, from, to int64, edit func([]*event.Event) []*event.Event) {
	t.Helper()
	if err := sqlite.EditEvents(db, log, from, to, edit); err != nil {
		t.Fatalf("edit events [%d, %d): %v", from, to, err)
	}
}

// editEvent changes the stored event at seq.
func editEvent(t *testing.T, db *sql.DB, log, seq int64, edit func(*event.Event)) {
	t.Helper()
	editEvents(t, db, log, seq, seq+1, func(evs []*event.Event) []*event.Event {
		if len(evs) != 1 {
			t.Fatalf("no event %d to edit", seq)
		}
		edit(evs[0])
		return evs
	})
}

// deleteEvents deletes the stored events with seqs in [from, to).
func deleteEvents(t *testing.T, db *sql.DB, log, from, to int64) {
	t.Helper()
	editEvents(t, db, log, from, to, func([]*event.Event) []*event.Event { return nil })
}

// swapRows swaps everything but the seq of the events at seqs a < b.
func swapRows(t *testing.T, db *sql.DB, log, a, b int64) {
	t.Helper()
	editEvents(t, db, log, a, b+1, func(evs []*event.Event) []*event.Event {
		first, last := evs[0], evs[len(evs)-1]
		first.Seq, last.Seq = last.Seq, first.Seq
		return evs
	})
}

// shiftFrom moves the events at seq >= from up by one seq.
func shiftFrom(t *testing.T, db *sql.DB, log, from int64) {
	t.Helper()
	editEvents(t, db, log, from, 1<<40, func(evs []*event.Event) []*event.Event {
		for _, e := range evs {
			e.Seq++
		}
		return evs
	})
}

// forge stores a copy of the event at seq at-1, with another actor, at
// seq at, in place of any event there.
func forge(t *testing.T, db *sql.DB, log, at int64) {
	t.Helper()
	editEvents(t, db, log, at-1, at+1, func(evs []*event.Event) []*event.Event {
		f := *evs[0]
		f.Seq, f.Actor.ID, f.Reason = at, "mallory", "approved"
		return []*event.Event{evs[0], &f}
	})
}

// truncate deletes the events at seq >= size, lowers the log's size to
// match, and recomputes the tiles for the shorter log.
func truncate(t *testing.T, dir string, db *sql.DB, log, size int64, dropCheckpoints bool) {
	t.Helper()
	var last time.Time
	editEvents(t, db, log, size-1, 1<<40, func(evs []*event.Event) []*event.Event {
		last = evs[0].ReceivedAt
		return evs[:1]
	})
	mustExec(t, db, "UPDATE logs SET size = ?, indexed_size = min(indexed_size, ?), last_received_at = ? WHERE id = ?",
		size, size, last.UnixNano(), log)
	if dropCheckpoints {
		mustExec(t, db, "DELETE FROM checkpoints WHERE log = ? AND size > ?", log, size)
	}
	rebuild(t, dir, nil)
}

// flipTileByte changes one byte of hash i of a stored tile.
func flipTileByte(t *testing.T, db *sql.DB, log int64, level int, index int64, i int) {
	t.Helper()
	var data []byte
	if err := db.QueryRow("SELECT data FROM tiles WHERE k = ?", tileKey(log, level, index)).Scan(&data); err != nil {
		t.Fatalf("tile %d/%d: %v", level, index, err)
	}
	if len(data) < (i+1)*32 {
		t.Fatalf("tile %d/%d has %d hashes, no hash %d", level, index, len(data)/32, i)
	}
	data[i*32+7] ^= 0x40
	mustExec(t, db, "UPDATE tiles SET data = ? WHERE k = ?", data, tileKey(log, level, index))
}

func checkpointNote(t *testing.T, db *sql.DB, log, size int64) []byte {
	t.Helper()
	var n []byte
	if err := db.QueryRow("SELECT note FROM checkpoints WHERE log = ? AND size = ?", log, size).Scan(&n); err != nil {
		t.Fatalf("checkpoint %d: %v", size, err)
	}
	return n
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{name: "actor changed", seq: 300, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 300, func(e *event.Event) { e.Actor.ID = "mallory" })
		}},
		{name: "reason changed", seq: 5, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 5, func(e *event.Event) { e.Reason = "nothing to see" })
		}},
		{name: "metadata changed", seq: 700, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 700, func(e *event.Event) { e.Metadata = json.RawMessage(`{"amount":1}`) })
		}},
		{name: "outcome changed", seq: 420, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 420, func(e *event.Event) {
				if e.Outcome == event.Success {
					e.Outcome = event.Denied
				} else {
					e.Outcome = event.Success
				}
			})
		}},
		{name: "targets changed", seq: 250, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 250, func(e *event.Event) {
				if len(e.Targets) == 0 {
					e.Targets = []event.Target{{Type: "user", ID: "u1"}}
				} else {
					e.Targets = nil
				}
			})
		}},
		{name: "first event changed", seq: 0, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 0, func(e *event.Event) { e.Action = "user.logout" })
		}},
		// Events past the last full tile have only the checkpoints to
		// tell which one changed: the last checkpoint's only event,
		{name: "last event's time moved a nanosecond", seq: 799, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 799, func(e *event.Event) { e.Time = e.Time.Add(time.Nanosecond) })
		}},
		// or one of the nine events between the two checkpoints before.
		{name: "event of the last batch of several changed", seq: noSeq, says: "among events 790 to 798", mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			editEvent(t, db, log, 795, func(e *event.Event) { e.Reason = "nothing to see" })
		}},
		{name: "bundle cut short", seq: anySeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			mustExec(t, db, "UPDATE events SET data = substr(data, 1, length(data) - 3) WHERE k = (SELECT max(k) FROM events WHERE k <= ?)", eventKey(log, 300))
		}},
		{name: "bundle overwritten with garbage", seq: anySeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			mustExec(t, db, "UPDATE events SET data = randomblob(length(data)) WHERE k = (SELECT max(k) FROM events WHERE k <= ?)", eventKey(log, 300))
		}},
		{name: "one byte of a bundle flipped", seq: anySeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			mustExec(t, db, "UPDATE events SET data = substr(data, 1, 40) || x'7a' || substr(data, 42) WHERE k = (SELECT max(k) FROM events WHERE k <= ?) AND substr(data, 41, 1) <> x'7a'", eventKey(log, 300))
		}},
		{name: "event deleted", seq: 400, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			deleteEvents(t, db, log, 400, 401)
		}},
		{name: "last event deleted", seq: 799, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			deleteEvents(t, db, log, 799, 800)
		}},
		{name: "events swapped in a batch", seq: 200, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			swapRows(t, db, log, 200, 300)
		}},
		{name: "events swapped across batches", seq: 100, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			swapRows(t, db, log, 100, 600)
		}},
		{name: "forged event appended", seq: 800, mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
			forge(t, db, log, 800)
			mustExec(t, db, "UPDATE logs SET size = 801 WHERE id = ?", log)
			rebuild(t, dir, nil)
		}},
		{name: "forged event appended, tiles left alone", seq: 800, mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
			forge(t, db, log, 800)
			mustExec(t, db, "UPDATE logs SET size = 801 WHERE id = ?", log)
		}},
		{name: "forged event inserted, size bumped", seq: anySeq, mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
			shiftFrom(t, db, log, 300)
			forge(t, db, log, 300)
			mustExec(t, db, "UPDATE logs SET size = 801 WHERE id = ?", log)
			rebuild(t, dir, nil)
		}},
		{name: "forged event inserted, last event dropped", seq: 300, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			shiftFrom(t, db, log, 300)
			forge(t, db, log, 300)
			deleteEvents(t, db, log, 800, 801)
		}},
		{name: "forged event inserted, tiles recomputed", seq: anySeq, mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
			shiftFrom(t, db, log, 300)
			forge(t, db, log, 300)
			deleteEvents(t, db, log, 800, 801)
			rebuild(t, dir, nil)
		}},
		{name: "truncated below a checkpoint", seq: 600, mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
			truncate(t, dir, db, log, 600, false)
		}},
		{name: "truncated to a checkpoint, later checkpoints dropped", seq: 535, against: func(f *tamperFixture) []byte { return f.final },
			mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
				truncate(t, dir, db, log, 535, true)
			}},
		{name: "truncated below the saved checkpoint", seq: 8, against: func(f *tamperFixture) []byte { return f.saved },
			mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
				truncate(t, dir, db, log, 8, true)
			}},
		{name: "level-0 tile hash altered", seq: 256 + 5, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			flipTileByte(t, db, log, 0, 1, 5)
		}},
		// The partial level-0 tile is not stored but computed from the
		// events; a row planted for it (or left by an older version) must
		// match them.
		{name: "partial level-0 tile planted", seq: 768, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			mustExec(t, db, "INSERT INTO tiles (k, data) SELECT ?, data FROM tiles WHERE k = ?", tileKey(log, 0, 3), tileKey(log, 0, 2))
		}},
		{name: "level-1 tile hash altered", seq: 256, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			flipTileByte(t, db, log, 1, 0, 1)
		}},
		{name: "level-1 tile frontier hash altered", seq: 512, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			flipTileByte(t, db, log, 1, 0, 2)
		}},
		{name: "checkpoint signature altered", seq: noSeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			n := checkpointNote(t, db, log, 381)
			i := len(n) - 20 // inside the signature's base64, clear of its padding
			if n[i] == 'A' {
				n[i] = 'B'
			} else {
				n[i] = 'A'
			}
			mustExec(t, db, "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", n, log, 381)
		}},
		{name: "checkpoint signed by another key", seq: noSeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			c, err := merkle.ParseCheckpoint([]byte(strings.SplitN(string(checkpointNote(t, db, log, 445)), "\n\n", 2)[0] + "\n"))
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
			mustExec(t, db, "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", forged, log, 445)
		}},
		{name: "checkpoint notes swapped", seq: noSeq, mutate: func(t *testing.T, _ string, db *sql.DB, log int64) {
			a, b := checkpointNote(t, db, log, 178), checkpointNote(t, db, log, 181)
			mustExec(t, db, "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", b, log, 178)
			mustExec(t, db, "UPDATE checkpoints SET note = ? WHERE log = ? AND size = ?", a, log, 181)
		}},
		{name: "history forked before the saved checkpoint", seq: noSeq, against: func(f *tamperFixture) []byte { return f.saved },
			mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
				editEvent(t, db, log, 10, func(e *event.Event) { e.Actor.ID = "mallory" })
				rebuild(t, dir, signer(t, dir))
			}},
		{name: "history forked, against the latest checkpoint", seq: noSeq, against: func(f *tamperFixture) []byte { return f.final },
			mutate: func(t *testing.T, dir string, db *sql.DB, log int64) {
				editEvent(t, db, log, 700, func(e *event.Event) { e.Actor.ID = "mallory" })
				rebuild(t, dir, signer(t, dir))
			}},
	}
}

func TestTamper(t *testing.T) {
	f := newTamperFixture(t)

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
			db := rawDB(t, dir)
			c.mutate(t, dir, db, logID(t, db))
			if err := db.Close(); err != nil {
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
			if c.seq != anySeq && ve.Seq != c.seq {
				t.Errorf("Verify() = %v: VerifyError.Seq = %d, want %d", err, ve.Seq, c.seq)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("Verify() = %v, want it to say %q", err, c.says)
			}
		})
	}

	t.Run("forked after the saved checkpoint", func(t *testing.T) {
		// A rewrite of events the saved checkpoint does not cover is
		// consistent with it; only a later checkpoint catches it.
		dir := f.copy(t)
		db := rawDB(t, dir)
		editEvent(t, db, logID(t, db), 700, func(e *event.Event) { e.Actor.ID = "mallory" })
		rebuild(t, dir, signer(t, dir))
		if _, err := verify(t, dir, trail.VerifyOptions{Against: f.saved}); err != nil {
			t.Errorf("Verify(against the checkpoint of size %d) = %v, want nil", savedSize, err)
		}
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
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := trail.Init(ctx, dir, trail.Options{Now: stepClock()})
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
	f := &tamperFixture{dir: dir, size: 66000}

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
			raw := rawDB(t, dir)
			flipTileByte(t, raw, logID(t, raw), c.level, c.index, c.hash)
			raw.Close()
			_, err := verify(t, dir, trail.VerifyOptions{})
			var ve *trail.VerifyError
			if !errors.As(err, &ve) || ve.Seq != c.seq {
				t.Errorf("Verify() after altering hash %d of tile %d/%d = %v, want a VerifyError at seq %d", c.hash, c.level, c.index, err, c.seq)
			}
		})
	}
}
