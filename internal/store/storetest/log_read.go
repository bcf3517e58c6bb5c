package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// specialEvents are events at the edges of what a stored event may hold.
func specialEvents() []struct {
	name string
	e    event.Event
} {
	zone := time.FixedZone("UTC-3:30", -(3*3600 + 1800))
	many := make([]event.Target, 100)
	for i := range many {
		many[i] = event.Target{Type: "user", ID: fmt.Sprintf("u%d", i)}
	}
	return []struct {
		name string
		e    event.Event
	}{
		{"minimal", event.Event{Actor: event.Actor{ID: "a"}, Action: "x"}},
		{"every field", event.Event{
			Time:      time.Date(2024, 12, 31, 23, 59, 59, 999999999, zone),
			Actor:     event.Actor{ID: "alice", Type: event.ActorUser, Name: "Alice", Email: "alice@example.com", Role: "owner"},
			Action:    "document.update",
			Targets:   []event.Target{{Type: "document", ID: "doc-1", Name: "Plan"}, {Type: "org", ID: "org-1"}},
			Outcome:   event.Failure,
			Reason:    "conflicting edit",
			Source:    event.Source{IP: "2001:DB8:0:0::A", UserAgent: "curl/8.0"},
			RequestID: "req-123",
			TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
			Changes:   &event.Changes{Before: json.RawMessage(`{"b": 2, "a": 1}`), After: json.RawMessage(`{ "a": [1, {"x": true}] }`)},
			Metadata:  json.RawMessage(`{"z": "last", "a": {"nested": [null, false, 1.5]}}`),
		}},
		{"nil targets", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Targets: nil}},
		{"empty targets", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Targets: []event.Target{}}},
		{"targets with and without names", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Targets: []event.Target{
			{Type: "user", ID: "u1", Name: "Ünïcode Ñame"}, {Type: "user", ID: "u2"}, {Type: "group", ID: "g 1", Name: "with space"},
		}}},
		{"unicode", event.Event{
			Actor:    event.Actor{ID: "zoë", Name: "Zoë 東京 🙂", Email: "zoë@例え.jp"},
			Action:   "user.login",
			Reason:   "İstanbul\tÉCOLE\nΟΔΟΣ\r\n",
			Targets:  []event.Target{{Type: "place", ID: "東京", Name: "Straße"}},
			Metadata: json.RawMessage(`{"k": "\u00fc\u00e9 \ud83d\ude42"}`),
		}},
		{"escapes", event.Event{
			Actor:    event.Actor{ID: `quote"back\slash`},
			Action:   "x",
			Reason:   `say "hi" \ <b>&amp;</b>`,
			Metadata: json.RawMessage(`{"html": "<script>&</script>", "q": "\"", "ws": "\t\n\r"}`),
		}},
		{"denied", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Outcome: event.Denied}},
		{"error", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Outcome: event.Errored}},
		{"explicit success", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Outcome: event.Success}},
		{"changes before only", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Changes: &event.Changes{Before: json.RawMessage(`"gone"`)}}},
		{"changes after only", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Changes: &event.Changes{After: json.RawMessage(`[]`)}}},
		{"metadata numbers", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Metadata: json.RawMessage(`{"big": 1e+21, "small": 0.000001, "tiny": 1e-7, "zero": 0, "int": 9007199254740991, "max": 1.7976931348623157e+308}`)}},
		{"ipv4 in ipv6", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Source: event.Source{IP: "::FFFF:10.1.2.3"}}},
		{"user agent only", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Source: event.Source{UserAgent: "agent"}}},
		{"long reason", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Reason: strings.Repeat("ab ", 1365)}},
		{"100 targets", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Targets: many}},
		{"time at the epoch", event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Time: time.Unix(0, 0)}},
	}
}

func testGet(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	special := specialEvents()
	var evs []event.Event
	for _, c := range special {
		evs = append(evs, c.e)
	}
	w.Append(t, s, recvAt(0), evs...)
	appendBatches(t, s, w, Events(400, 40), 1, 1, 99, 300)
	for i, c := range special {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Get(ctx, w.Info.ID, int64(i))
			if err != nil {
				t.Fatalf("Get(%d) = %v", i, err)
			}
			want := w.Events[i]
			checkEvent(t, fmt.Sprintf("Get(%d)", i), got, want)
			if got.Seq != want.Seq || got.Log != w.Info.Name || got.ID != want.ID || got.Outcome != want.Outcome {
				t.Errorf("Get(%d) = seq %d, log %q, id %s, outcome %q; want %d, %q, %s, %q",
					i, got.Seq, got.Log, got.ID, got.Outcome, want.Seq, w.Info.Name, want.ID, want.Outcome)
			}
		})
	}
	t.Run("generated", func(t *testing.T) {
		for seq := len(special); seq < len(w.Events); seq++ {
			got, err := s.Get(ctx, w.Info.ID, int64(seq))
			if err != nil {
				t.Fatalf("Get(%d) = %v", seq, err)
			}
			checkEvent(t, fmt.Sprintf("Get(%d)", seq), got, w.Events[seq])
		}
	})
}

// scanAll collects Scan(from, to).
func scanAll(t *testing.T, s store.Log, log, from, to int64) []*event.Event {
	t.Helper()
	var out []*event.Event
	for e, err := range s.Scan(context.Background(), log, from, to) {
		if err != nil {
			t.Fatalf("Scan(%d, %d) failed after %d events: %v", from, to, len(out), err)
		}
		out = append(out, e)
	}
	return out
}

func checkScan(t *testing.T, s store.Log, w *Writer, from, to int64) {
	t.Helper()
	got := scanAll(t, s, w.Info.ID, from, to)
	lo, hi := max(from, 0), min(to, w.Size())
	var want []*event.Event
	if lo < hi {
		want = w.Events[lo:hi]
	}
	if len(got) != len(want) {
		t.Fatalf("Scan(%d, %d) = seqs %s, want %s", from, to, short(seqs(got)), short(seqs(want)))
	}
	for i := range got {
		checkEvent(t, fmt.Sprintf("Scan(%d, %d) event %d", from, to, i), got[i], want[i])
	}
}

func testScan(t *testing.T, s store.Log) {
	w := NewWriter(t, s, "audit")
	appendBatches(t, s, w, Events(700, 50), 0, 1, 255, 1, 200, 243)
	size := w.Size()
	cases := []struct {
		name     string
		from, to int64
	}{
		{"all", 0, size},
		{"past the end", 0, size + 100},
		{"to the largest seq", 0, 1 << 40},
		{"to MaxInt64", 0, 1<<63 - 1},
		{"negative from", -5, 10},
		{"middle", 10, 20},
		{"across a tile", 250, 260},
		{"one", 256, 257},
		{"last", size - 1, size},
		{"at the end", size, size + 10},
		{"empty", 30, 30},
		{"reversed", 20, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkScan(t, s, w, c.from, c.to) })
	}
	t.Run("stop early", func(t *testing.T) {
		n := 0
		for _, err := range s.Scan(context.Background(), w.Info.ID, 0, size) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 3 {
				break
			}
		}
		checkScan(t, s, w, 0, size)
	})
}

// testLarge scans a log longer than the chunks a backend may read it in
// (the SQLite store reads 20000 events per transaction).
func testLarge(t *testing.T, s store.Log) {
	if raceEnabled {
		t.Skip("too slow under the race detector; covered by runs without it")
	}
	w := NewWriter(t, s, "audit")
	appendBatches(t, s, w, Events(20600, 60), 0, 7000, 7000, 6600)
	size := w.Size()
	for _, r := range [][2]int64{{0, size}, {0, 1 << 40}, {19990, 20010}, {19999, 20001}, {20000, size + 5}, {1, 20000}} {
		t.Run(fmt.Sprintf("Scan %d-%d", r[0], r[1]), func(t *testing.T) { checkScan(t, s, w, r[0], r[1]) })
	}
	t.Run("Scan stopped after the first chunk", func(t *testing.T) {
		n := 0
		for _, err := range s.Scan(context.Background(), w.Info.ID, 0, size) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 20005 {
				break
			}
		}
		if n != 20005 {
			t.Fatalf("Scan stopped at %d events", n)
		}
	})
}

func testCheckpoints(t *testing.T, s store.Log) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	other := NewWriter(t, s, "other")
	evs := Events(800, 80)
	for i, n := range []int{1, 2, 253, 1, 300, 243} {
		w.Append(t, s, recvAt(i), evs[:n]...)
		other.Append(t, s, recvAt(i), evs[:n/2+1]...)
		evs = evs[n:]
	}
	CheckLog(t, s, w)
	CheckLog(t, s, other)
	for i, want := range w.Checkpoints {
		got, err := s.CheckpointAt(ctx, w.Info.ID, want.Size)
		if err != nil {
			t.Fatalf("CheckpointAt(%d) = %v", want.Size, err)
		}
		checkCheckpoint(t, fmt.Sprintf("CheckpointAt(%d)", want.Size), &got, want)
		c, _, err := merkle.Open(got.Note, w.Verifier)
		if err != nil {
			t.Fatalf("merkle.Open(CheckpointAt(%d)) = %v", want.Size, err)
		}
		if c.Size != want.Size || c.Hash != w.TreeHash(t, want.Size) {
			t.Errorf("CheckpointAt(%d) signs size %d, root %v; want the tree's root %v", want.Size, c.Size, c.Hash, w.TreeHash(t, want.Size))
		}
		if i > 0 && want.Size-w.Checkpoints[i-1].Size > 1 {
			between := want.Size - 1
			_, err := s.CheckpointAt(ctx, w.Info.ID, between)
			isNotFound(t, fmt.Sprintf("CheckpointAt(%d) between checkpoints", between), err)
		}
	}
	n := 0
	for _, err := range s.Checkpoints(ctx, w.Info.ID) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}
	CheckLog(t, s, w)
}

// isolationLogs fills two logs with overlapping seqs and the same kinds of
// values, beside an empty one, and checks that each holds what was
// committed to it.
func isolationLogs(t *testing.T, s store.Log) (a, b, empty *Writer) {
	t.Helper()
	a = NewWriter(t, s, "a")
	b = NewWriter(t, s, "b")
	empty = NewWriter(t, s, "empty")
	appendBatches(t, s, a, Events(600, 90), 0, 100, 500)
	appendBatches(t, s, b, Events(450, 91), 10, 300, 150)
	for _, w := range []*Writer{a, b, empty} {
		CheckLog(t, s, w)
	}
	return a, b, empty
}

// testIsolation checks that nothing of one log shows through another, and
// that a commit to one log leaves the others as they were.
func testIsolation(t *testing.T, s store.Log) {
	a, b, empty := isolationLogs(t, s)
	a.Append(t, s, recvAt(30), Events(10, 92)...)
	CheckLog(t, s, b)
	CheckLog(t, s, empty)
}

// concurrentReader is one kind of read of testConcurrent: it reads w's log,
// whose state was st a moment ago, and passes each event it gets to
// check. i counts the reader's reads.
type concurrentReader func(ctx context.Context, w *Writer, st store.State, i int, check func(what string, e *event.Event)) error

// readConcurrently commits 800 events a batch at a time while readers
// read in turn, each in a loop of its own, and checks that every read
// shows committed events only, exactly as committed.
func readConcurrently(t *testing.T, s store.Log, readers ...concurrentReader) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	var batches []store.Batch
	evs := Events(800, 100)
	for i := 0; len(evs) > 0; i++ {
		n := min(1+i*37%200, len(evs))
		b := w.Batch(t, recvAt(i), evs[:n]...)
		w.Committed(t, b)
		batches = append(batches, b)
		evs = evs[n:]
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	check := func(what string, got *event.Event) {
		if got.Seq < 0 || got.Seq >= w.Size() || string(canonical(got)) != string(canonical(w.Events[got.Seq])) {
			report(fmt.Errorf("%s returned seq %d not as committed", what, got.Seq))
		}
	}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				st, err := s.State(ctx, w.Info.ID)
				if err != nil {
					report(err)
					return
				}
				if err := readers[(r+i)%len(readers)](ctx, w, st, i, check); err != nil {
					report(err)
					return
				}
			}
		}()
	}
	for _, b := range batches {
		if err := s.Commit(ctx, []store.Batch{b}); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	CheckLog(t, s, w)
}

// testConcurrent scans, gets and resumes the tree while a batch at a time
// is committed.
func testConcurrent(t *testing.T, s store.Log) {
	scan := func(ctx context.Context, w *Writer, st store.State, _ int, check func(string, *event.Event)) error {
		n := int64(0)
		for e, err := range s.Scan(ctx, w.Info.ID, max(st.Size-300, 0), st.Size) {
			if err != nil {
				return err
			}
			check("Scan", e)
			n++
		}
		if want := min(st.Size, 300); n != want {
			return fmt.Errorf("scanning the last %d events of %d yielded %d", want, st.Size, n)
		}
		return nil
	}
	get := func(ctx context.Context, w *Writer, st store.State, _ int, check func(string, *event.Event)) error {
		if st.Size == 0 {
			return nil
		}
		e, err := s.Get(ctx, w.Info.ID, st.Size-1)
		if err != nil {
			return err
		}
		check("Get", e)
		return nil
	}
	resume := func(_ context.Context, _ *Writer, st store.State, _ int, _ func(string, *event.Event)) error {
		if _, err := merkle.NewAppender(st.Size, st.Rightmost); err != nil {
			return fmt.Errorf("the tree does not resume from State at size %d: %v", st.Size, err)
		}
		return nil
	}
	readConcurrently(t, s, scan, get, resume)
}
