package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

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
func search(t *testing.T, s store.Store, w *Writer, q store.Query) []*event.Event {
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
func CheckSearch(t *testing.T, s store.Store, w *Writer, q store.Query, allowEmpty bool) {
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

func testSearch(t *testing.T, s store.Store) {
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
func testSearchWhileIndexing(t *testing.T, s store.Store) {
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

func testWaitIndexed(t *testing.T, s store.Store) {
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
