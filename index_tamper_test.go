package trail_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// indexFixture is a closed store holding the log "audit" of indexEvents
// events, all indexed: in the SQLite store, the first segment's posting
// lists in the index tables, the second's in the posting tail.
type indexFixture struct {
	b   backends.Backend
	dir string
	evs []event.Event // as appended, evs[i] at seq i
}

const indexEvents = 20000

// newIndexFixture builds the fixture on backend b.
func newIndexFixture(t *testing.T, b backends.Backend) *indexFixture {
	t.Helper()
	ctx := context.Background()
	f := &indexFixture{b: b, dir: b.New(t), evs: storetest.Events(indexEvents, 61)}
	db, err := initAt(ctx, f.dir, trail.Options{Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, tamperLog, tamperOrigin)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(f.evs); i += 2500 {
		if _, err := l.AppendBatch(ctx, f.evs[i:i+2500]); err != nil {
			t.Fatal(err)
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

// TestVerifyIndex runs the tests of VerifyIndex and Reindex on one
// fixture, each on a copy.
func TestVerifyIndex(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) { testVerifyIndex(t, newIndexFixture(t, b)) })
}

func testVerifyIndex(t *testing.T, f *indexFixture) {
	t.Run("while indexing", func(t *testing.T) { testVerifyIndexWhileIndexing(t, f) })
	if raceEnabled {
		// Reading and rebuilding 20,000 events over and over takes
		// minutes under the race detector; what runs concurrently is
		// above.
		t.Skip("the checks of damaged indexes are left to runs without the race detector")
	}
	t.Run("clean", func(t *testing.T) { testVerifyIndexClean(t, f) })
	t.Run("tampered", func(t *testing.T) { testVerifyIndexTampered(t, f) })
	t.Run("bounded", func(t *testing.T) { testVerifyIndexBounded(t, f) })
}

// testVerifyIndexWhileIndexing checks the log while events are appended
// and indexed, segments completed and their tails merged, and rebuilt
// once by Reindex meanwhile: what the indexer has reached must match,
// whenever it is read.
func testVerifyIndexWhileIndexing(t *testing.T, f *indexFixture) {
	ctx := context.Background()
	l := openLog(t, f.b.Copy(t, f.dir), false)
	more := storetest.Events(16000, 62)
	appended := make(chan error, 1)
	go func() {
		for i := 0; i < len(more); i += 100 {
			if _, err := l.AppendBatch(ctx, more[i:i+100]); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	checks := 0
	for done := false; !done; checks++ {
		select {
		case err := <-appended:
			if err != nil {
				t.Fatal(err)
			}
			if err := l.WaitIndexed(ctx); err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		rep, err := l.VerifyIndex(ctx, trail.VerifyIndexOptions{})
		if err != nil {
			t.Fatalf("VerifyIndex while indexing, up to %d and %d of %d = %v:\n%s", rep.IndexedTo, rep.CountedTo, rep.Size, err, diffLines(rep))
		}
		if checks == 1 {
			if err := l.Reindex(ctx, trail.ReindexOptions{Progress: func(int64, int64) {}}); err != nil {
				t.Fatalf("Reindex while appending = %v", err)
			}
		}
		if done && (rep.IndexedTo != l.Size() || rep.CountedTo != l.Size()) {
			t.Errorf("VerifyIndex once indexed compared up to %d and %d, want %d", rep.IndexedTo, rep.CountedTo, l.Size())
		}
	}
	t.Logf("%d checks", checks)
}

// seqsWhere returns the seqs of the fixture's events for which keep holds.
func (f *indexFixture) seqsWhere(keep func(*event.Event) bool) []int64 {
	var out []int64
	for i := range f.evs {
		if keep(&f.evs[i]) {
			out = append(out, int64(i))
		}
	}
	return out
}

// found returns the seqs a search for q finds, ascending.
func found(t *testing.T, l *trail.Log, q api.Query) []int64 {
	t.Helper()
	var out []int64
	q.Limit = 10000
	for e, err := range l.Events(context.Background(), q) {
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		out = append(out, e.Seq)
	}
	slices.Sort(out)
	return out
}

// findDiff returns the difference VerifyIndex listed for index and value.
func findDiff(rep trail.IndexReport, index, value string) *trail.IndexDiff {
	for i, d := range rep.Diffs {
		if d.Index == index && d.Value == value {
			return &rep.Diffs[i]
		}
	}
	return nil
}

func verifyIndex(t *testing.T, l *trail.Log) (trail.IndexReport, error) {
	t.Helper()
	rep, err := l.VerifyIndex(context.Background(), trail.VerifyIndexOptions{})
	if err != nil && !errors.Is(err, trail.ErrIndexMismatch) {
		t.Fatalf("VerifyIndex = %v", err)
	}
	if rep.IndexedTo != l.Size() || rep.CountedTo != l.Size() {
		t.Errorf("VerifyIndex compared up to %d (indexes) and %d (counts), want all %d events", rep.IndexedTo, rep.CountedTo, l.Size())
	}
	return rep, err
}

func testVerifyIndexClean(t *testing.T, f *indexFixture) {
	l := openLog(t, f.b.Copy(t, f.dir), false)
	rep, err := verifyIndex(t, l)
	if err != nil {
		t.Fatalf("VerifyIndex of an untouched log = %v, differences %v", err, rep.Diffs)
	}
	if len(rep.Diffs) != 0 || rep.Unlisted != 0 {
		t.Errorf("VerifyIndex of an untouched log lists %v and %d more", rep.Diffs, rep.Unlisted)
	}
}

// testVerifyIndexTampered changes the derived data of a real database as
// someone who can write the file would, and checks that VerifyIndex names
// the index, the value and the events, and that Reindex repairs it so
// that searches find every event again.
func testVerifyIndexTampered(t *testing.T, f *indexFixture) {
	ctx := context.Background()
	// The first seq of the second segment of the SQLite store's indexes,
	// which the fixture holds in the posting tail.
	const seg1 = 1 << 14
	alice := f.seqsWhere(func(e *event.Event) bool { return e.Actor.ID == "alice" })
	aliceSeg0 := alice[:slices.IndexFunc(alice, func(s int64) bool { return s >= seg1 })]
	bob := f.seqsWhere(func(e *event.Event) bool { return e.Actor.ID == "bob" })
	bobSeg1 := bob[slices.IndexFunc(bob, func(s int64) bool { return s >= seg1 }):]
	logins := f.seqsWhere(func(e *event.Event) bool { return e.Action == "user.login" })
	ev9 := &f.evs[9]
	words9 := strings.Fields(derive.Text(ev9))

	type check struct {
		index, value   string
		missing, extra []int64 // all of them
		stored         int64   // for a count: its total as tampered
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, tp storetest.Tamperer)
		want   []check
		// search is a query whose results the tampering changed, and
		// want the seqs it must find once repaired.
		search api.Query
		find   []int64
		// actions are counts Actions must return once repaired, and
		// not before.
		actions map[string]int64
	}{
		{
			name: "an actor's posting row deleted",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.DeletePostings(ctx, tamperLog, store.IndexActor, "alice", 0, seg1))
			},
			want:   []check{{index: "actor", value: "alice", missing: aliceSeg0}},
			search: api.Query{Actor: "alice"}, find: alice,
		},
		{
			name: "an actor taken out of the posting tail",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				// Every actor's postings of the second segment go, bob's
				// events' and the others'.
				must(t, tp.DeletePostings(ctx, tamperLog, store.IndexActor, "", seg1, indexEvents))
			},
			want:   []check{{index: "actor", value: "bob", missing: bobSeg1}},
			search: api.Query{Actor: "bob"}, find: bob,
		},
		{
			name: "a posting row inserted",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.AddPosting(ctx, tamperLog, store.Posting{Index: store.IndexIP, Value: "203.0.113.99", Seqs: []int64{5}}))
			},
			want: []check{{index: "ip", value: "203.0.113.99", extra: []int64{5}}},
		},
		{
			name: "an hourly count changed",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				// bob's count of the hour of event bob[0].
				hour := store.HourOf(f.evs[bob[0]].Time)
				editCount(t, tp, store.CountKey{Dim: store.CountActor, Span: store.SpanHour, Hour: hour, Value: "bob"}, 7)
			},
			want: []check{{index: "counts by hour", value: "actor bob, " + f.evs[bob[0]].Time.UTC().Truncate(time.Hour).Format("2006-01-02 15:04") + " UTC"}},
		},
		{
			name: "an action count changed",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				editCount(t, tp, store.CountKey{Dim: store.CountAction, Span: store.SpanAll, Value: "user.login"}, -100)
			},
			want:    []check{{index: "action counts", value: "user.login", stored: int64(len(logins) - 100)}},
			actions: map[string]int64{"user.login": int64(len(logins))},
		},
		{
			name: "a word added to an event's text",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.AddPosting(ctx, tamperLog, store.Posting{Index: store.IndexText, Value: "needlessly", Seqs: []int64{7}}))
			},
			want:   []check{{index: "text", value: "needlessly", extra: []int64{7}}},
			search: api.Query{Text: "needlessly"}, find: nil,
		},
		{
			name: "an event's words deleted",
			tamper: func(t *testing.T, tp storetest.Tamperer) {
				must(t, tp.DeletePostings(ctx, tamperLog, store.IndexText, "", 9, 10))
			},
			want:   []check{{index: "text", value: words9[len(words9)-1], missing: []int64{9}}},
			search: api.Query{Text: strings.Join(words9, " ")},
			find: f.seqsWhere(func(e *event.Event) bool {
				return !slices.ContainsFunc(words9, func(w string) bool { return !slices.Contains(strings.Fields(derive.Text(e)), w) })
			}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := f.b.Copy(t, f.dir)
			tp := f.b.Tamper(t, dir)
			tc.tamper(t, tp)
			must(t, tp.Close())
			l := openLog(t, dir, false)
			if tc.search.Actor != "" || tc.search.Action != "" || tc.search.Text != "" {
				if got := found(t, l, tc.search); slices.Equal(got, tc.find) {
					t.Errorf("search %+v finds all %d events it should although the index was changed: the test changes nothing", tc.search, len(got))
				}
			}

			for a, n := range tc.actions {
				if got := actionCount(t, l, a); got == n {
					t.Errorf("Actions counts %d events of %s although the count was changed: the test changes nothing", got, a)
				}
			}

			rep, err := verifyIndex(t, l)
			if !errors.Is(err, trail.ErrIndexMismatch) {
				t.Fatalf("VerifyIndex = %v, want ErrIndexMismatch", err)
			}
			for _, c := range tc.want {
				d := findDiff(rep, c.index, c.value)
				if d == nil {
					t.Errorf("VerifyIndex lists no difference of %s %q; it lists:\n%s", c.index, c.value, diffLines(rep))
					continue
				}
				if d.MissingCount != int64(len(c.missing)) || !slices.Equal(d.Missing, c.missing[:min(10, len(c.missing))]) {
					t.Errorf("%s: missing %d: %v, want %d: %v", d, d.MissingCount, d.Missing, len(c.missing), c.missing[:min(10, len(c.missing))])
				}
				if d.ExtraCount != int64(len(c.extra)) || !slices.Equal(d.Extra, c.extra) {
					t.Errorf("%s: extra %d: %v, want %v", d, d.ExtraCount, d.Extra, c.extra)
				}
				if c.stored != 0 && (d.Stored == nil || d.Stored.Total != c.stored) {
					t.Errorf("%s: stored %v, want a total of %d", d, d.Stored, c.stored)
				}
				if strings.HasPrefix(c.index, "counts") && (d.Stored == nil || d.Derived == nil || d.Stored.Total != d.Derived.Total+7) {
					t.Errorf("%s: stored %v, derived %v: want 7 more stored", d, d.Stored, d.Derived)
				}
			}
			t.Logf("VerifyIndex found:\n%s", diffLines(rep))

			var last [2]int64
			progress := func(done, total int64) {
				if done < last[0] || done > total {
					t.Errorf("Reindex progress %d of %d after %d", done, total, last[0])
				}
				last = [2]int64{done, total}
			}
			if err := l.Reindex(context.Background(), trail.ReindexOptions{Progress: progress}); err != nil {
				t.Fatalf("Reindex = %v", err)
			}
			if last != [2]int64{l.Size(), l.Size()} {
				t.Errorf("Reindex progress ended at %v, want %d of %d", last, l.Size(), l.Size())
			}
			if rep, err := verifyIndex(t, l); err != nil {
				t.Errorf("VerifyIndex after Reindex = %v:\n%s", err, diffLines(rep))
			}
			if tc.search.Actor != "" || tc.search.Action != "" || tc.search.Text != "" {
				if got, want := found(t, l, tc.search), tc.find; !slices.Equal(got, want) {
					t.Errorf("after Reindex, search %+v finds %d events, want %d", tc.search, len(got), len(want))
				}
			}
			for a, n := range tc.actions {
				if got := actionCount(t, l, a); got != n {
					t.Errorf("after Reindex, Actions counts %d events of %s, want %d", got, a, n)
				}
			}
		})
	}
}

// editCount adds delta to the total of the stored count under k.
func editCount(t *testing.T, tp storetest.Tamperer, k store.CountKey, delta int64) {
	t.Helper()
	found := false
	must(t, tp.EditCounts(context.Background(), tamperLog, func(r *store.CountRow) bool {
		if r.CountKey == k {
			r.Total += delta
			found = true
		}
		return true
	}))
	if !found {
		t.Fatalf("no stored count %+v", k)
	}
}

// actionCount returns the count Actions gives action.
func actionCount(t *testing.T, l *trail.Log, action string) int64 {
	t.Helper()
	as, err := l.Actions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Value == action {
			return a.Count
		}
	}
	return 0
}

func diffLines(rep trail.IndexReport) string {
	var b strings.Builder
	for _, d := range rep.Diffs {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	if rep.Unlisted > 0 {
		fmt.Fprintf(&b, "  and %d more\n", rep.Unlisted)
	}
	return b.String()
}

// testVerifyIndexBounded checks a log whose whole index is gone: the
// report lists MaxDiffs differences of MaxSeqs seqs each, and counts the
// rest, with tallies small enough to spill to files.
func testVerifyIndexBounded(t *testing.T, f *indexFixture) {
	defer trail.SetIndexTallyKeys(500)()
	dir := f.b.Copy(t, f.dir)
	tp := f.b.Tamper(t, dir)
	ctx := context.Background()
	for _, ix := range []store.Index{store.IndexAction, store.IndexOutcome, store.IndexActor, store.IndexIP, store.IndexTarget} {
		must(t, tp.DeletePostings(ctx, tamperLog, ix, "", 0, indexEvents))
	}
	// The counts by hour and day go; those of all time, and the words, stay.
	must(t, tp.EditCounts(ctx, tamperLog, func(r *store.CountRow) bool { return r.Span == store.SpanAll }))
	must(t, tp.Close())
	l := openLog(t, dir, false)
	rep, err := l.VerifyIndex(context.Background(), trail.VerifyIndexOptions{MaxDiffs: 5, MaxSeqs: 3})
	if !errors.Is(err, trail.ErrIndexMismatch) {
		t.Fatalf("VerifyIndex = %v, want ErrIndexMismatch", err)
	}
	if len(rep.Diffs) != 5 || rep.Unlisted < 100 {
		t.Errorf("VerifyIndex lists %d differences and counts %d more, want 5 and many", len(rep.Diffs), rep.Unlisted)
	}
	for _, d := range rep.Diffs {
		if len(d.Missing) > 3 || d.MissingCount < int64(len(d.Missing)) {
			t.Errorf("%s: %d seqs listed of %d", d, len(d.Missing), d.MissingCount)
		}
	}
	rep, _ = l.VerifyIndex(context.Background(), trail.VerifyIndexOptions{})
	grants := f.seqsWhere(func(e *event.Event) bool { return e.Action == "admin.role.grant" })
	if d := findDiff(rep, "action", "admin.role.grant"); d == nil || d.MissingCount != int64(len(grants)) || !slices.Equal(d.Missing, grants[:10]) {
		t.Errorf("VerifyIndex lists action admin.role.grant as %v, want all its %d events missing", d, len(grants))
	}
	if d := findDiff(rep, "counts by hour", "all events, "+f.evs[0].Time.UTC().Truncate(time.Hour).Format("2006-01-02 15:04")+" UTC"); d == nil || d.Stored.Total != 0 || d.Derived.Total == 0 {
		t.Errorf("VerifyIndex lists the count of all events in the first event's hour as %v, want some stored as none", d)
	}
}
