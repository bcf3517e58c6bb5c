package storetest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// rollupBase is where RollupEvents' times start: a whole UTC hour, two
// hours before a UTC midnight.
var rollupBase = time.Date(2024, 6, 1, 22, 0, 0, 0, time.UTC)

// RollupEvents returns Events(n, seed) with their times spread over about
// three UTC days from 2024-06-01 22:00 UTC, in no particular order: most
// anywhere in that span, some exactly on an hour, some a nanosecond
// before one, all in a zone half an hour off UTC, and a tenth without a
// time (the writer gives them their receipt time).
func RollupEvents(n int, seed uint64) []event.Event {
	evs := Events(n, seed)
	r := rand.New(rand.NewPCG(seed, seed^0x726f6c6c))
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	for i := range evs {
		e := &evs[i]
		hour := time.Duration(r.IntN(72)) * time.Hour
		switch r.IntN(10) {
		case 0:
			e.Time = time.Time{}
		case 1:
			e.Time = rollupBase.Add(hour)
		case 2:
			e.Time = rollupBase.Add(hour - 1)
		default:
			e.Time = rollupBase.Add(time.Duration(r.Int64N(int64(72 * time.Hour))))
		}
		if !e.Time.IsZero() {
			e.Time = e.Time.In(zone)
		}
	}
	return evs
}

// hourOf is the reference for store.HourOf: the UTC hour holding t, as
// whole hours since the epoch.
func hourOf(t time.Time) int64 {
	return t.UTC().Truncate(time.Hour).Unix() / 3600
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// WantRollup is what Rollup must return for q from evs, the events with
// seq < IndexedTo, written from store.Rollup's contract rather than from
// any backend.
func WantRollup(evs []*event.Event, q store.RollupQuery) store.Rollup {
	r := store.Rollup{IndexedTo: int64(len(evs))}
	for i, e := range evs {
		h := hourOf(e.Time)
		if i == 0 || h < r.First {
			r.First = h
		}
		if i == 0 || h > r.Last {
			r.Last = h
		}
	}
	if q.To <= q.From {
		return r
	}
	series := map[int64]*store.BucketCounts{}
	actors := map[string]*store.ValueCount{}
	actions := map[string]*store.ValueCount{}
	ips := map[string]*store.ValueCount{}
	add := func(m map[string]*store.ValueCount, v string, start int64) {
		vc := m[v]
		if vc == nil {
			vc = &store.ValueCount{Value: v, First: start, Last: start}
			m[v] = vc
		}
		vc.Count++
		vc.First, vc.Last = min(vc.First, start), max(vc.Last, start)
	}
	for _, e := range evs {
		h := hourOf(e.Time)
		if h < q.From || h >= q.To {
			continue
		}
		c := store.Counts{Total: 1}
		switch e.Outcome {
		case event.Failure:
			c.Failure = 1
		case event.Denied:
			c.Denied = 1
		case event.Errored:
			c.Error = 1
		}
		start := floorDiv(h, q.Bucket) * q.Bucket
		add(actors, e.Actor.ID, start)
		if e.Outcome != event.Success && e.Source.IP != "" {
			add(ips, e.Source.IP, start)
		}
		if slices.Contains(q.NotActions, e.Action) {
			continue
		}
		b := series[start]
		if b == nil {
			b = &store.BucketCounts{Start: start}
			series[start] = b
		}
		b.Add(c)
		add(actions, e.Action, start)
	}
	for _, start := range slices.Sorted(maps.Keys(series)) {
		r.Series = append(r.Series, *series[start])
	}
	top := func(m map[string]*store.ValueCount, bounds bool) []store.ValueCount {
		var out []store.ValueCount
		for _, vc := range m {
			if !bounds {
				vc.First, vc.Last = 0, 0
			}
			out = append(out, *vc)
		}
		slices.SortFunc(out, func(a, b store.ValueCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
		})
		return out[:min(len(out), max(q.Top, 0))]
	}
	r.Actors, r.Actions, r.FailedIPs = top(actors, false), top(actions, false), top(ips, true)
	return r
}

// CheckRollup runs Rollup on w's log and checks that its counts are those
// of exactly the first IndexedTo events w committed. It returns what
// Rollup returned.
func CheckRollup(t *testing.T, s store.Indexes, w *Writer, q store.RollupQuery) store.Rollup {
	t.Helper()
	got, err := s.Rollup(context.Background(), w.Info.ID, q)
	if err != nil {
		t.Fatalf("Rollup(%q, %+v) = %v", w.Info.Name, q, err)
	}
	if got.IndexedTo < 0 || got.IndexedTo > w.Size() {
		t.Fatalf("Rollup(%q, %+v).IndexedTo = %d, want 0 to %d", w.Info.Name, q, got.IndexedTo, w.Size())
	}
	want := WantRollup(w.Events[:got.IndexedTo], q)
	call := fmt.Sprintf("Rollup(%q, %+v) at IndexedTo %d", w.Info.Name, q, got.IndexedTo)
	if got.IndexedTo > 0 && (got.First != want.First || got.Last != want.Last) {
		t.Errorf("%s: First, Last = %d, %d; want %d, %d", call, got.First, got.Last, want.First, want.Last)
	}
	if !slices.Equal(got.Series, want.Series) {
		t.Errorf("%s: Series =\n%v\nwant\n%v", call, got.Series, want.Series)
	}
	for _, l := range []struct {
		name      string
		got, want []store.ValueCount
	}{
		{"Actors", got.Actors, want.Actors},
		{"Actions", got.Actions, want.Actions},
		{"FailedIPs", got.FailedIPs, want.FailedIPs},
	} {
		if !slices.Equal(l.got, l.want) {
			t.Errorf("%s: %s =\n%v\nwant\n%v", call, l.name, l.got, l.want)
		}
	}
	return got
}

// RollupQueries are queries over the span of RollupEvents (and beyond),
// in hour and day buckets: the whole span, whole UTC days, ranges starting
// and ending at other hours, one hour, a range with no event, an empty
// range, short top lists, and actions left out.
func RollupQueries() []store.RollupQuery {
	h0 := hourOf(rollupBase) // 22:00 UTC
	return []store.RollupQuery{
		{From: h0 - 48, To: h0 + 120, Bucket: 1, Top: 100},
		{From: h0 - 2, To: h0 + 94, Bucket: 24, Top: 100},
		{From: h0 + 1, To: h0 + 25, Bucket: 1, Top: 3},
		{From: h0 + 5, To: h0 + 53, Bucket: 24, Top: 1},
		{From: h0 + 7, To: h0 + 8, Bucket: 1, Top: 10},
		{From: h0 + 71, To: h0 + 72, Bucket: 24, Top: 10},
		{From: h0 + 3, To: h0 + 40, Bucket: 5, Top: 4},
		{From: h0 + 500, To: h0 + 600, Bucket: 24, Top: 10},
		{From: 0, To: 24 << 35, Bucket: 24, Top: 5},
		{From: 0, To: 1 << 40, Bucket: 1, Top: 0},
		{From: h0 + 10, To: h0 + 10, Bucket: 1, Top: 10},
		{From: h0 - 22, To: h0 + 74, Bucket: 24, Top: 100},
		{From: h0 + 2, To: h0 + 50, Bucket: 24, Top: 3},
		{From: h0 + 26, To: h0 + 50, Bucket: 24, Top: 2},
		{From: h0 + 2, To: h0 + 50, Bucket: 48, Top: 100},
		{From: h0 + 2, To: h0 + 26, Bucket: 1, Top: 100},
		{From: h0 - 2, To: h0 + 94, Bucket: 24, Top: 100, NotActions: []string{"user.login", "user.login.failed", "user.logout", "user.password.change"}},
		{From: h0 + 3, To: h0 + 40, Bucket: 5, Top: 4, NotActions: []string{"document.read", "document.update", "document.delete"}},
		{From: h0 + 7, To: h0 + 8, Bucket: 1, Top: 10, NotActions: []string{"billing.refund"}},
		{From: h0 - 48, To: h0 + 120, Bucket: 1, Top: 3, NotActions: []string{"user.login", "document.read", "no.such.action"}},
		{From: h0 - 2, To: h0 + 94, Bucket: 24, Top: 100, NotActions: []string{"user.login", "user.login.failed", "user.logout", "user.password.change",
			"document.read", "document.update", "document.delete", "billing.invoice.paid", "billing.refund", "admin.role.grant"}},
	}
}

// checkActions checks Actions against every event w committed.
func checkActions(t *testing.T, s store.Indexes, w *Writer) {
	t.Helper()
	got, err := s.Actions(context.Background(), w.Info.ID)
	if err != nil {
		t.Fatalf("Actions(%q) = %v", w.Info.Name, err)
	}
	n := map[string]int64{}
	for _, e := range w.Events {
		n[e.Action]++
	}
	var want []store.ValueCount
	for a, c := range n {
		want = append(want, store.ValueCount{Value: a, Count: c})
	}
	slices.SortFunc(want, func(a, b store.ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
	})
	if !slices.Equal(got, want) {
		t.Errorf("Actions(%q) = %v, want %v", w.Info.Name, got, want)
	}
}

// testRollup appends events at scattered times to two logs in batches of
// several sizes and checks Rollup against the events, both while the
// counts trail the commits (they must then cover exactly the first
// IndexedTo events) and once WaitIndexed says they caught up.
func testRollup(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	other := NewWriter(t, s, "other")
	if r := CheckRollup(t, s, w, RollupQueries()[0]); r.IndexedTo != 0 || len(r.Series) != 0 {
		t.Fatalf("Rollup(empty log) = %+v, want nothing", r)
	}
	checkActions(t, s, w)
	evs := RollupEvents(2400, 60)
	var noIP int
	for _, e := range evs {
		if e.Outcome != event.Success && e.Source.IP == "" {
			noIP++
		}
	}
	if noIP == 0 {
		t.Fatal("no event failed without a source ip; the test data should hold some")
	}
	for i, n := range []int{1, 299, 300, 450, 700, 250, 400} {
		w.Append(t, s, recvAt(i), evs[:n]...)
		evs = evs[n:]
		other.Append(t, s, recvAt(i), RollupEvents(50, uint64(61+i))...)
		CheckRollup(t, s, w, RollupQueries()[0])
		CheckRollup(t, s, w, RollupQueries()[8])
		checkActions(t, s, w)
	}
	// Read the counts while the indexer catches up: each snapshot must
	// agree with its own IndexedTo.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if r := CheckRollup(t, s, w, RollupQueries()[1]); r.IndexedTo == w.Size() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, l := range []*Writer{w, other} {
		if err := s.WaitIndexed(waitCtx, l.Info.ID); err != nil {
			t.Fatalf("WaitIndexed(%q) = %v", l.Info.Name, err)
		}
	}
	for _, q := range RollupQueries() {
		for _, l := range []*Writer{w, other} {
			if r := CheckRollup(t, s, l, q); r.IndexedTo != l.Size() {
				t.Fatalf("Rollup(%q).IndexedTo after WaitIndexed = %d, want %d", l.Info.Name, r.IndexedTo, l.Size())
			}
		}
	}
	checkActions(t, s, other)

	bad := other.Info.ID + 1000
	_, err := s.Rollup(ctx, bad, RollupQueries()[0])
	isNotFound(t, "Rollup(unknown log)", err)
	_, err = s.Actions(ctx, bad)
	isNotFound(t, "Actions(unknown log)", err)
}

// testRollupTies checks the order of top lists whose values have equal
// counts, and that events without a source ip or that succeeded are left
// out of FailedIPs.
func testRollupTies(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	at := rollupBase.Add(30 * time.Minute)
	ev := func(actor, action string, o event.Outcome, ip string, h int) event.Event {
		return event.Event{Actor: event.Actor{ID: actor}, Action: action, Outcome: o, Source: event.Source{IP: ip}, Time: at.Add(time.Duration(h) * time.Hour)}
	}
	var evs []event.Event
	for _, a := range []string{"zed", "b", "a", "B", "é"} {
		evs = append(evs,
			ev(a, "user.login", event.Failure, "192.0.2.1", 0),
			ev(a, "user.logout", event.Denied, "192.0.2.2", 2))
	}
	evs = append(evs,
		ev("a", "user.login", event.Errored, "", 3),
		ev("b", "user.login", event.Success, "192.0.2.3", 3),
		ev("b", "doc.read", event.Failure, "2001:db8::7", 5))
	w.Append(t, s, recvAt(0), evs...)
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.WaitIndexed(waitCtx, w.Info.ID); err != nil {
		t.Fatal(err)
	}
	h0 := hourOf(rollupBase)
	r := CheckRollup(t, s, w, store.RollupQuery{From: h0, To: h0 + 6, Bucket: 1, Top: 10})
	var actors, ips []string
	for _, v := range r.Actors {
		actors = append(actors, v.Value)
	}
	for _, v := range r.FailedIPs {
		ips = append(ips, v.Value)
	}
	if want := []string{"b", "a", "B", "zed", "é"}; !slices.Equal(actors, want) {
		t.Errorf("Rollup top actors = %q, want %q", actors, want)
	}
	if want := []string{"192.0.2.1", "192.0.2.2", "2001:db8::7"}; !slices.Equal(ips, want) {
		t.Errorf("Rollup failed ips = %q, want %q", ips, want)
	}
	if len(r.FailedIPs) > 0 && (r.FailedIPs[0].First != h0 || r.FailedIPs[0].Last != h0) {
		t.Errorf("Rollup failed ip %s seen in hours %d to %d, want %d", r.FailedIPs[0].Value, r.FailedIPs[0].First, r.FailedIPs[0].Last, h0)
	}
	CheckRollup(t, s, w, store.RollupQuery{From: h0, To: h0 + 6, Bucket: 24, Top: 2})
	CheckRollup(t, s, w, store.RollupQuery{From: h0 + 1, To: h0 + 5, Bucket: 1, Top: 10})
}
