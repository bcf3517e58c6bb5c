package verify

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
)

const origin = "example.com/trail/verify-test"

// testKey signs the checkpoints of the test logs.
var testKey = sync.OnceValues(func() (note.Signer, note.Verifier) {
	skey, vkey, err := merkle.NewKey(origin)
	if err != nil {
		panic(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err)
	}
	return s, v
})

var base = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// makeEvent returns the event at seq of an honest test log: received a
// millisecond after the one before.
func makeEvent(seq int64) *event.Event {
	at := base.Add(time.Duration(seq) * time.Millisecond)
	return &event.Event{
		ID:         fmt.Sprintf("evt_%010d", seq),
		Seq:        seq,
		Log:        "test",
		ReceivedAt: at,
		Time:       at.Add(-time.Second),
		Actor:      event.Actor{ID: fmt.Sprintf("user-%d", seq%7), Type: event.ActorUser},
		Action:     "user.login",
		Targets:    []event.Target{{Type: "account", ID: fmt.Sprint(seq % 11)}},
		Outcome:    event.Success,
	}
}

// leaf returns the leaf hash of e.
func leaf(e *event.Event) tlog.Hash {
	return tlog.RecordHash(canon.Append(nil, e))
}

// testLog is a log held in memory, as a store would hold it: events
// [0, size), made by makeEvent and then changed by alter, and the tiles
// and checkpoints of the honest log, built with merkle.Appender.
type testLog struct {
	size        int64
	alter       map[int64]func(e *event.Event) // changes the stored event at seq
	drop        map[int64]bool                 // seqs not stored
	fail        map[int64]error                // Walk fails with it on reaching seq
	checkpoints []Checkpoint
	tiles       map[[2]int64][]byte
	root        tlog.Hash // of the honest log
}

// newTestLog builds an honest log committed in batches ending at each of
// ends, with a signed checkpoint and the changed tiles stored after each.
func newTestLog(t testing.TB, ends ...int64) *testLog {
	t.Helper()
	signer, _ := testKey()
	l := &testLog{tiles: make(map[[2]int64][]byte)}
	app, err := merkle.NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range ends {
		for seq := app.Size(); seq < end; seq++ {
			app.Append(leaf(makeEvent(seq)))
		}
		for _, tile := range app.Flush() {
			l.tiles[[2]int64{int64(tile.Level), tile.Index}] = tile.Data
		}
		l.checkpoints = append(l.checkpoints, sign(t, signer, end, app.Root()))
	}
	l.size, l.root = app.Size(), app.Root()
	return l
}

// sign returns a checkpoint of size and root, signed by s.
func sign(t testing.TB, s note.Signer, size int64, root tlog.Hash) Checkpoint {
	t.Helper()
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: s.Name(), Size: size, Hash: root}, s)
	if err != nil {
		t.Fatal(err)
	}
	return Checkpoint{Size: size, Note: signed}
}

func (l *testLog) Checkpoints(ctx context.Context) iter.Seq2[Checkpoint, error] {
	return func(yield func(Checkpoint, error) bool) {
		for _, c := range l.checkpoints {
			if !yield(c, nil) {
				return
			}
		}
	}
}

func (l *testLog) Walk(ctx context.Context, from, to int64, fn func(*event.Event) error) error {
	for seq := from; seq < min(to, l.size); seq++ {
		if err := l.fail[seq]; err != nil {
			return err
		}
		if l.drop[seq] {
			continue
		}
		e := makeEvent(seq)
		if f := l.alter[seq]; f != nil {
			f(e)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// tiledLog is a testLog that also gives Check its tiles.
type tiledLog struct{ *testLog }

func (l tiledLog) Tile(ctx context.Context, level int, index int64) ([]byte, error) {
	return l.tiles[[2]int64{int64(level), index}], nil
}

// An honest log verifies, with and without its tiles, against each of its
// checkpoints, reading in parallel and one range after another.
func TestCheckGood(t *testing.T) {
	_, v := testKey()
	ends := []int64{1, 10, 11, 20, 300, 301, 700, 40000}
	l := newTestLog(t, ends...)
	for _, src := range []Source{l, tiledLog{l}} {
		for _, readers := range []int{0, 1, 3} {
			for _, against := range []*Checkpoint{nil, &l.checkpoints[0], &l.checkpoints[4], &l.checkpoints[len(ends)-1]} {
				name := fmt.Sprintf("%T/readers=%d/against=%v", src, readers, against != nil)
				opts := Options{Verifier: v, Readers: readers}
				if against != nil {
					opts.Against = against.Note
					name += fmt.Sprint(against.Size)
				}
				var last atomic.Int64
				opts.Progress = func(done, total int64) {
					if done <= last.Load() || total != l.size {
						t.Errorf("%s: Progress(%d, %d) after %d", name, done, total, last.Load())
					}
					last.Store(done)
				}
				rep, err := Check(context.Background(), src, l.size, opts)
				if err != nil {
					t.Fatalf("%s: Check = %v", name, err)
				}
				if rep.Size != l.size || rep.Root != l.root || rep.Checkpoints != len(ends) {
					t.Errorf("%s: Check = size %d, root %v, %d checkpoints; want %d, %v, %d", name, rep.Size, rep.Root, rep.Checkpoints, l.size, l.root, len(ends))
				}
				if against != nil && (rep.Against == nil || rep.Against.Size != against.Size) {
					t.Errorf("%s: Check.Against = %+v, want size %d", name, rep.Against, against.Size)
				}
				if last.Load() != l.size {
					t.Errorf("%s: last Progress at %d, want %d", name, last.Load(), l.size)
				}
			}
		}
	}
	// The empty log, with no checkpoint or one of size 0.
	empty := newTestLog(t)
	if rep, err := Check(context.Background(), empty, 0, Options{Verifier: v}); err != nil || rep.Size != 0 || rep.Checkpoints != 0 {
		t.Errorf("Check(empty log) = %+v, %v; want size 0, no error", rep, err)
	}
	empty = newTestLog(t, 0)
	if rep, err := Check(context.Background(), tiledLog{empty}, 0, Options{Verifier: v, Against: empty.checkpoints[0].Note}); err != nil || rep.Size != 0 {
		t.Errorf("Check(empty log, against its checkpoint of size 0) = %+v, %v; want size 0, no error", rep, err)
	}
}

// Special values of checkCase.seq.
const noSeq = -1 // the fault is not tied to one event

type checkCase struct {
	name    string
	tiles   bool                                  // check with the stored tiles
	tamper  func(t *testing.T, l *testLog) []byte // changes l; returns the checkpoint to verify against, if any
	seq     int64                                 // Error.Seq wanted
	problem string                                // in Error.Problem
}

// checkpointAt returns the index of l's checkpoint of size.
func checkpointAt(t *testing.T, l *testLog, size int64) int {
	for i, c := range l.checkpoints {
		if c.Size == size {
			return i
		}
	}
	t.Fatalf("no checkpoint of size %d", size)
	return -1
}

// otherHistory returns a checkpoint of size, signed with the log's key,
// of a history where the event at seq differs.
func otherHistory(t *testing.T, size, seq int64) []byte {
	signer, _ := testKey()
	app, _ := merkle.NewAppender(0, nil)
	for i := range size {
		e := makeEvent(i)
		if i == seq {
			e.Actor.ID = "mallory"
		}
		app.Append(leaf(e))
	}
	return sign(t, signer, size, app.Root()).Note
}

func checkCases() []checkCase {
	actor := func(e *event.Event) { e.Actor.ID = "mallory" }
	return []checkCase{
		// An altered event: a checkpoint of its own names it,
		{name: "event of a one-event batch altered", seq: 10, problem: "does not match the signed checkpoint of that size, while that of the first 10 does: event 10 was altered",
			tamper: func(t *testing.T, l *testLog) []byte { l.alter = map[int64]func(*event.Event){10: actor}; return nil }},
		// one of a larger batch only its batch, unless a full tile has it.
		{name: "event of a batch altered", seq: noSeq, problem: "history was rewritten among events 20 to 299",
			tamper: func(t *testing.T, l *testLog) []byte { l.alter = map[int64]func(*event.Event){100: actor}; return nil }},
		{name: "event of a batch altered, tiles", tiles: true, seq: 100, problem: "stored Merkle hashes (tile 0/0) do not match the events",
			tamper: func(t *testing.T, l *testLog) []byte { l.alter = map[int64]func(*event.Event){100: actor}; return nil }},
		{name: "event altered in the second window", tiles: true, seq: windowSize + 1234, problem: "stored Merkle hashes (tile 0/",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.alter = map[int64]func(*event.Event){windowSize + 1234: actor}
				return nil
			}},
		{name: "first event altered", seq: 0, problem: "root of the first 1 events does not match the signed checkpoint of that size: event 0 was altered",
			tamper: func(t *testing.T, l *testLog) []byte { l.alter = map[int64]func(*event.Event){0: actor}; return nil }},
		{name: "event dropped", seq: 50, problem: "event missing (next stored event is seq 51)",
			tamper: func(t *testing.T, l *testLog) []byte { l.drop = map[int64]bool{50: true}; return nil }},
		{name: "event dropped, tiles", tiles: true, seq: 50, problem: "event missing (next stored event is seq 51)",
			tamper: func(t *testing.T, l *testLog) []byte { l.drop = map[int64]bool{50: true}; return nil }},
		{name: "event dropped at a part's start", tiles: true, seq: 2 * partSize, problem: fmt.Sprintf("event missing (next stored event is seq %d)", 2*partSize+1),
			tamper: func(t *testing.T, l *testLog) []byte { l.drop = map[int64]bool{2 * partSize: true}; return nil }},
		{name: "last event dropped", seq: 39999, problem: "event missing: the log should hold 40000 events but ends at 39999",
			tamper: func(t *testing.T, l *testLog) []byte { l.drop = map[int64]bool{39999: true}; return nil }},
		{name: "events swapped", tiles: true, seq: 30, problem: "stored Merkle hashes (tile 0/0)",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.alter = map[int64]func(*event.Event){
					30: func(e *event.Event) { *e = *makeEvent(40); e.Seq = 30 },
					40: func(e *event.Event) { *e = *makeEvent(30); e.Seq = 40 },
				}
				return nil
			}},
		{name: "received_at before the previous event's", seq: 5000, problem: "received_at 2026-03-01T09:00:04.5Z is earlier than the previous event's",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.alter = map[int64]func(*event.Event){5000: func(e *event.Event) { e.ReceivedAt = base.Add(4500 * time.Millisecond) }}
				return nil
			}},
		{name: "received_at before the previous part's", seq: partSize, problem: "is earlier than the previous event's",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.alter = map[int64]func(*event.Event){partSize: func(e *event.Event) { e.ReceivedAt = base }}
				return nil
			}},
		{name: "event unreadable", seq: 777, problem: "stored events cannot be read: bundle 3 is garbage",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.fail = map[int64]error{777: Unreadable(errors.New("bundle 3 is garbage"))}
				return nil
			}},
		{name: "stored tile hash altered", tiles: true, seq: 256 + 5, problem: "stored Merkle hashes (tile 0/1)",
			tamper: func(t *testing.T, l *testLog) []byte { l.tiles[[2]int64{0, 1}][5*32+7] ^= 1; return nil }},
		{name: "level-1 tile hash altered", tiles: true, seq: 3 * 256, problem: "stored Merkle hashes (tile 1/0)",
			tamper: func(t *testing.T, l *testLog) []byte { l.tiles[[2]int64{1, 0}][3*32] ^= 1; return nil }},
		{name: "stored tile missing", tiles: true, seq: 512, problem: "stored Merkle hashes (tile 0/2)",
			tamper: func(t *testing.T, l *testLog) []byte { delete(l.tiles, [2]int64{0, 2}); return nil }},
		{name: "checkpoint signature altered", seq: noSeq, problem: "checkpoint of size 300: signature or format does not verify",
			tamper: func(t *testing.T, l *testLog) []byte {
				c := &l.checkpoints[checkpointAt(t, l, 300)]
				c.Note = append([]byte(nil), c.Note...)
				c.Note[len(c.Note)-20] ^= 1
				return nil
			}},
		{name: "checkpoint signed by another key", seq: noSeq, problem: "checkpoint of size 20: signature or format does not verify",
			tamper: func(t *testing.T, l *testLog) []byte {
				skey, _, err := merkle.NewKey(origin)
				if err != nil {
					t.Fatal(err)
				}
				s, err := note.NewSigner(skey)
				if err != nil {
					t.Fatal(err)
				}
				l.checkpoints[checkpointAt(t, l, 20)] = sign(t, s, 20, l.root)
				return nil
			}},
		{name: "checkpoint stored under another size", seq: noSeq, problem: "checkpoint stored as size 20 is signed for size 11",
			tamper: func(t *testing.T, l *testLog) []byte {
				l.checkpoints[checkpointAt(t, l, 20)].Note = l.checkpoints[checkpointAt(t, l, 11)].Note
				return nil
			}},
		{name: "checkpoint root not the tree's", seq: noSeq, problem: "root of the first 700 events does not match the signed checkpoint of that size, while that of the first 301 does: history was rewritten among events 301 to 699",
			tamper: func(t *testing.T, l *testLog) []byte {
				signer, _ := testKey()
				l.checkpoints[checkpointAt(t, l, 700)] = sign(t, signer, 700, tlog.Hash{1})
				return nil
			}},
		{name: "log truncated below a checkpoint", seq: 35000, problem: "log holds 35000 events but a checkpoint was signed for 40000: events were deleted (truncated)",
			tamper: func(t *testing.T, l *testLog) []byte { l.size = 35000; return nil }},
		{name: "events past the last checkpoint", seq: 40000, problem: "no signed checkpoint covers events 40000 to 40009",
			tamper: func(t *testing.T, l *testLog) []byte { l.size = 40010; return nil }},
		{name: "history forked before the saved checkpoint", seq: noSeq, problem: "not consistent with the checkpoint verified against: the first 300 events differ",
			tamper: func(t *testing.T, l *testLog) []byte { return otherHistory(t, 300, 150) }},
		{name: "history forked before the saved checkpoint, tiles", tiles: true, seq: noSeq, problem: "not consistent with the checkpoint verified against: the first 300 events differ",
			tamper: func(t *testing.T, l *testLog) []byte { return otherHistory(t, 300, 150) }},
		{name: "saved checkpoint of an unsigned size", seq: noSeq, problem: "not consistent with the checkpoint verified against: the first 123 events differ",
			tamper: func(t *testing.T, l *testLog) []byte { return otherHistory(t, 123, 122) }},
		{name: "saved checkpoint larger than the log", tiles: true, seq: 40000, problem: "log holds 40000 events, fewer than the 40001 of the checkpoint verified against",
			tamper: func(t *testing.T, l *testLog) []byte { return otherHistory(t, 40001, 0) }},
		{name: "saved checkpoint of another key", seq: noSeq, problem: "checkpoint to verify against: ",
			tamper: func(t *testing.T, l *testLog) []byte {
				skey, _, _ := merkle.NewKey("example.com/elsewhere")
				s, _ := note.NewSigner(skey)
				return sign(t, s, 10, tlog.Hash{}).Note
			}},
	}
}

// Each way of tampering with a log is caught, naming the first bad event
// where one is to blame.
func TestCheckTampered(t *testing.T) {
	_, v := testKey()
	ends := []int64{1, 10, 11, 20, 300, 301, 700, 40000}
	for _, c := range checkCases() {
		t.Run(c.name, func(t *testing.T) {
			var l *testLog
			if c.seq >= windowSize {
				if testing.Short() {
					t.Skip("builds a log of more than one window of events")
				}
				l = newTestLog(t, append(ends, windowSize+3*partSize+7)...)
			} else {
				l = newTestLog(t, ends...)
			}
			against := c.tamper(t, l)
			var src Source = l
			if c.tiles {
				src = tiledLog{l}
			}
			rep, err := Check(context.Background(), src, l.size, Options{Verifier: v, Against: against})
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("Check = %+v, %v; want an *Error", rep, err)
			}
			if ve.Seq != c.seq || !strings.Contains(ve.Problem, c.problem) {
				t.Errorf("Check = %v; want seq %d, a problem saying %q", err, c.seq, c.problem)
			}
		})
	}
}

// A Walk that cannot read is an error of its own, not a finding.
func TestCheckReadError(t *testing.T) {
	_, v := testKey()
	l := newTestLog(t, 10, 1000)
	disk := errors.New("disk on fire")
	l.fail = map[int64]error{500: disk}
	_, err := Check(context.Background(), l, l.size, Options{Verifier: v})
	var ve *Error
	if !errors.Is(err, disk) || errors.As(err, &ve) {
		t.Errorf("Check with a failing Walk = %v; want the read error, not an *Error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Check(ctx, newTestLog(t, 10), 10, Options{Verifier: v}); !errors.Is(err, context.Canceled) {
		t.Errorf("Check(canceled) = %v, want context.Canceled", err)
	}
}

// streamLog is a testLog read as one stream: Walk must be called for
// consecutive ranges, one at a time.
type streamLog struct {
	*testLog
	t       *testing.T
	next    int64
	walking atomic.Bool
	calls   int
}

func (s *streamLog) Walk(ctx context.Context, from, to int64, fn func(*event.Event) error) error {
	if !s.walking.CompareAndSwap(false, true) {
		s.t.Errorf("Walk(%d, %d) called while another runs", from, to)
	}
	defer s.walking.Store(false)
	if from != s.next {
		s.t.Errorf("Walk(%d, %d), want it to start at %d", from, to, s.next)
	}
	s.next = to
	s.calls++
	return s.testLog.Walk(ctx, from, to, fn)
}

// With Readers 1 Check reads consecutive ranges in order.
func TestCheckOneReader(t *testing.T) {
	_, v := testKey()
	s := &streamLog{testLog: newTestLog(t, 10, 3*partSize+5), t: t}
	if _, err := Check(context.Background(), s, s.size, Options{Verifier: v, Readers: 1}); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if s.next != s.size || s.calls != 4 {
		t.Errorf("Walk read up to %d in %d calls, want %d in 4", s.next, s.calls, s.size)
	}
}

// A log of more than one window of events verifies.
func TestCheckWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a log of more than one window of events")
	}
	_, v := testKey()
	l := newTestLog(t, 5, windowSize, windowSize+1, 2*windowSize+3)
	rep, err := Check(context.Background(), tiledLog{l}, l.size, Options{Verifier: v, Against: l.checkpoints[1].Note})
	if err != nil || rep.Root != l.root || rep.Checkpoints != 4 {
		t.Errorf("Check = %+v, %v; want root %v and 4 checkpoints", rep, err, l.root)
	}
}

func TestCheckNoVerifier(t *testing.T) {
	if _, err := Check(context.Background(), newTestLog(t, 1), 1, Options{}); err == nil {
		t.Error("Check without a verifier = nil error")
	}
}

// TestCheckLogName: with Options.Log, every event must name that log;
// an intact log verified as another (renamed, say) fails at its first
// event, though every hash matches.
func TestCheckLogName(t *testing.T) {
	_, v := testKey()
	l := newTestLog(t, 10, 300)
	if _, err := Check(context.Background(), tiledLog{l}, l.size, Options{Verifier: v, Log: "test"}); err != nil {
		t.Fatalf("Check(Log: the events' own) = %v", err)
	}
	_, err := Check(context.Background(), tiledLog{l}, l.size, Options{Verifier: v, Log: "other"})
	var ve *Error
	if !errors.As(err, &ve) || ve.Seq != 0 || !strings.Contains(err.Error(), `the event names log "test", not "other"`) {
		t.Errorf("Check(Log: another) = %v, want an *Error at seq 0 naming both", err)
	}
}
