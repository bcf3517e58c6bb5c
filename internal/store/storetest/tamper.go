package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// Tamperer reaches a backend's raw storage behind its Store's back, as
// someone who can write the database would. Trail's tamper and damage
// tests change what is stored through it, then check that Trail notices,
// so that the same tests run on every backend. It is for tests only: each
// backend implements it in a test-support package that production code
// never imports (internal/store/sqlite/sqlitetest for SQLite) and lists it
// in package backends; RunTamper checks an implementation.
//
// Logs are named by name. Each method makes its change in one transaction,
// taking the backend's write lock as a writer would, so that it waits for
// a running Trail's commits rather than fail beside them. A method changes
// only what it says: editing events moves no tile, checkpoint, size or
// index entry. It fails, changing nothing, when there is nothing of what
// it was asked to change (no such log, event, tile or entry), so that a
// test cannot pass because its tampering missed. A Tamperer is not safe
// for concurrent use.
type Tamperer interface {
	// EditEvents changes the stored events of log whose seqs are in [from,
	// to): edit gets them in seq order, leaving out any that are missing,
	// and returns the events to store instead, each at its Seq (unique):
	// it may change, drop, move or add events, at any seq.
	EditEvents(ctx context.Context, log string, from, to int64, edit func([]*event.Event) []*event.Event) error
	// EditRecord changes the stored bytes of the record that holds event
	// seq: edit gets them and returns the bytes to store instead. A
	// backend that stores several events in one record passes that record.
	EditRecord(ctx context.Context, log string, seq int64, edit func([]byte) []byte) error
	// CopyRecord stores a copy of the record that holds event from as the
	// record of the events from seq to on: a record of several events puts
	// them all at to and after.
	CopyRecord(ctx context.Context, log string, from, to int64) error
	// BreakEvent damages the stored record of event seq so that reading
	// that event fails with a *store.DamagedError at seq, and reading the
	// events stored before it in the same record does not.
	BreakEvent(ctx context.Context, log string, seq int64) error
	// Damages lists the ways, particular to the backend's format, in
	// which the stored record of an event can be damaged.
	Damages() []Damage

	// SetSize sets the log's size and the receipt time of its last event,
	// as a commit would leave them, and lowers how far its indexes and
	// counts go to at most size.
	SetSize(ctx context.Context, log string, size int64, lastReceivedAt time.Time) error
	// RenameLog changes the log's name to name, and nothing else.
	RenameLog(ctx context.Context, log, name string) error
	// SetVerifierKey changes the verifier key stored for the log to key,
	// and nothing else.
	SetVerifierKey(ctx context.Context, log, key string) error
	// EditTile changes the stored tile at level and index: edit gets its
	// data, nil if none is stored, and returns the data to store instead;
	// nil deletes it. A tile the backend does not store but computes (the
	// rightmost partial level-0 tile, say) may be planted this way.
	EditTile(ctx context.Context, log string, level int, index int64, edit func([]byte) []byte) error
	// ReplaceTiles deletes every stored tile of the log and stores tiles
	// instead.
	ReplaceTiles(ctx context.Context, log string, tiles []merkle.Tile) error
	// EditCheckpoints calls edit with each stored checkpoint of the log,
	// in ascending size, and stores the note it returns instead: the same
	// note keeps the checkpoint, another replaces its note, nil deletes it.
	EditCheckpoints(ctx context.Context, log string, edit func(size int64, note []byte) []byte) error
	// SetKey stores k, an API key of log, in the keys table as it is (k.Log
	// ignored), in place of any key of its id.
	SetKey(ctx context.Context, log string, k store.Key) error

	// DeletePostings deletes what the search index ix files the events
	// with seqs in [from, to) of log under: under value alone, or under
	// every value if value is "". For IndexTarget, value is a target type,
	// with all its ids; for IndexText, a word. A backend whose indexes are
	// kept in stretches of events may need from and to at their edges (to
	// may also be the log's size or more), and may delete under every value
	// only, where it cannot delete one value's entries; it returns an error
	// when it cannot do what was asked.
	DeletePostings(ctx context.Context, log string, ix store.Index, value string, from, to int64) error
	// AddPosting files each of p.Seqs under p.Value (and p.ID, for
	// IndexTarget) in the search index p.Index of log, whether or not the
	// events have that value.
	AddPosting(ctx context.Context, log string, p store.Posting) error
	// EditCounts calls edit with each stored count of log (see
	// store.Derived.Counts) and stores what it leaves in the row instead;
	// when edit returns false the count is deleted. A backend keeps what
	// it stores of a count: only the Total of a SpanAll count, say.
	EditCounts(ctx context.Context, log string, edit func(*store.CountRow) bool) error

	// LockWrites takes the backend's write lock, as a writer in another
	// process would, and holds it until unlock is called: commits wait
	// and a store's Writable fails meanwhile.
	LockWrites(ctx context.Context) (unlock func() error, err error)
	// FailIndexing makes the writes by which the backend's indexer records
	// its progress fail, as a database that refuses them would, with an
	// error that says IndexingRefused, until restore is called. Commits
	// still succeed. A backend whose commits write the indexes themselves,
	// with no indexer apart from them, has no such writes: it returns an
	// error wrapping errors.ErrUnsupported, and tests of the indexer's
	// failures skip it.
	FailIndexing(ctx context.Context) (restore func() error, err error)

	// Close releases the raw storage.
	Close() error
}

// IndexingRefused is what the error says that the indexer meets after
// Tamperer.FailIndexing.
const IndexingRefused = "index writes refused by a trigger"

// Damage is one way in which a backend's stored record of an event can be
// damaged, particular to its format: a field of the record, say, or the
// header of a record that holds several events.
type Damage struct {
	// Name says what is damaged: "outcome code", "event count".
	Name string
	// Decodes: the damaged record still decodes, into another event,
	// which only its id or its hash tells from the one stored.
	Decodes bool
	// Apply damages the record that holds event near of log. It returns
	// the seq of the event damaged, and the first seq that a read of the
	// log's events in order may report damaged instead: that of the first
	// event in the same record, if the damage can hide where the record's
	// events end.
	Apply func(ctx context.Context, log string, near int64) (seq, first int64, err error)
}

// RunTamper checks a backend's Tamperer: that each method changes what it
// says, as the backend's Store then reads it. fresh must make a new,
// empty store and return a function that opens it (the suite closes what
// it opens) and the Tamperer of its raw storage.
func RunTamper(t *testing.T, fresh func(t *testing.T) (open func(t *testing.T) store.Store, tp Tamperer)) {
	tests := []struct {
		name string
		test func(*testing.T, *tampered)
	}{
		{"EditEvents", testTamperEditEvents},
		{"Records", testTamperRecords},
		{"Damages", testTamperDamages},
		{"SetSize", testTamperSetSize},
		{"Tiles", testTamperTiles},
		{"Checkpoints", testTamperCheckpoints},
		{"Postings", testTamperPostings},
		{"Counts", testTamperCounts},
		{"LockWrites", testTamperLockWrites},
		{"FailIndexing", testTamperFailIndexing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			open, tp := fresh(t)
			s := open(t)
			f := &tampered{open: open, tp: tp, w: NewWriter(t, s, "audit")}
			appendBatches(t, s, f.w, Events(600, 120), 0, 100, 250, 250)
			waitIndexed(t, s, f.w)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tt.test(t, f)
		})
	}
}

// tampered is a store holding the log "audit" of 600 events, all indexed,
// which no one has open, and its Tamperer.
type tampered struct {
	open func(t *testing.T) store.Store
	tp   Tamperer
	w    *Writer
}

// reopen opens the store, closed when t ends.
func (f *tampered) reopen(t *testing.T) store.Store {
	t.Helper()
	s := f.open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// must fails t if err is not nil.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v", what, err)
	}
}

// wantDamagedAt fails t unless err is a *store.DamagedError at seq.
func wantDamagedAt(t *testing.T, call string, err error, seq int64) {
	t.Helper()
	var de *store.DamagedError
	if !errors.As(err, &de) || de.Seq != seq {
		t.Errorf("%s = %v, want a *store.DamagedError at seq %d", call, err, seq)
	}
}

// nextBatchFails checks that a commit of a batch at seq, the log's size,
// fails naming the event stored there.
func (f *tampered) nextBatchFails(t *testing.T, s store.Store, seq int64) {
	t.Helper()
	err := s.Commit(context.Background(), []store.Batch{f.w.BatchAt(t, seq, recvAt(10), Events(1, 121)...)})
	wantDamagedAt(t, fmt.Sprintf("Commit(a batch at seq %d)", seq), err, seq)
}

func testTamperEditEvents(t *testing.T, f *tampered) {
	ctx := context.Background()
	var got []int64
	must(t, "EditEvents(5, 9)", f.tp.EditEvents(ctx, "audit", 5, 9, func(evs []*event.Event) []*event.Event {
		got = seqs(evs)
		evs[0].Actor.ID = "mallory"
		stray := *evs[3]
		stray.Seq = 600
		return []*event.Event{evs[0], evs[1], evs[3], &stray} // 7 deleted, 8 copied to 600
	}))
	if want := []int64{5, 6, 7, 8}; !slices.Equal(got, want) {
		t.Errorf("EditEvents(5, 9) passed seqs %v to edit, want %v", got, want)
	}
	s := f.reopen(t)
	want := *f.w.Events[5]
	want.Actor.ID = "mallory"
	e, err := s.Get(ctx, f.w.Info.ID, 5)
	must(t, "Get(5)", err)
	checkEvent(t, "Get(5) after its actor was changed", e, &want)
	for _, seq := range []int64{4, 6, 8, 9, 599} {
		e, err := s.Get(ctx, f.w.Info.ID, seq)
		must(t, fmt.Sprintf("Get(%d)", seq), err)
		checkEvent(t, fmt.Sprintf("Get(%d) beside the edited events", seq), e, f.w.Events[seq])
	}
	if _, err := s.Get(ctx, f.w.Info.ID, 7); err == nil {
		t.Errorf("Get(7) of the deleted event = nil error")
	}
	f.nextBatchFails(t, s, 600)
	if err := f.tp.EditEvents(ctx, "nope", 0, 1, func(evs []*event.Event) []*event.Event { return evs }); err == nil {
		t.Errorf("EditEvents(log %q) = nil, want an error", "nope")
	}
}

func testTamperRecords(t *testing.T, f *tampered) {
	ctx := context.Background()
	must(t, "EditRecord(300, unchanged)", f.tp.EditRecord(ctx, "audit", 300, func(b []byte) []byte { return b }))
	must(t, "BreakEvent(200)", f.tp.BreakEvent(ctx, "audit", 200))
	must(t, "EditRecord(400, cut short)", f.tp.EditRecord(ctx, "audit", 400, func(b []byte) []byte { return b[:len(b)-3] }))
	must(t, "CopyRecord(599, 600)", f.tp.CopyRecord(ctx, "audit", 599, 600))
	s := f.reopen(t)
	e, err := s.Get(ctx, f.w.Info.ID, 300)
	must(t, "Get(300)", err)
	checkEvent(t, "Get(300) after its record was stored again unchanged", e, f.w.Events[300])
	_, err = s.Get(ctx, f.w.Info.ID, 200)
	wantDamagedAt(t, "Get(200) after BreakEvent(200)", err, 200)
	e, err = s.Get(ctx, f.w.Info.ID, 199)
	must(t, "Get(199) before the broken event", err)
	checkEvent(t, "Get(199)", e, f.w.Events[199])
	var n int
	err = nil
	for _, ierr := range s.Scan(ctx, f.w.Info.ID, 201, 600) {
		if err = ierr; err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, store.ErrDamaged) || 201+int64(n) > 400 {
		t.Errorf("Scan(201, 600) = %d events, then %v; want an error wrapping store.ErrDamaged by seq 400, whose record was cut short", n, err)
	}
	f.nextBatchFails(t, s, 600)
}

func testTamperDamages(t *testing.T, f *tampered) {
	ctx := context.Background()
	ds := f.tp.Damages()
	if len(ds) == 0 {
		t.Fatal("Damages() lists none")
	}
	// Each damage goes into a record of its own, 100 events after the
	// last: a scan from 20 events before it meets it first.
	for i, d := range ds {
		near := int64(50 + 100*i)
		seq, first, err := d.Apply(ctx, "audit", near)
		must(t, fmt.Sprintf("Damage %q Apply(%d)", d.Name, near), err)
		if first > seq || seq-near > 50 || near-first > 50 {
			t.Errorf("Damage %q Apply(%d) = seq %d, first %d; want first <= seq, both near %d", d.Name, near, seq, first, near)
		}
		s := f.reopen(t)
		e, err := s.Get(ctx, f.w.Info.ID, seq)
		switch {
		case d.Decodes && err != nil:
			t.Errorf("Damage %q: Get(%d) = %v, want an event", d.Name, seq, err)
		case d.Decodes && e.ID == f.w.Events[seq].ID && bytes.Equal(canonical(e), canonical(f.w.Events[seq])):
			t.Errorf("Damage %q: Get(%d) returns the event as committed", d.Name, seq)
		case !d.Decodes:
			wantDamagedAt(t, fmt.Sprintf("Damage %q: Get(%d)", d.Name, seq), err, seq)
		}
		if d.Decodes {
			continue
		}
		err = nil
		for _, ierr := range s.Scan(ctx, f.w.Info.ID, max(first-20, 0), 600) {
			if err = ierr; err != nil {
				break
			}
		}
		var de *store.DamagedError
		if !errors.As(err, &de) || de.Seq < first || de.Seq > seq {
			t.Errorf("Damage %q: Scan = %v, want a *store.DamagedError at seq %d to %d", d.Name, err, first, seq)
		}
	}
}

func testTamperSetSize(t *testing.T, f *tampered) {
	ctx := context.Background()
	last := f.w.Events[499].ReceivedAt
	must(t, "SetSize(500)", f.tp.SetSize(ctx, "audit", 500, last))
	s := f.reopen(t)
	st, err := s.State(ctx, f.w.Info.ID)
	must(t, "State", err)
	if st.Size != 500 || !st.LastReceivedAt.Equal(last) {
		t.Errorf("State after SetSize(500) = size %d, last received at %v; want 500, %v", st.Size, st.LastReceivedAt, last)
	}
	if ix, ok := s.(store.Indexes); ok {
		is, err := ix.IndexStatus(ctx)
		must(t, "IndexStatus", err)
		if lag := is.Lag[f.w.Info.ID]; lag < 0 {
			t.Errorf("IndexStatus after SetSize(500) lags %d events: the indexes go past the log's size", lag)
		}
	}
	// The events past the size are still stored: the next commit meets
	// them.
	f.nextBatchFails(t, s, 500)
}

func testTamperTiles(t *testing.T, f *tampered) {
	ctx := context.Background()
	id := f.w.Info.ID
	must(t, "EditTile(0, 1)", f.tp.EditTile(ctx, "audit", 0, 1, func(b []byte) []byte {
		b[40] ^= 1
		return b
	}))
	s := f.reopen(t)
	want := f.w.TileData(t, tlog.Tile{H: merkle.TileHeight, L: 0, N: 1, W: 256})
	got, err := s.Tile(ctx, id, 0, 1)
	must(t, "Tile(0, 1)", err)
	if len(got) < len(want) || got[40] == want[40] || !bytes.Equal(got[:40], want[:40]) {
		t.Errorf("Tile(0, 1) after one byte of it was changed = %x…, want the byte at 40 changed from %x", got[:48], want[:48])
	}
	must(t, "Close", s.Close())

	must(t, "ReplaceTiles(none)", f.tp.ReplaceTiles(ctx, "audit", nil))
	s = f.reopen(t)
	_, err = s.Tile(ctx, id, 0, 0)
	isNotFound(t, "Tile(0, 0) after every tile was deleted", err)
	must(t, "Close", s.Close())
	if err := f.tp.EditTile(ctx, "audit", 0, 0, func([]byte) []byte { return nil }); err == nil {
		t.Errorf("EditTile deleting a tile that is not stored = nil, want an error")
	}

	var tiles []merkle.Tile
	for _, tile := range tlog.NewTiles(merkle.TileHeight, 0, f.w.Size()) {
		if tile.L == 0 && tile.W < 256 {
			continue // the rightmost partial level-0 tile, which a store may compute
		}
		tiles = append(tiles, merkle.Tile{Level: tile.L, Index: tile.N, Data: f.w.TileData(t, tile)})
	}
	must(t, "ReplaceTiles(the log's)", f.tp.ReplaceTiles(ctx, "audit", tiles))
	CheckLog(t, f.reopen(t), f.w)
}

func testTamperCheckpoints(t *testing.T, f *tampered) {
	ctx := context.Background()
	cs := f.w.Checkpoints
	var sizes []int64
	changed := []byte("not a checkpoint\n")
	must(t, "EditCheckpoints", f.tp.EditCheckpoints(ctx, "audit", func(size int64, note []byte) []byte {
		sizes = append(sizes, size)
		switch size {
		case cs[0].Size:
			return changed
		case cs[len(cs)-1].Size:
			return nil
		}
		return note
	}))
	var want []int64
	for _, c := range cs {
		want = append(want, c.Size)
	}
	if !slices.Equal(sizes, want) {
		t.Errorf("EditCheckpoints passed sizes %v, want %v", sizes, want)
	}
	s := f.reopen(t)
	c, err := s.CheckpointAt(ctx, f.w.Info.ID, cs[0].Size)
	must(t, "CheckpointAt", err)
	if !bytes.Equal(c.Note, changed) {
		t.Errorf("CheckpointAt(%d) = %q, want the note stored instead", cs[0].Size, c.Note)
	}
	_, err = s.CheckpointAt(ctx, f.w.Info.ID, cs[len(cs)-1].Size)
	isNotFound(t, "CheckpointAt(the deleted checkpoint)", err)
	c, err = s.CheckpointAt(ctx, f.w.Info.ID, cs[1].Size)
	must(t, "CheckpointAt", err)
	checkCheckpoint(t, "CheckpointAt(a checkpoint left alone)", &c, cs[1])
}

func testTamperPostings(t *testing.T, f *tampered) {
	ctx := context.Background()
	words11 := derive.Words(f.w.Events[11])
	must(t, "DeletePostings(actor, every value)", f.tp.DeletePostings(ctx, "audit", store.IndexActor, "", 0, f.w.Size()))
	must(t, "AddPosting(ip)", f.tp.AddPosting(ctx, "audit", store.Posting{Index: store.IndexIP, Value: "203.0.113.99", Seqs: []int64{5}}))
	must(t, "AddPosting(target)", f.tp.AddPosting(ctx, "audit", store.Posting{Index: store.IndexTarget, Value: "planet", ID: "mars", Seqs: []int64{6}}))
	must(t, "AddPosting(text)", f.tp.AddPosting(ctx, "audit", store.Posting{Index: store.IndexText, Value: "needlessly", Seqs: []int64{7}}))
	must(t, "DeletePostings(text of event 9)", f.tp.DeletePostings(ctx, "audit", store.IndexText, "", 9, 10))
	must(t, "DeletePostings(a word of event 11)", f.tp.DeletePostings(ctx, "audit", store.IndexText, words11[0], 11, 12))
	if err := f.tp.DeletePostings(ctx, "audit", store.IndexText, "xyzzy", 0, 20); err == nil {
		t.Errorf("DeletePostings of a word no event holds = nil, want an error")
	}

	s := f.reopen(t)
	d, ok := s.(store.Derived)
	if !ok {
		t.Skipf("%T does not implement store.Derived: the postings are not read", s)
	}
	ps, err := d.Postings(ctx, f.w.Info.ID, 0, f.w.Size(), []string{"needlessly"})
	must(t, "Postings", err)
	found := map[PostingKey][]int64{}
	for _, p := range ps {
		found[PostingKey{Index: p.Index, Value: p.Value, ID: p.ID}] = p.Seqs
		if p.Index == store.IndexActor {
			t.Errorf("Postings lists actor %q at %v after every actor posting was deleted", p.Value, short(p.Seqs))
		}
	}
	for k, want := range map[PostingKey][]int64{
		{Index: store.IndexIP, Value: "203.0.113.99"}:           {5},
		{Index: store.IndexTarget, Value: "planet", ID: "mars"}: {6},
		{Index: store.IndexText, Value: "needlessly"}:           {7},
		{Index: store.IndexAction, Value: f.w.Events[0].Action}: nil, // still there
	} {
		got, ok := found[k]
		if !ok || want != nil && !slices.Equal(got, want) {
			t.Errorf("Postings lists %+v at %v (%v), want %v", k, got, ok, want)
		}
	}
	words := map[int64][]string{}
	must(t, "Words", d.Words(ctx, f.w.Info.ID, f.w.Size(), func(word string, seq int64) error {
		if seq == 9 || seq == 11 {
			words[seq] = append(words[seq], word)
		}
		return nil
	}))
	if len(words[9]) != 0 {
		t.Errorf("Words lists %q for event 9, whose words were deleted", words[9])
	}
	slices.Sort(words[11])
	want11 := slices.Sorted(slices.Values(words11[1:]))
	if !slices.Equal(words[11], want11) {
		t.Errorf("Words lists %q for event 11, want %q: all its words but %q", words[11], want11, words11[0])
	}
}

func testTamperCounts(t *testing.T, f *tampered) {
	ctx := context.Background()
	var hour *store.CountKey
	var all string
	must(t, "EditCounts", f.tp.EditCounts(ctx, "audit", func(r *store.CountRow) bool {
		switch {
		case r.Span == store.SpanDay:
			return false
		case r.Span == store.SpanHour && hour == nil:
			hour = &store.CountKey{Dim: r.Dim, Span: r.Span, Hour: r.Hour, Value: r.Value}
			r.Total += 7
		case r.Span == store.SpanAll && all == "":
			all = r.Value
			r.Total -= 100
		}
		return true
	}))
	if hour == nil || all == "" {
		t.Fatalf("EditCounts passed no hourly count (%v) or no count of all time (%q)", hour, all)
	}
	s := f.reopen(t)
	d, ok := s.(store.Derived)
	if !ok {
		t.Skipf("%T does not implement store.Derived: the counts are not read", s)
	}
	stored := map[store.CountKey]store.Counts{}
	_, err := d.Counts(ctx, f.w.Info.ID, func(r store.CountRow) error {
		stored[r.CountKey] = r.Counts
		if r.Span == store.SpanDay && r.Total != 0 {
			t.Errorf("Counts lists %+v after every daily count was deleted", r)
		}
		return nil
	})
	must(t, "Counts", err)
	want := WantDerived(f.w.Events, 0, f.w.Size(), f.w.Size(), f.w.Size()).Counts
	if got, w := stored[*hour].Total, want[*hour].Total+7; got != w {
		t.Errorf("Counts of %+v = %d, want %d: 7 added", *hour, got, w)
	}
	k := store.CountKey{Dim: store.CountAction, Span: store.SpanAll, Value: all}
	if got, w := stored[k].Total, want[k].Total-100; got != w {
		t.Errorf("Counts of %+v = %d, want %d: 100 taken away", k, got, w)
	}
}

func testTamperLockWrites(t *testing.T, f *tampered) {
	ctx := context.Background()
	s := f.reopen(t)
	must(t, "Writable", s.Writable(ctx))
	unlock, err := f.tp.LockWrites(ctx)
	must(t, "LockWrites", err)
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	err = s.Writable(wctx)
	cancel()
	if err == nil {
		t.Errorf("Writable while LockWrites holds the lock = nil, want an error")
	}
	must(t, "unlock", unlock())
	must(t, "Writable once unlocked", s.Writable(ctx))
}

func testTamperFailIndexing(t *testing.T, f *tampered) {
	ctx := context.Background()
	restore, err := f.tp.FailIndexing(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("FailIndexing = %v", err)
	}
	must(t, "FailIndexing", err)
	s := f.reopen(t)
	f.w.Append(t, s, recvAt(10), Events(5, 122)...)
	ix, ok := s.(store.Indexes)
	if !ok {
		t.Fatalf("%T does not implement store.Indexes", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		is, err := ix.IndexStatus(ctx)
		must(t, "IndexStatus", err)
		if is.Err != nil && strings.Contains(is.Err.Error(), IndexingRefused) && is.Failures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IndexStatus after FailIndexing = %+v, want a failure saying %q", is, IndexingRefused)
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, "restore", restore())
	waitIndexed(t, ix, f.w)
	CheckSearch(t, ix, f.w, store.Query{From: 600, To: -1}, false)
}
