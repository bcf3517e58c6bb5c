package trail_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"path/filepath"
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
)

// damageFixture is a closed data directory holding one log of damageSize
// events, all of them indexed, and their ids by seq.
type damageFixture struct {
	dir    string
	ids    []string
	actors []string // actor ids
}

const damageSize = 600

func newDamageFixture(t *testing.T) *damageFixture {
	t.Helper()
	ctx := context.Background()
	f := &damageFixture{dir: filepath.Join(t.TempDir(), "data")}
	db, err := trail.Init(ctx, f.dir, trail.Options{Now: stepClock()})
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
	return (&tamperFixture{dir: f.dir}).copy(t)
}

// openLog opens the log of the data directory dir.
func openLog(t *testing.T, dir string, readOnly bool) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Open(ctx, dir, trail.Options{ReadOnly: readOnly})
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

// bundleHolding returns the key and data of the stored bundle that holds
// event seq, and the seq of its first event.
func bundleHolding(t *testing.T, db *sql.DB, log, seq int64) (k, first int64, data []byte) {
	t.Helper()
	err := db.QueryRow("SELECT k, data FROM events WHERE k >= ? AND k <= ? ORDER BY k DESC LIMIT 1",
		eventKey(log, 0), eventKey(log, seq)).Scan(&k, &data)
	if err != nil {
		t.Fatalf("bundle of seq %d: %v", seq, err)
	}
	return k, k - eventKey(log, 0), data
}

// recordAt returns the offset in a bundle of the first byte of its record
// i (bundle.go in internal/store/sqlite has the layout).
func recordAt(data []byte, i int) int {
	off := 1
	_, w := binary.Uvarint(data[off:])
	off += w
	for j := 0; ; j++ {
		n, w := binary.Uvarint(data[off:])
		off += w
		if j == i {
			return off
		}
		off += int(n)
	}
}

// damageCase changes one byte of the stored bundle holding an event.
type damageCase struct {
	name string
	// header: the byte is in the bundle's header, so the event damaged is
	// the last of its bundle (whose end the header gives).
	header bool
	// decodes: the bundle still decodes, into another event.
	decodes bool
	flip    func(data []byte, rec int)
}

func damageCases() []damageCase {
	return []damageCase{
		{name: "outcome code", flip: func(data []byte, rec int) {
			_, w1 := binary.Varint(data[rec:])
			_, w2 := binary.Varint(data[rec+w1:])
			data[rec+w1+w2] = 9
		}},
		{name: "field length", flip: func(data []byte, rec int) {
			_, w1 := binary.Varint(data[rec:])
			_, w2 := binary.Varint(data[rec+w1:])
			data[rec+w1+w2+1] = 0x7f // actor id's length, past the record
		}},
		// received_at moves by 2^24 ns, and with it the millisecond in
		// the event's id: the id asked for no longer matches.
		{name: "received_at", decodes: true, flip: func(data []byte, rec int) { data[rec+3] ^= 0x10 }},
		{name: "event count", header: true, flip: func(data []byte, _ int) { data[1]-- }},
		{name: "format version", header: true, flip: func(data []byte, _ int) { data[0] = 2 }},
	}
}

// damage applies c to the bundle holding seq 300 of the log in dir, and
// returns the seq of the event damaged, one in the middle of the bundle
// (its last for header damage), and the seq of the bundle's first event.
func damage(t *testing.T, dir string, c damageCase) (seq, first int64) {
	t.Helper()
	db := rawDB(t, dir)
	log := logID(t, db)
	k, first, data := bundleHolding(t, db, log, 300)
	n := int64(data[1])
	if n < 3 {
		t.Fatalf("the bundle holding seq 300 holds %d events; want 3 or more, to damage one in the middle", n)
	}
	seq = first + n/2
	if c.header {
		seq = first + n - 1
	}
	c.flip(data, recordAt(data, int(seq-first)))
	mustExec(t, db, "UPDATE events SET data = ? WHERE k = ?", data, k)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return seq, first
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

// TestDamagedEvent changes one byte of a stored event's bundle: every read
// that meets the event must report it damaged, naming its seq, never as
// missing nor by skipping it.
func TestDamagedEvent(t *testing.T) {
	f := newDamageFixture(t)
	ctx := context.Background()
	for _, c := range damageCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := f.copy(t)
			seq, first := damage(t, dir, c)
			t.Logf("damaged seq %d (bundle from %d)", seq, first)
			l := openLog(t, dir, true)

			_, err := l.Get(ctx, f.ids[seq])
			wantDamaged(t, "Get(id of the damaged event)", err, seq, seq)
			if !c.decodes {
				_, err = l.GetSeq(ctx, seq)
				wantDamaged(t, "GetSeq(damaged seq)", err, seq, seq)
			}

			// A search that does not reach the event is answered.
			if p, err := l.Search(ctx, api.Query{Limit: 10}); err != nil || len(p.Events) != 10 {
				t.Errorf("Search(newest 10) = %d events, %v; want 10 and no error", len(p.Events), err)
			}
			if c.decodes {
				return // a search cannot tell an altered event from any other
			}
			// The first event met is the damaged one, or for damage to
			// its bundle's header, one of the bundle.
			lo := seq
			if c.header {
				lo = first
			}
			_, err = l.Search(ctx, api.Query{Limit: 1000})
			wantDamaged(t, "Search(every event)", err, lo, seq)
			_, err = l.Search(ctx, api.Query{Actor: f.actors[seq], Limit: 1000})
			wantDamaged(t, "Search(an actor's events, through the index)", err, lo, seq)
			var n int
			err = nil
			for _, ierr := range l.Events(ctx, api.Query{}) {
				if ierr != nil {
					err = ierr
					break
				}
				n++
			}
			wantDamaged(t, "Events(every event)", err, lo, seq)
			var de *trail.DamagedError
			if errors.As(err, &de) && n != int(de.Seq) {
				t.Errorf("Events yielded %d events before the damage at seq %d, want them all", n, de.Seq)
			}
		})
	}
}

// TestGetWrongID: an id whose seq holds an intact event of another
// receipt time is no such event, not damage.
func TestGetWrongID(t *testing.T) {
	f := newDamageFixture(t)
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
	f := newDamageFixture(t)
	ctx := context.Background()
	dir := f.copy(t)
	db := rawDB(t, dir)
	editEvent(t, db, logID(t, db), 300, func(e *event.Event) { e.Reason = "nothing to see" })
	db.Close()
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
// bundle under a higher key or as more events in the last bundle: Verify
// must report it and appends must fail naming it, storing nothing.
func TestStrayEvent(t *testing.T) {
	f := newDamageFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		seq   int64
		stray func(t *testing.T, db *sql.DB, log int64)
	}{
		{"row at the log's size", damageSize, func(t *testing.T, db *sql.DB, log int64) {
			k, _, _ := bundleHolding(t, db, log, damageSize-1)
			mustExec(t, db, "INSERT INTO events (k, data) SELECT ?, data FROM events WHERE k = ?", eventKey(log, damageSize), k)
		}},
		{"row far past the log's size", 5000, func(t *testing.T, db *sql.DB, log int64) {
			k, _, _ := bundleHolding(t, db, log, 10)
			mustExec(t, db, "INSERT INTO events (k, data) SELECT ?, data FROM events WHERE k = ?", eventKey(log, 5000), k)
		}},
		{"last bundle holding one more", damageSize, func(t *testing.T, db *sql.DB, log int64) {
			forge(t, db, log, damageSize)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := f.copy(t)
			db := rawDB(t, dir)
			c.stray(t, db, logID(t, db))
			db.Close()

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
	f := newDamageFixture(t)
	ctx := context.Background()
	dir := f.copy(t)
	db := rawDB(t, dir)
	deleteEvents(t, db, logID(t, db), 300, 301)
	db.Close()
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
