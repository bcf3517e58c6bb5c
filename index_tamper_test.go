package trail_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
)

// indexFixture is a closed data directory holding the log "audit" of
// indexEvents events, all indexed: the first segment's posting lists in
// the index tables, the second's in the posting tail.
type indexFixture struct {
	dir string
	evs []event.Event // as appended, evs[i] at seq i
}

const indexEvents = 20000

// newIndexFixture builds the fixture in t's temporary directory.
func newIndexFixture(t *testing.T) *indexFixture {
	t.Helper()
	ctx := context.Background()
	f := &indexFixture{dir: filepath.Join(t.TempDir(), "data"), evs: storetest.Events(indexEvents, 61)}
	db, err := trail.Init(ctx, f.dir, trail.Options{Now: stepClock()})
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
	f := newIndexFixture(t)
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
	l := openLog(t, (&tamperFixture{dir: f.dir}).copy(t), false)
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
	l := openLog(t, (&tamperFixture{dir: f.dir}).copy(t), false)
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
	const seg1 = 1 << 14 // the first seq of the second segment, in the posting tail
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
		tamper func(t *testing.T, dir string, log int64)
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
			tamper: func(t *testing.T, dir string, log int64) {
				mustExec(t, rawDB(t, dir), "DELETE FROM by_actor WHERE seg = ? AND actor_id = 'alice'", eventKey(log, 0)>>14)
			},
			want:   []check{{index: "actor", value: "alice", missing: aliceSeg0}},
			search: api.Query{Actor: "alice"}, find: alice,
		},
		{
			name: "an actor taken out of the posting tail",
			tamper: func(t *testing.T, dir string, log int64) {
				// Every tail row of the actor index (t = 2) goes, bob's
				// events and the others'.
				mustExec(t, rawDB(t, dir), "DELETE FROM posting_tail WHERE seg = ? AND t = 2", eventKey(log, seg1)>>14)
			},
			want:   []check{{index: "actor", value: "bob", missing: bobSeg1}},
			search: api.Query{Actor: "bob"}, find: bob,
		},
		{
			name: "a posting row inserted",
			tamper: func(t *testing.T, dir string, log int64) {
				mustExec(t, rawDB(t, dir), "INSERT INTO by_ip (seg, ip, k, ks) VALUES (?, '203.0.113.99', ?, NULL)", eventKey(log, 0)>>14, eventKey(log, 5))
			},
			want: []check{{index: "ip", value: "203.0.113.99", extra: []int64{5}}},
		},
		{
			name: "an hourly count changed",
			tamper: func(t *testing.T, dir string, log int64) {
				// bob's count of the hour of event bob[0]: dim 2 is the actor.
				mustExec(t, rawDB(t, dir), "UPDATE rollup SET n_total = n_total + 7 WHERE log = ? AND dim = 2 AND value = 'bob' AND hour = ?",
					log, store.HourOf(f.evs[bob[0]].Time))
			},
			want: []check{{index: "counts by hour", value: "actor bob, " + f.evs[bob[0]].Time.UTC().Truncate(time.Hour).Format("2006-01-02 15:04") + " UTC"}},
		},
		{
			name: "an action count changed",
			tamper: func(t *testing.T, dir string, log int64) {
				mustExec(t, rawDB(t, dir), "UPDATE actions SET count = count - 100 WHERE log = ? AND action = 'user.login'", log)
			},
			want:    []check{{index: "action counts", value: "user.login", stored: int64(len(logins) - 100)}},
			actions: map[string]int64{"user.login": int64(len(logins))},
		},
		{
			name: "a word added to an event's text",
			tamper: func(t *testing.T, dir string, log int64) {
				mustExec(t, rawDB(t, dir), "INSERT INTO events_fts (rowid, text) VALUES (?, 'needlessly')", eventKey(log, 7))
			},
			want:   []check{{index: "text", value: "needlessly", extra: []int64{7}}},
			search: api.Query{Text: "needlessly"}, find: nil,
		},
		{
			name: "an event's words deleted",
			tamper: func(t *testing.T, dir string, log int64) {
				mustExec(t, rawDB(t, dir), "INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)", eventKey(log, 9), derive.Text(ev9))
			},
			want:   []check{{index: "text", value: words9[len(words9)-1], missing: []int64{9}}},
			search: api.Query{Text: strings.Join(words9, " ")},
			find: f.seqsWhere(func(e *event.Event) bool {
				return !slices.ContainsFunc(words9, func(w string) bool { return !slices.Contains(strings.Fields(derive.Text(e)), w) })
			}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := (&tamperFixture{dir: f.dir}).copy(t)
			rdb := rawDB(t, dir)
			tc.tamper(t, dir, logID(t, rdb))
			rdb.Close()
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
	dir := (&tamperFixture{dir: f.dir}).copy(t)
	rdb := rawDB(t, dir)
	for _, table := range []string{"by_action", "by_outcome", "by_actor", "by_ip", "by_target", "posting_tail", "rollup"} {
		mustExec(t, rdb, "DELETE FROM "+table)
	}
	rdb.Close()
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
