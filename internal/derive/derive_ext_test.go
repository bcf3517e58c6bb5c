package derive_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// testEvents are storetest's events, each with a time (as the writer
// gives the ones without), numbered by Seq.
func testEvents(evs []event.Event) []*event.Event {
	recv := time.Date(2024, 6, 3, 12, 0, 0, 0, time.UTC)
	out := make([]*event.Event, len(evs))
	for i := range evs {
		e := &evs[i]
		e.Seq = int64(i)
		if e.Time.IsZero() {
			e.Time = recv.Add(time.Duration(i) * time.Minute)
		}
		out[i] = e
	}
	return out
}

// entry is one posting: an index, a value and (for targets) an id.
type entry struct {
	ix        store.Index
	value, id string
}

// query is the search that a posting's value answers, per store.Query.
func (p entry) query() store.Query {
	q := store.Query{To: -1}
	switch p.ix {
	case store.IndexAction:
		q.Actions = []string{p.value}
	case store.IndexOutcome:
		q.Outcome = event.Outcome(p.value)
	case store.IndexActor:
		q.Actor = p.value
	case store.IndexIP:
		q.IP = p.value
	case store.IndexTarget:
		q.TargetType, q.TargetID = p.value, p.id
	case store.IndexText:
		q.Text = p.value
	}
	return q
}

// TestPostingsAnswerSearches checks the entries Postings and Text give
// each event against storetest.Match, the reading of store.Query that the
// conformance suite checks searches with: an event has an entry exactly
// when a search for the entry's value must find it. An indexer that took
// its entries from a wrong derivation would leave events out of searches
// driven by its index, and Log.VerifyIndex, using the same derivation,
// would not see it; this is what catches that.
func TestPostingsAnswerSearches(t *testing.T) {
	evs := testEvents(storetest.Events(400, 7))
	has := make([]map[entry]bool, len(evs))
	all := map[entry]bool{}
	for i, e := range evs {
		has[i] = map[entry]bool{}
		derive.Postings(e, func(ix store.Index, value, id string) {
			has[i][entry{ix, value, id}] = true
		})
		for _, w := range strings.Fields(derive.Text(e)) {
			has[i][entry{store.IndexText, w, ""}] = true
		}
		maps.Copy(all, has[i])
	}
	// Outcomes are searched for success too: no event has an entry for
	// it, as the outcome index holds only those that did not succeed.
	all[entry{store.IndexOutcome, string(event.Success), ""}] = false
	kinds := map[store.Index]int{}
	for p := range all {
		kinds[p.ix]++
		q := p.query()
		for i, e := range evs {
			want := storetest.Match(q, e)
			if p.ix == store.IndexOutcome && p.value == string(event.Success) {
				want = false
			}
			if got := has[i][p]; got != want {
				t.Errorf("event %d (%+v): has %s entry %q %q = %v, want %v (a search for it finds the event: %v)",
					i, *e, p.ix, p.value, p.id, got, want, storetest.Match(q, e))
			}
		}
	}
	for ix := store.IndexAction; ix <= store.IndexText; ix++ {
		if kinds[ix] < 2 {
			t.Errorf("%d values of the %s index among the events, want several", kinds[ix], ix)
		}
	}
}

// TestCountsAnswerRollups checks the counts Counts and Tally give against
// storetest.WantRollup, the reading of store.Rollup's contract the
// conformance suite checks Rollup with: hourly counts of every event by
// outcome are its hourly series, and the hourly and daily counts by
// action, actor and failed IP are its top lists over that hour or day.
func TestCountsAnswerRollups(t *testing.T) {
	evs := testEvents(storetest.RollupEvents(3000, 3))
	got := map[store.CountKey]store.Counts{}
	for _, e := range evs {
		derive.Counts(e, func(k store.CountKey) {
			c := got[k]
			c.Add(derive.Tally(e))
			got[k] = c
		})
	}
	want := map[store.CountKey]store.Counts{}
	first, last := store.HourOf(evs[0].Time), store.HourOf(evs[0].Time)
	for _, e := range evs {
		first, last = min(first, store.HourOf(e.Time)), max(last, store.HourOf(e.Time))
	}
	add := func(span store.Span, from, to int64) {
		r := storetest.WantRollup(evs, store.RollupQuery{From: from, To: to, Bucket: to - from, Top: 1 << 20})
		if span == store.SpanHour {
			for _, b := range r.Series {
				want[store.CountKey{Dim: store.CountOutcome, Hour: b.Start}] = b.Counts
			}
		}
		for _, l := range []struct {
			dim store.CountDim
			vs  []store.ValueCount
		}{{store.CountAction, r.Actions}, {store.CountActor, r.Actors}, {store.CountFailedIP, r.FailedIPs}} {
			for _, v := range l.vs {
				want[store.CountKey{Dim: l.dim, Span: span, Hour: from, Value: v.Value}] = store.Counts{Total: v.Count}
			}
		}
	}
	for h := first; h <= last; h++ {
		add(store.SpanHour, h, h+1)
	}
	for d := first - (first%24+24)%24; d <= last; d += 24 {
		add(store.SpanDay, d, d+24)
	}
	// WantRollup's top lists count events, not outcomes: compare totals
	// there, and every outcome of the series.
	for k, c := range got {
		if k.Dim != store.CountOutcome {
			got[k] = store.Counts{Total: c.Total}
		}
	}
	if len(got) != len(want) {
		t.Errorf("Counts gave %d counts, WantRollup %d", len(got), len(want))
	}
	for _, k := range slices.SortedFunc(maps.Keys(want), cmpKeys) {
		if got[k] != want[k] {
			t.Errorf("count %+v = %+v, want %+v", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("count %+v = %+v, not in WantRollup", k, got[k])
		}
	}
}

func cmpKeys(a, b store.CountKey) int {
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}
