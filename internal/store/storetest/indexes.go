package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// LogIndexes is what RunIndexes tests: a store's indexes, over the logs
// it commits to.
type LogIndexes interface {
	store.Log
	store.Indexes
}

// RunIndexes runs the conformance tests of store.Indexes, in parallel.
// open must return a new, empty store on each call and close it when the
// test ends (t.Cleanup); the tests commit through its Log.
func RunIndexes(t *testing.T, open func(t *testing.T) LogIndexes) {
	tests := []struct {
		name string
		test func(*testing.T, LogIndexes)
	}{
		{"NotFound", testIndexesNotFound},
		{"CommitAtomic", testIndexesCommitAtomic},
		{"Search", testSearch},
		{"SearchWhileIndexing", testSearchWhileIndexing},
		{"WaitIndexed", testWaitIndexed},
		{"Large", testLargeSearch},
		{"SeqAtTime", testSeqAtTime},
		{"Isolation", testIndexesIsolation},
		{"Concurrent", testSearchConcurrent},
		{"Rollup", testRollup},
		{"RollupTies", testRollupTies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, open(t))
		})
	}
}

// describe prints the filters of q that are set.
func describe(q store.Query) string {
	var parts []string
	add := func(name string, v any, set bool) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%q", name, fmt.Sprint(v)))
		}
	}
	add("Actor", q.Actor, q.Actor != "")
	add("Actions", q.Actions, len(q.Actions) > 0)
	add("ActionLike", q.ActionLike, q.ActionLike != "")
	add("NotActions", q.NotActions, len(q.NotActions) > 0)
	add("NotActionLike", q.NotActionLike, q.NotActionLike != "")
	add("TargetType", q.TargetType, q.TargetType != "")
	add("TargetID", q.TargetID, q.TargetID != "")
	add("Outcome", q.Outcome, q.Outcome != "")
	add("IP", q.IP, q.IP != "")
	add("Text", q.Text, q.Text != "")
	add("From", q.From, q.From != 0)
	add("To", q.To, q.To >= 0)
	add("Limit", q.Limit, q.Limit != 0)
	add("Asc", q.Asc, q.Asc)
	return "{" + strings.Join(parts, " ") + "}"
}

// search runs Search and checks that it returned what Match selects from
// w's events, in q's order, cut at q.Limit, exactly as committed.
func search(t *testing.T, s store.Indexes, w *Writer, q store.Query) []*event.Event {
	t.Helper()
	got, err := s.Search(context.Background(), w.Info.ID, q)
	if err != nil {
		t.Fatalf("Search(%q, %s) = %v", w.Info.Name, describe(q), err)
	}
	want := w.matching(q)
	if !q.Asc {
		slices.Reverse(want)
	}
	if q.Limit > 0 && len(want) > q.Limit {
		want = want[:q.Limit]
	}
	if !slices.Equal(seqs(got), seqs(want)) {
		t.Fatalf("Search(%q, %s) = seqs %s, want %s", w.Info.Name, describe(q), short(seqs(got)), short(seqs(want)))
	}
	for i := range got {
		checkEvent(t, fmt.Sprintf("Search(%q, %s) result %d", w.Info.Name, describe(q), i), got[i], want[i])
	}
	return got
}

// CheckSearch checks q in both orders: all results in one page, the first
// few, and all results again page by page, each page continuing after the
// last seq of the one before (keyset pagination), without gaps or repeats.
// Unless allowEmpty, some of w's events must match q, so that the check
// means something.
func CheckSearch(t *testing.T, s store.Indexes, w *Writer, q store.Query, allowEmpty bool) {
	t.Helper()
	all := w.matching(q)
	if len(all) == 0 && !allowEmpty {
		t.Fatalf("no event of log %q matches %s; the test data should hold some", w.Info.Name, describe(q))
	}
	for _, asc := range []bool{false, true} {
		q := q
		q.Asc = asc
		q.Limit = 10000
		search(t, s, w, q)
		q.Limit = 3
		search(t, s, w, q)

		q.Limit = 1 + len(all)/4
		var paged []*event.Event
		for range len(all) + 2 {
			page := search(t, s, w, q)
			paged = append(paged, page...)
			if len(page) < q.Limit {
				break
			}
			if asc {
				q.From = page[len(page)-1].Seq + 1
			} else {
				q.To = page[len(page)-1].Seq - 1
				if q.To < 0 {
					break
				}
			}
		}
		want := slices.Clone(all)
		if !asc {
			slices.Reverse(want)
		}
		if !slices.Equal(seqs(paged), seqs(want)) {
			t.Fatalf("Search(%q, %s) page by page (Asc=%v) = seqs %s, want %s", w.Info.Name, describe(q), asc, short(seqs(paged)), short(seqs(want)))
		}
	}
}

// textQueries are free-text searches over Events' values, as words,
// prefixes, mixed case and non-ASCII text.
var textQueries = []struct {
	text       string
	allowEmpty bool
}{
	{text: "audit"},
	{text: "AUDIT"},
	{text: "aud*"},
	{text: "branch audit"},
	{text: "suspicious device"},
	{text: "sus*"},
	{text: "refu*"},
	{text: "refund"},
	{text: "İstanbul"},
	{text: "İSTANBUL"},
	{text: "école"},
	{text: "ÉCOLE"},
	{text: "éco*"},
	{text: "ecole", allowEmpty: true},
	{text: "東京"},
	{text: "東*"},
	{text: "zoë"},
	{text: "ἀθηνᾶ"},
	{text: "ørsted"},
	{text: "zürich"},
	{text: "ZÜR*"},
	{text: "straße"},
	{text: "οδοσ"},
	{text: "ΟΔΟΣ κλειστή"},
	{text: "needle"},
	{text: "1999"},
	{text: "2.5"},
	{text: "eu-west"},
	{text: "user.login"},
	{text: "login failed"},
	{text: "invoice paid"},
	{text: "doc-3"},
	{text: "alice@example.com"},
	{text: "Ünïcode"},
	{text: "xyzzy", allowEmpty: true},
	{text: "audit xyzzy", allowEmpty: true},
}

func testSearch(t *testing.T, s LogIndexes) {
	w := NewWriter(t, s, "audit")
	other := NewWriter(t, s, "other")
	appendBatches(t, s, other, Events(300, 110), 0, 300)
	appendBatches(t, s, w, Events(900, 111), 1, 1, 40, 200, 300, 15, 256, 88)
	appendBatches(t, s, other, Events(300, 112), 20, 300)

	type query struct {
		name       string
		q          store.Query
		allowEmpty bool
	}
	queries := []query{
		{name: "all", q: store.Query{}},
		{name: "actor", q: store.Query{Actor: "alice"}},
		{name: "non-ASCII actor", q: store.Query{Actor: "zoë"}},
		{name: "unknown actor", q: store.Query{Actor: "mallory"}, allowEmpty: true},
		{name: "action", q: store.Query{Actions: []string{"user.login"}}},
		{name: "rare action", q: store.Query{Actions: []string{"billing.refund"}}},
		{name: "common actions", q: store.Query{Actions: []string{"user.login", "document.read"}}},
		{name: "rare actions", q: store.Query{Actions: []string{"billing.refund", "admin.role.grant"}}},
		{name: "actions with an unknown one", q: store.Query{Actions: []string{"user.logout", "no.such"}}},
		{name: "unknown action", q: store.Query{Actions: []string{"no.such"}}, allowEmpty: true},
		{name: "action prefix", q: store.Query{ActionLike: "user."}},
		{name: "action prefix of an action", q: store.Query{ActionLike: "user.login"}},
		{name: "rare action prefix", q: store.Query{ActionLike: "admin."}},
		{name: "action prefix inside a word", q: store.Query{ActionLike: "doc"}},
		{name: "unknown action prefix", q: store.Query{ActionLike: "zzz."}, allowEmpty: true},
		{name: "actions and prefix", q: store.Query{Actions: []string{"user.login", "document.read"}, ActionLike: "user."}},
		{name: "not an action prefix", q: store.Query{NotActionLike: "user."}},
		{name: "not an action", q: store.Query{NotActions: []string{"document.read"}}},
		{name: "not the common actions", q: store.Query{NotActionLike: "user.", NotActions: []string{"document.read", "document.update", "document.delete", "billing.invoice.paid"}}},
		{name: "not the common actions, listed", q: store.Query{NotActions: []string{"user.login", "user.login.failed", "user.logout", "user.password.change", "document.read", "document.update", "document.delete", "billing.invoice.paid"}}},
		{name: "not every action", q: store.Query{NotActionLike: "user.", NotActions: []string{"document.read", "document.update", "document.delete", "billing.invoice.paid", "billing.refund", "admin.role.grant"}}, allowEmpty: true},
		{name: "prefix but not an action under it", q: store.Query{ActionLike: "user.", NotActions: []string{"user.login"}}},
		{name: "prefix but not a longer prefix", q: store.Query{ActionLike: "user.", NotActionLike: "user.login"}},
		{name: "action and not its prefix", q: store.Query{Actions: []string{"user.login"}, NotActionLike: "user."}, allowEmpty: true},
		{name: "not an unknown prefix", q: store.Query{NotActionLike: "zzz."}},
		{name: "actor, not an action prefix", q: store.Query{Actor: "alice", NotActionLike: "document."}},
		{name: "text, not an action prefix", q: store.Query{Text: "audit", NotActionLike: "user."}},
		{name: "target", q: store.Query{TargetType: "document", TargetID: "doc-3"}},
		{name: "target whose id is a prefix of others", q: store.Query{TargetType: "org", TargetID: "org-1"}},
		{name: "target type", q: store.Query{TargetType: "invoice"}},
		{name: "target id", q: store.Query{TargetID: "use-1"}},
		{name: "target type and id of different targets", q: store.Query{TargetType: "user", TargetID: "doc-3"}, allowEmpty: true},
		{name: "unknown target type", q: store.Query{TargetType: "nothing"}, allowEmpty: true},
		{name: "outcome success", q: store.Query{Outcome: event.Success}},
		{name: "outcome failure", q: store.Query{Outcome: event.Failure}},
		{name: "outcome denied", q: store.Query{Outcome: event.Denied}},
		{name: "outcome error", q: store.Query{Outcome: event.Errored}},
		{name: "ipv4", q: store.Query{IP: "10.0.0.1"}},
		{name: "ipv6", q: store.Query{IP: "2001:db8::1"}},
		{name: "ipv4 in ipv6", q: store.Query{IP: "::ffff:10.0.0.9"}},
		{name: "from", q: store.Query{From: 600}},
		{name: "to", q: store.Query{To: 200}},
		{name: "from and to", q: store.Query{From: 250, To: 700}},
		{name: "one seq", q: store.Query{From: 500, To: 500}},
		{name: "from past the end", q: store.Query{From: 5000}, allowEmpty: true},
		{name: "from after to", q: store.Query{From: 600, To: 500}, allowEmpty: true},
		{name: "actor and action", q: store.Query{Actor: "bob", Actions: []string{"user.login"}}},
		{name: "actor, outcome and ip", q: store.Query{Actor: "alice", Outcome: event.Failure, IP: "10.0.0.2"}, allowEmpty: true},
		{name: "actor and action prefix", q: store.Query{Actor: "svc-billing", ActionLike: "document."}},
		{name: "target type and outcome", q: store.Query{TargetType: "user", Outcome: event.Denied}},
		{name: "target and actor", q: store.Query{TargetType: "document", TargetID: "doc-3", Actor: "cron"}},
		{name: "target and window", q: store.Query{TargetType: "org", TargetID: "org-2", From: 300, To: 850}},
		{name: "target id and action", q: store.Query{TargetID: "inv-4", ActionLike: "billing."}, allowEmpty: true},
		{name: "common actions in a window", q: store.Query{Actions: []string{"user.login", "document.read"}, From: 500, To: 700}},
		{name: "ip and outcome", q: store.Query{IP: "2001:db8::1", Outcome: event.Success}},
		{name: "everything", q: store.Query{Actor: "alice", ActionLike: "user.", TargetType: "document", Outcome: event.Success, From: 10, To: 800}, allowEmpty: true},
		{name: "text and actor", q: store.Query{Text: "audit", Actor: "alice"}},
		{name: "text and outcome", q: store.Query{Text: "login", Outcome: event.Failure}},
		{name: "text and success", q: store.Query{Text: "audit", Outcome: event.Success}},
		{name: "text and target", q: store.Query{Text: "quarterly", TargetType: "document", TargetID: "doc-3"}, allowEmpty: true},
		{name: "text prefix and target", q: store.Query{Text: "Ünï*", TargetType: "org", TargetID: "org-2"}},
		{name: "text and target type", q: store.Query{Text: "audit", TargetType: "org"}},
		{name: "text and target id", q: store.Query{Text: "review", TargetID: "doc-5"}, allowEmpty: true},
		{name: "text and action prefix", q: store.Query{Text: "new device", ActionLike: "user."}},
		{name: "text and actions", q: store.Query{Text: "finance", Actions: []string{"user.login", "document.read"}}},
		{name: "text and ip", q: store.Query{Text: "eu-west", IP: "10.0.0.1"}},
		{name: "text in a window", q: store.Query{Text: "audit", From: 300, To: 700}},
	}
	for _, tq := range textQueries {
		queries = append(queries, query{name: "text " + tq.text, q: store.Query{Text: tq.text}, allowEmpty: tq.allowEmpty})
	}
	for _, c := range queries {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			if q.To == 0 {
				q.To = -1
			}
			CheckSearch(t, s, w, q, c.allowEmpty)
		})
	}
	t.Run("cross-target check has data", func(t *testing.T) {
		// "target type and id of different targets" is empty for the right
		// reason only if some event has both, on different targets.
		n := 0
		for _, e := range w.Events {
			if Match(store.Query{TargetType: "user", To: -1}, e) && Match(store.Query{TargetID: "doc-3", To: -1}, e) {
				n++
			}
		}
		if n == 0 {
			t.Fatal("no event has both a user target and target doc-3")
		}
	})
	t.Run("other log", func(t *testing.T) {
		CheckSearch(t, s, other, store.Query{Text: "audit", To: -1}, false)
		CheckSearch(t, s, other, store.Query{Actor: "alice", To: -1}, false)
	})
}

// testSearchWhileIndexing searches right after a commit, while a backend
// that indexes in the background has not caught up, all the while it does,
// and once WaitIndexed says it has.
func testSearchWhileIndexing(t *testing.T, s LogIndexes) {
	w := NewWriter(t, s, "audit")
	queries := []store.Query{
		{Text: "audit", To: -1},
		{Text: "İstanbul", To: -1},
		{Text: "éco*", To: -1},
		{Text: "needle", Actor: "bob", To: -1},
		{Text: "Ünï*", TargetType: "org", TargetID: "org-2", To: -1},
		{Text: "refund", From: 500, To: 1300},
		{Text: "login", Outcome: event.Failure, To: -1},
		{Text: "zürich", ActionLike: "document.", To: -1},
		{Actor: "alice", To: -1},
		{IP: "2001:db8::1", To: -1},
		{TargetType: "document", TargetID: "doc-3", To: -1},
		{TargetType: "org", TargetID: "org-1", Actor: "cron", To: -1},
	}
	round := func(name string, evs []event.Event, recv time.Time) {
		w.Append(t, s, recv, evs...)
		t.Run(name+"/at once", func(t *testing.T) {
			for _, q := range queries {
				CheckSearch(t, s, w, q, false)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.WaitIndexed(ctx, w.Info.ID) }()
		t.Run(name+"/while indexing", func(t *testing.T) {
			for i := 0; ; i++ {
				q := queries[i%len(queries)]
				q.Asc = i%2 == 1
				q.Limit = 50
				search(t, s, w, q)
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("WaitIndexed = %v", err)
					}
					t.Logf("indexed after %d searches", i+1)
					return
				default:
				}
			}
		})
		t.Run(name+"/indexed", func(t *testing.T) {
			for _, q := range queries {
				CheckSearch(t, s, w, q, false)
			}
		})
	}
	round("first", Events(1200, 120), recvAt(0))
	round("second", Events(400, 121), recvAt(1))
}

func testWaitIndexed(t *testing.T, s LogIndexes) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	empty := NewWriter(t, s, "empty")
	if err := s.WaitIndexed(ctx, empty.Info.ID); err != nil {
		t.Errorf("WaitIndexed(empty log) = %v", err)
	}
	w := NewWriter(t, s, "audit")
	other := NewWriter(t, s, "other")
	for i := range 5 {
		w.Append(t, s, recvAt(i), Events(500, uint64(130+i))...)
		other.Append(t, s, recvAt(i), Events(100, uint64(140+i))...)
	}
	for _, l := range []*Writer{w, other, w} {
		if err := s.WaitIndexed(ctx, l.Info.ID); err != nil {
			t.Fatalf("WaitIndexed(%q) = %v", l.Info.Name, err)
		}
	}
	CheckSearch(t, s, w, store.Query{Actor: "alice", Text: "audit", To: -1}, false)
	CheckSearch(t, s, other, store.Query{TargetType: "org", To: -1}, false)
}

// testLargeSearch searches a log longer than the chunks a backend may
// index it in (the SQLite store cuts its background indexes in segments of
// 16384 events), before and after indexing.
func testLargeSearch(t *testing.T, s LogIndexes) {
	if raceEnabled {
		t.Skip("too slow under the race detector; covered by runs without it")
	}
	w := NewWriter(t, s, "audit")
	appendBatches(t, s, w, Events(20600, 60), 0, 7000, 7000, 6600)
	queries := []store.Query{
		{Actor: "zoë", To: -1},
		{IP: "192.168.1.77", To: -1},
		{TargetType: "invoice", TargetID: "inv-7", To: -1},
		{Text: "straße", To: -1},
		{Text: "ørsted", Outcome: event.Denied, To: -1},
		{Actor: "bob", From: 16000, To: 17000},
		{TargetType: "user", From: 16370, To: 16400},
		{Actions: []string{"billing.refund"}, To: -1},
	}
	t.Run("Search before indexing", func(t *testing.T) {
		for _, q := range queries[:3] {
			q.Limit = 20
			search(t, s, w, q)
			q.Asc = true
			search(t, s, w, q)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
		t.Fatalf("WaitIndexed = %v", err)
	}
	t.Run("Search", func(t *testing.T) {
		for _, q := range queries {
			CheckSearch(t, s, w, q, false)
		}
	})
}

func testSeqAtTime(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	if got, err := s.SeqAtTime(ctx, w.Info.ID, epoch); err != nil || got != 0 {
		t.Errorf("SeqAtTime(empty log) = %d, %v; want 0", got, err)
	}
	t0 := epoch
	t1 := t0.Add(time.Nanosecond)
	t2 := t0.Add(time.Second)
	t3 := t2.Add(time.Hour)
	evs := Events(20, 70)
	w.Append(t, s, t0, evs[0:3]...)   // 0-2
	w.Append(t, s, t0, evs[3:5]...)   // 3-4: the same time, another batch
	w.Append(t, s, t1, evs[5:6]...)   // 5
	w.Append(t, s, t2, evs[6:10]...)  // 6-9
	w.Append(t, s, t3, evs[10:11]...) // 10
	cases := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"zero time", time.Time{}, 0},
		{"long before", t0.Add(-24 * time.Hour), 0},
		{"just before", t0.Add(-time.Nanosecond), 0},
		{"first run", t0, 0},
		{"one nanosecond later", t1, 5},
		{"between runs", t1.Add(time.Millisecond), 6},
		{"third run", t2, 6},
		{"just after the third run", t2.Add(time.Nanosecond), 10},
		{"last", t3, 10},
		{"just after all", t3.Add(time.Nanosecond), 11},
		{"long after", t3.Add(365 * 24 * time.Hour), 11},
		{"in another zone", t2.In(time.FixedZone("X", 7200)), 6},
		// Past what nanoseconds since 1970 in an int64 hold (1677 to
		// 2262): such times compare as times, not wrapped around.
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 11},
		{"year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), 11},
		{"year 1000", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, err := s.SeqAtTime(ctx, w.Info.ID, c.t); err != nil || got != c.want {
				t.Errorf("SeqAtTime(%v) = %d, %v; want %d", c.t, got, err, c.want)
			}
		})
	}

	t.Run("every batch of a longer log", func(t *testing.T) {
		w := NewWriter(t, s, "longer")
		evs := Events(600, 71)
		for i := 0; len(evs) > 0; i++ {
			n := min(1+i*7%50, len(evs))
			w.Append(t, s, epoch.Add(time.Duration(i/3)*time.Millisecond), evs[:n]...)
			evs = evs[n:]
		}
		for i := -1; i < 70; i++ {
			at := epoch.Add(time.Duration(i)*time.Millisecond/2 - 1)
			want := w.Size()
			for _, e := range w.Events {
				if !e.ReceivedAt.Before(at) {
					want = e.Seq
					break
				}
			}
			if got, err := s.SeqAtTime(ctx, w.Info.ID, at); err != nil || got != want {
				t.Errorf("SeqAtTime(%v) = %d, %v; want %d", at, got, err, want)
			}
		}
	})
}

// testIndexesNotFound: every read of a log that does not exist fails with
// ErrNotFound.
func testIndexesNotFound(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	w := NewWriter(t, s, "audit")
	w.Append(t, s, recvAt(0), Events(3, 1)...)
	bad := w.Info.ID + 1000
	cases := []struct {
		name string
		call func() error
	}{
		{"Search(unknown log)", func() error { _, err := s.Search(ctx, bad, store.Query{To: -1}); return err }},
		{"SeqAtTime(unknown log)", func() error { _, err := s.SeqAtTime(ctx, bad, epoch); return err }},
		{"Rollup(unknown log)", func() error {
			_, err := s.Rollup(ctx, bad, store.RollupQuery{From: 0, To: 1 << 40, Bucket: 1})
			return err
		}},
		{"Actions(unknown log)", func() error { _, err := s.Actions(ctx, bad); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			isNotFound(t, c.name, c.call())
		})
	}
}

// testIndexesCommitAtomic: a commit that fails leaves nothing of its
// batches for searches and SeqAtTime to find, and once committed again
// they find it.
func testIndexesCommitAtomic(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	a := NewWriter(t, s, "a")
	b := NewWriter(t, s, "b")
	appendBatches(t, s, a, Events(300, 10), 0, 200, 100)
	appendBatches(t, s, b, Events(10, 11), 0, 10)
	grow := a.Batch(t, recvAt(5), Events(100, 12)...)
	// The second batch starts inside its log: the commit fails.
	err := s.Commit(ctx, []store.Batch{grow, b.BatchAt(t, 9, recvAt(5), Events(5, 15)...)})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit = %v, want an error wrapping store.ErrConflict", err)
	}
	for _, wait := range []bool{false, true} {
		if wait {
			waitIndexed(t, s, a)
		}
		if got, err := s.SeqAtTime(ctx, a.Info.ID, recvAt(5)); err != nil || got != 300 {
			t.Errorf("SeqAtTime(a, time of the failed batch) = %d, %v; want 300", got, err)
		}
		res, err := s.Search(ctx, a.Info.ID, store.Query{From: 300, To: -1})
		if err != nil || len(res) != 0 {
			t.Errorf("Search(a, seqs >= 300) = %v, %v; want nothing", short(seqs(res)), err)
		}
		CheckSearch(t, s, a, store.Query{To: -1}, false)
	}
	if err := s.Commit(ctx, []store.Batch{grow}); err != nil {
		t.Fatalf("Commit(the first batch alone) = %v", err)
	}
	a.Committed(t, grow)
	if got, err := s.SeqAtTime(ctx, a.Info.ID, recvAt(5)); err != nil || got != 300 {
		t.Errorf("SeqAtTime(a, time of the committed batch) = %d, %v; want 300", got, err)
	}
	CheckSearch(t, s, a, store.Query{From: 300, To: -1}, false)
	CheckSearch(t, s, b, store.Query{To: -1}, false)
}

// testIndexesIsolation fills two logs with overlapping seqs and the same
// kinds of values, and checks that no search or SeqAtTime of one shows
// anything of the other.
func testIndexesIsolation(t *testing.T, s LogIndexes) {
	ctx := context.Background()
	a, b, empty := isolationLogs(t, s)
	queries := []store.Query{
		{To: -1},
		{Actor: "alice", To: -1},
		{Actions: []string{"user.login", "document.read"}, To: -1},
		{ActionLike: "billing.", To: -1},
		{TargetType: "document", TargetID: "doc-3", To: -1},
		{TargetType: "org", To: -1},
		{TargetID: "inv-1", To: -1},
		{Outcome: event.Denied, To: -1},
		{IP: "10.0.0.1", To: -1},
		{Text: "audit", To: -1},
		{Text: "alice", Actor: "alice", To: -1},
		{From: 100, To: 200},
	}
	for _, q := range queries {
		for _, w := range []*Writer{a, b} {
			CheckSearch(t, s, w, q, false)
		}
		got, err := s.Search(ctx, empty.Info.ID, q)
		if err != nil || len(got) != 0 {
			t.Errorf("Search(empty log, %s) = %s, %v; want nothing", describe(q), short(seqs(got)), err)
		}
	}
	for _, at := range []time.Time{epoch, recvAt(5), recvAt(11), recvAt(20)} {
		for _, w := range []*Writer{a, b, empty} {
			want := w.Size()
			for _, e := range w.Events {
				if !e.ReceivedAt.Before(at) {
					want = e.Seq
					break
				}
			}
			if got, err := s.SeqAtTime(ctx, w.Info.ID, at); err != nil || got != want {
				t.Errorf("SeqAtTime(%q, %v) = %d, %v; want %d", w.Info.Name, at, got, err, want)
			}
		}
	}
}

// testSearchConcurrent searches, and gets the newest event, while a batch
// at a time is committed: results are committed events only, in order,
// matching.
func testSearchConcurrent(t *testing.T, s LogIndexes) {
	find := func(ctx context.Context, w *Writer, st store.State, _ int, check func(string, *event.Event)) error {
		q := store.Query{Actor: "bob", Text: "audit*", To: st.Size - 1, Limit: 20}
		res, err := s.Search(ctx, w.Info.ID, q)
		if err != nil {
			return err
		}
		for j, e := range res {
			check("Search", e)
			if !Match(q, e) || j > 0 && e.Seq >= res[j-1].Seq {
				return fmt.Errorf("Search(%s) returned seq %d out of order or not matching", describe(q), e.Seq)
			}
		}
		return nil
	}
	newest := func(ctx context.Context, w *Writer, st store.State, _ int, check func(string, *event.Event)) error {
		if st.Size == 0 {
			return nil // To -1 would not bound the search
		}
		res, err := s.Search(ctx, w.Info.ID, store.Query{To: st.Size - 1, Limit: 1})
		if err != nil {
			return err
		}
		if len(res) != 1 || res[0].Seq != st.Size-1 {
			return fmt.Errorf("Search(newest, To %d) = seqs %v, want %d", st.Size-1, seqs(res), st.Size-1)
		}
		for _, e := range res {
			check("Search", e)
		}
		return nil
	}
	readConcurrently(t, s, find, newest)
}
