package storetest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// RunDerived runs the conformance tests of store.Derived, in parallel. open
// must return a new, empty store on each call, implementing store.Derived,
// and close it when the test ends (t.Cleanup).
func RunDerived(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		test func(*testing.T, store.Store, store.Derived)
	}{
		{"Read", testDerivedRead},
		{"Ranges", testDerivedRanges},
		{"Reset", testDerivedReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			d, ok := s.(store.Derived)
			if !ok {
				t.Fatalf("%T does not implement store.Derived", s)
			}
			tt.test(t, s, d)
		})
	}
}

// DerivedWant is what a log's derived data must hold for its events, by
// package derive: every posting (index, value and id) with its seqs, and
// every count.
type DerivedWant struct {
	Postings map[PostingKey][]int64
	Counts   map[store.CountKey]store.Counts
}

// PostingKey is what a search index files events under.
type PostingKey struct {
	Index     store.Index
	Value, ID string
}

// WantDerived returns what the derived data must hold for evs[from:to]
// (the postings and words) and for evs[:rolled] (the hourly and daily
// counts) and evs[:indexed] (the action counts).
func WantDerived(evs []*event.Event, from, to, rolled, indexed int64) DerivedWant {
	w := DerivedWant{Postings: map[PostingKey][]int64{}, Counts: map[store.CountKey]store.Counts{}}
	for _, e := range evs[from:to] {
		derive.Postings(e, func(ix store.Index, value, id string) {
			k := PostingKey{ix, value, id}
			if s := w.Postings[k]; len(s) == 0 || s[len(s)-1] != e.Seq {
				w.Postings[k] = append(s, e.Seq)
			}
		})
		for _, word := range derive.Words(e) {
			k := PostingKey{Index: store.IndexText, Value: word}
			w.Postings[k] = append(w.Postings[k], e.Seq)
		}
	}
	add := func(k store.CountKey, e *event.Event) {
		c := w.Counts[k]
		c.Add(derive.Tally(e))
		w.Counts[k] = c
	}
	for _, e := range evs[:rolled] {
		derive.Counts(e, func(k store.CountKey) { add(k, e) })
	}
	for _, e := range evs[:indexed] {
		k := derive.ActionCount(e)
		w.Counts[k] = store.Counts{Total: w.Counts[k].Total + 1}
	}
	return w
}

// words returns the free-text words of w's postings.
func (w DerivedWant) words() []string {
	var out []string
	for k := range w.Postings {
		if k.Index == store.IndexText {
			out = append(out, k.Value)
		}
	}
	slices.Sort(out)
	return out
}

// readPostings calls Postings and returns what it says by key, failing t
// on an error, a repeated value, a damaged one, or seqs out of order or
// outside the range.
func readPostings(t *testing.T, d store.Derived, w *Writer, from, to int64, words []string) map[PostingKey][]int64 {
	t.Helper()
	call := fmt.Sprintf("Postings(%q, %d, %d, %d words)", w.Info.Name, from, to, len(words))
	ps, err := d.Postings(context.Background(), w.Info.ID, from, to, words)
	if err != nil {
		t.Fatalf("%s = %v", call, err)
	}
	got := map[PostingKey][]int64{}
	for _, p := range ps {
		k := PostingKey{p.Index, p.Value, p.ID}
		if _, dup := got[k]; dup {
			t.Errorf("%s lists %v twice", call, k)
		}
		if p.Damaged {
			t.Errorf("%s: %v damaged", call, k)
		}
		if !slices.IsSorted(p.Seqs) || len(slices.Compact(slices.Clone(p.Seqs))) != len(p.Seqs) {
			t.Errorf("%s: %v seqs %v, want ascending, each once", call, k, short(p.Seqs))
		}
		if len(p.Seqs) == 0 || p.Seqs[0] < from || p.Seqs[len(p.Seqs)-1] >= to {
			t.Errorf("%s: %v seqs %v, want some, all in [%d, %d)", call, k, short(p.Seqs), from, to)
		}
		got[k] = p.Seqs
	}
	return got
}

// CheckPostings checks Postings over [from, to) of w's log, with every
// word of those events, against WantDerived.
func CheckPostings(t *testing.T, d store.Derived, w *Writer, from, to int64) {
	t.Helper()
	derived := WantDerived(w.Events, from, to, 0, 0)
	want := derived.Postings
	got := readPostings(t, d, w, from, to, derived.words())
	for _, k := range slices.SortedFunc(maps.Keys(want), cmpPosting) {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("Postings(%q, %d, %d): %v seqs %v, want %v", w.Info.Name, from, to, k, short(got[k]), short(want[k]))
		}
	}
	for k, seqs := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("Postings(%q, %d, %d): %v seqs %v, want none", w.Info.Name, from, to, k, short(seqs))
		}
	}
}

func cmpPosting(a, b PostingKey) int {
	return cmp.Or(cmp.Compare(a.Index, b.Index), strings.Compare(a.Value, b.Value), strings.Compare(a.ID, b.ID))
}

// CheckWords checks Words of w's log below to against WantDerived.
func CheckWords(t *testing.T, d store.Derived, w *Writer, to int64) {
	t.Helper()
	got := map[string][]int64{}
	err := d.Words(context.Background(), w.Info.ID, to, func(word string, seq int64) error {
		got[word] = append(got[word], seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Words(%q, %d) = %v", w.Info.Name, to, err)
	}
	want := WantDerived(w.Events, 0, to, 0, 0).Postings
	n := 0
	for k, seqs := range want {
		if k.Index != store.IndexText {
			continue
		}
		n++
		slices.Sort(got[k.Value])
		if !slices.Equal(got[k.Value], seqs) {
			t.Errorf("Words(%q, %d): %q at seqs %v, want %v", w.Info.Name, to, k.Value, short(got[k.Value]), short(seqs))
		}
	}
	if len(got) != n {
		t.Errorf("Words(%q, %d) gave %d words, want %d", w.Info.Name, to, len(got), n)
	}
}

// CheckCounts checks Counts of w's log against WantDerived of the events
// below the watermarks it returns, and returns those.
func CheckCounts(t *testing.T, d store.Derived, w *Writer) store.CountsTo {
	t.Helper()
	got := map[store.CountKey]store.Counts{}
	to, err := d.Counts(context.Background(), w.Info.ID, func(r store.CountRow) error {
		if _, dup := got[r.CountKey]; dup {
			t.Errorf("Counts(%q) passed %+v twice", w.Info.Name, r.CountKey)
		}
		if r.Counts != (store.Counts{}) {
			got[r.CountKey] = r.Counts
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Counts(%q) = %v", w.Info.Name, err)
	}
	if to.Rolled < 0 || to.Rolled > to.Indexed || to.Indexed > w.Size() {
		t.Fatalf("Counts(%q) goes to %+v, want 0 <= Rolled <= Indexed <= %d", w.Info.Name, to, w.Size())
	}
	want := WantDerived(w.Events, 0, 0, to.Rolled, to.Indexed).Counts
	if !maps.Equal(got, want) {
		for k, c := range want {
			if got[k] != c {
				t.Errorf("Counts(%q) at %+v: %+v = %+v, want %+v", w.Info.Name, to, k, got[k], c)
			}
		}
		for k, c := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("Counts(%q) at %+v: %+v = %+v, want none", w.Info.Name, to, k, c)
			}
		}
	}
	return to
}

// waitIndexed waits until the indexes of w's log cover all it committed.
func waitIndexed(t *testing.T, s store.Indexes, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("WaitIndexed(%q) = %v", w.Info.Name, err)
	}
}

// testDerivedRead checks what the derived data of two logs holds once
// indexed, and while indexing: whatever the indexer's progress, what lies
// below the watermarks Counts returns is all there and right.
func testDerivedRead(t *testing.T, s store.Store, d store.Derived) {
	a := NewWriter(t, s, "audit")
	b := NewWriter(t, s, "other")
	appendBatches(t, s, a, RollupEvents(700, 31), 0, 1, 99, 300, 300)
	appendBatches(t, s, b, Events(200, 32), 10, 200)
	to := CheckCounts(t, d, a)
	CheckPostings(t, d, a, 0, to.Indexed)
	CheckWords(t, d, a, to.Indexed)
	waitIndexed(t, s, a)
	waitIndexed(t, s, b)
	for _, w := range []*Writer{a, b} {
		if to := CheckCounts(t, d, w); to.Indexed != w.Size() || to.Rolled != w.Size() {
			t.Errorf("Counts(%q) after WaitIndexed goes to %+v, want both %d", w.Info.Name, to, w.Size())
		}
		CheckPostings(t, d, w, 0, w.Size())
		CheckWords(t, d, w, w.Size())
	}
	ctx := context.Background()
	if _, err := d.Postings(ctx, 1<<20, 0, 10, nil); err == nil {
		t.Errorf("Postings(no such log) = nil error")
	}
	if _, err := d.Counts(ctx, 1<<20, func(store.CountRow) error { return nil }); err == nil {
		t.Errorf("Counts(no such log) = nil error")
	}
}

// testDerivedRanges checks Postings over ranges that start and end
// anywhere, and that Words stops at the bound it is given.
func testDerivedRanges(t *testing.T, s store.Store, d store.Derived) {
	w := NewWriter(t, s, "audit")
	appendBatches(t, s, w, Events(900, 33), 0, 450, 450)
	waitIndexed(t, s, w)
	for _, r := range [][2]int64{{0, 1}, {0, 900}, {1, 2}, {17, 419}, {450, 451}, {899, 900}, {300, 2000}, {5, 5}} {
		CheckPostings(t, d, w, r[0], min(r[1], w.Size()))
	}
	if ps, err := d.Postings(context.Background(), w.Info.ID, 300, 2000, nil); err != nil || len(ps) == 0 {
		t.Errorf("Postings(300, 2000: past the end) = %d postings, %v; want those of 300 to 899", len(ps), err)
	}
	CheckWords(t, d, w, 333)
}

// testDerivedReset checks that ResetIndex drops one log's derived data and
// no other's, that searches and the other log's counts stay right
// meanwhile, and that the indexer derives it all again.
func testDerivedReset(t *testing.T, s store.Store, d store.Derived) {
	ctx := context.Background()
	a := NewWriter(t, s, "audit")
	b := NewWriter(t, s, "other")
	appendBatches(t, s, a, RollupEvents(800, 34), 0, 400, 400)
	appendBatches(t, s, b, Events(300, 35), 5, 300)
	waitIndexed(t, s, a)
	waitIndexed(t, s, b)
	if err := d.ResetIndex(ctx, 1<<20); err == nil {
		t.Errorf("ResetIndex(no such log) = nil error")
	}
	if err := d.ResetIndex(ctx, a.Info.ID); err != nil {
		t.Fatalf("ResetIndex(%q) = %v", a.Info.Name, err)
	}
	// Right after: the log's data may be partly rebuilt already, and must
	// be right as far as its watermarks say, with nothing left beyond.
	var above []int64
	err := d.Words(ctx, a.Info.ID, 1<<40, func(_ string, seq int64) error {
		above = append(above, seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Words(%q) = %v", a.Info.Name, err)
	}
	to := CheckCounts(t, d, a)
	above = slices.DeleteFunc(above, func(seq int64) bool { return seq < to.Indexed })
	if len(above) > 0 {
		t.Errorf("Words(%q) after ResetIndex lists seqs %v, at or past the index's watermark %d", a.Info.Name, short(above), to.Indexed)
	}
	CheckPostings(t, d, a, 0, to.Indexed)
	CheckWords(t, d, a, to.Indexed)
	CheckSearch(t, s, a, store.Query{Actor: "alice", To: -1}, false)
	CheckSearch(t, s, a, store.Query{Text: "audit", To: -1}, false)
	CheckRollup(t, s, a, store.RollupQuery{From: 0, To: 24 << 20, Bucket: 24, Top: 5})
	for _, w := range []*Writer{b} {
		if to := CheckCounts(t, d, w); to.Indexed != w.Size() {
			t.Errorf("Counts(%q), after ResetIndex(%q), goes to %+v, want %d", w.Info.Name, a.Info.Name, to, w.Size())
		}
		CheckPostings(t, d, w, 0, w.Size())
		CheckWords(t, d, w, w.Size())
		CheckSearch(t, s, w, store.Query{Text: "audit", To: -1}, false)
	}
	// New events go on from where the log is.
	appendBatches(t, s, a, Events(50, 36), 3, 50)
	waitIndexed(t, s, a)
	if to := CheckCounts(t, d, a); to.Indexed != a.Size() || to.Rolled != a.Size() {
		t.Errorf("Counts(%q) after ResetIndex and WaitIndexed goes to %+v, want both %d", a.Info.Name, to, a.Size())
	}
	CheckPostings(t, d, a, 0, a.Size())
	CheckWords(t, d, a, a.Size())
	for _, q := range []store.Query{{Actor: "alice", To: -1}, {Text: "audit", To: -1}, {IP: "2001:db8::1", To: -1}} {
		CheckSearch(t, s, a, q, false)
	}
	CheckRollup(t, s, a, store.RollupQuery{From: 0, To: 24 << 20, Bucket: 24, Top: 5})
}
