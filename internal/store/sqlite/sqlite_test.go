package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func (s *Store) indexedSize(log int64) int64 { return s.ix.indexedTo(log) }

// t0 is when the tests' logs start receiving events: after the times of
// storetest.Events.
var t0 = time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)

// testLogger sends a store's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func create(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Create(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// conformanceStore opens a new, empty store for the conformance suites,
// with small indexer chunks, so that searches meet logs that are partly
// indexed.
func conformanceStore(t *testing.T) *Store {
	return create(t, filepath.Join(t.TempDir(), "trail.db"), Options{IndexChunk: 300, Logger: testLogger(t)})
}

func TestLog(t *testing.T) {
	storetest.RunLog(t, func(t *testing.T) store.Log { return conformanceStore(t) })
}

func TestIndexes(t *testing.T) {
	storetest.RunIndexes(t, func(t *testing.T) storetest.LogIndexes { return conformanceStore(t) })
}

func TestAccess(t *testing.T) {
	storetest.RunAccess(t, func(t *testing.T) storetest.LogAccess { return conformanceStore(t) })
}

// TestReopen checks that committed logs survive closing the store and that
// a writer resumes from the reopened store's State.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{})
	a := storetest.NewWriter(t, s, "a")
	b := storetest.NewWriter(t, s, "b")
	evs := storetest.Events(900, 1)
	a.Append(t, s, t0.Add(1), evs[:600]...)
	b.Append(t, s, t0.Add(2), evs[600:]...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s = open(t, path, Options{})
	storetest.CheckLog(t, s, a)
	storetest.CheckLog(t, s, b)
	a.Append(t, s, t0.Add(time.Second), evs[:100]...)
	storetest.CheckLog(t, s, a)
	storetest.CheckSearch(t, s, a, store.Query{Text: "audit", To: -1}, false)
}

// pauseIndexer stops s's background indexer until the returned function
// starts it again.
func pauseIndexer(s *Store) (resume func()) {
	s.ix.stop()
	return s.ix.start
}

// indexTo runs the indexer of a paused store until exactly the first mark
// events of log are indexed.
func indexTo(t *testing.T, s *Store, log, mark int64) {
	t.Helper()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	chunk := s.ix.chunk
	defer func() { s.ix.chunk = chunk }()
	for n := s.indexedSize(log); n < mark; n = s.indexedSize(log) {
		s.ix.chunk = int(mark - n)
		more, err := s.ix.indexChunkHeld(context.Background(), log)
		if err != nil {
			t.Fatalf("indexChunkHeld = %v", err)
		}
		if !more {
			t.Fatalf("the indexer stopped at %d, before %d", n, mark)
		}
	}
	if n := s.indexedSize(log); n != mark {
		t.Fatalf("indexed %d events, want %d", n, mark)
	}
}

// searchQueries exercise each index and the full-text search, alone and
// with filters applied to rows.
var searchQueries = []store.Query{
	{Actor: "alice", To: -1},
	{Actor: "zoë", Outcome: event.Failure, To: -1},
	{IP: "10.0.0.1", To: -1},
	{IP: "2001:db8::1", Actor: "bob", To: -1},
	{TargetType: "document", TargetID: "doc-3", To: -1},
	{TargetType: "org", TargetID: "org-1", ActionLike: "user.", To: -1},
	{TargetID: "inv-2", To: -1},
	{Text: "audit", To: -1},
	{Text: "éco*", To: -1},
	{Text: "ΟΔΟΣ", To: -1},
	{Text: "needle", Actor: "bob", To: -1},
	{Text: "Ünï*", TargetType: "org", TargetID: "org-2", To: -1},
	{Text: "refund", From: 300, To: 700},
	{Text: "login", Outcome: event.Failure, To: -1},
	{Actions: []string{"user.login", "document.read"}, To: -1},
	{Outcome: event.Denied, From: 100, To: 750},
}

// TestSearchBeforeIndexing searches a log whose indexes (actor, ip,
// target, full text) stop at a known seq, none, part or all of the log, and
// again once the background indexer has caught up.
func TestSearchBeforeIndexing(t *testing.T) {
	for _, mark := range []int64{0, 1, 500, 799} {
		t.Run(fmt.Sprintf("indexed to %d", mark), func(t *testing.T) {
			s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
			resume := pauseIndexer(s)
			w := storetest.NewWriter(t, s, "audit")
			evs := storetest.Events(800, 7)
			w.Append(t, s, t0, evs[:600]...)
			w.Append(t, s, t0.Add(time.Second), evs[600:]...)
			indexTo(t, s, w.Info.ID, mark)
			for _, q := range searchQueries {
				storetest.CheckSearch(t, s, w, q, false)
			}
			resume()
			if mark > 0 {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
				t.Fatalf("WaitIndexed = %v", err)
			}
			if got := s.indexedSize(w.Info.ID); got != w.Size() {
				t.Fatalf("after WaitIndexed the indexes cover %d events of %d", got, w.Size())
			}
			for _, q := range searchQueries {
				storetest.CheckSearch(t, s, w, q, false)
			}
		})
	}
}

// TestIndexLag checks that Commit indexes a log itself when the background
// indexer falls more than MaxIndexLag events behind, and that searches stay
// complete meanwhile.
func TestIndexLag(t *testing.T) {
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{MaxIndexLag: 300, IndexChunk: 100})
	defer pauseIndexer(s)()
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(1500, 8)
	for i := 0; len(evs) > 0; i++ {
		n := min(200, len(evs))
		before := w.Size()
		w.Append(t, s, t0.Add(time.Duration(i)*time.Second), evs[:n]...)
		evs = evs[n:]
		if lag := before - s.indexedSize(w.Info.ID); lag > 300 {
			t.Fatalf("after a commit at size %d the index stops at %d: %d events behind, more than MaxIndexLag 300", before, s.indexedSize(w.Info.ID), lag)
		}
	}
	if s.indexedSize(w.Info.ID) == 0 {
		t.Fatal("Commit never indexed")
	}
	for _, q := range searchQueries {
		storetest.CheckSearch(t, s, w, q, false)
	}
}

// TestQueryPlans checks how SQLite runs the searches that must stay fast on
// large logs. Below the indexer's watermark each is driven by the index for
// its filter: the full-text index walked in seq order, or the posting lists
// of a value in one segment (by_actor, by_ip, by_target, ...), found by
// their primary key; never a sort of every match ("USE TEMP B-TREE FOR
// ORDER BY"). Above it, events are walked by primary key, also in order.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	w := storetest.NewWriter(t, s, "audit")
	evs := storetest.Events(2000, 3)
	for i := range 4 {
		w.Append(t, s, t0.Add(time.Duration(i)*time.Second), evs[i*500:(i+1)*500]...)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.WaitIndexed(waitCtx, w.Info.ID); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		q     store.Query
		table string         // the index that proposes candidates; "" for none (a walk by seq)
		want  *regexp.Regexp // matches its plan
	}{
		{name: "actor", q: store.Query{Actor: "alice"}, table: "by_actor", want: byKey("by_actor", "actor_id=?")},
		{name: "actor oldest first", q: store.Query{Actor: "alice", Asc: true}, table: "by_actor", want: byKey("by_actor", "actor_id=?")},
		{name: "ip", q: store.Query{IP: "10.0.0.1"}, table: "by_ip", want: byKey("by_ip", "ip=?")},
		{name: "ip oldest first", q: store.Query{IP: "10.0.0.1", Asc: true}, table: "by_ip", want: byKey("by_ip", "ip=?")},
		{name: "target", q: store.Query{TargetType: "document", TargetID: "doc-3"}, table: "by_target", want: byKey("by_target", "type=? AND id=?")},
		{name: "target oldest first", q: store.Query{TargetType: "document", TargetID: "doc-3", Asc: true}, table: "by_target", want: byKey("by_target", "type=? AND id=?")},
		{name: "text", q: store.Query{Text: "audit"}, table: "events_fts", want: ftsScan},
		{name: "text oldest first", q: store.Query{Text: "audit", Asc: true}, table: "events_fts", want: ftsScan},
		{name: "text and actor", q: store.Query{Text: "audit", Actor: "alice"}, table: "events_fts", want: ftsScan},
		{name: "text and target", q: store.Query{Text: "audit", TargetType: "document", TargetID: "doc-3"}, table: "events_fts", want: ftsScan},
		{name: "actor and ip", q: store.Query{Actor: "alice", IP: "10.0.0.1"}, table: "by_actor", want: byKey("by_actor", "actor_id=?")},
		{name: "rare actions", q: store.Query{Actions: []string{"billing.refund", "admin.role.grant"}}, table: "by_action", want: byKey("by_action", "action=?")},
		// Leaving out most of the log (as the viewer leaves out Trail's
		// own reads) is a search for the rare rest, not a walk.
		{name: "all but the common actions", q: store.Query{NotActionLike: "user.", NotActions: []string{"document.read", "document.update", "document.delete", "billing.invoice.paid"}}, table: "by_action", want: byKey("by_action", "action=?")},
		{name: "all but the common actions, listed", q: store.Query{NotActions: []string{"user.login", "user.login.failed", "user.logout", "user.password.change", "document.read", "document.update", "document.delete", "billing.invoice.paid"}}, table: "by_action", want: byKey("by_action", "action=?")},
		{name: "all but a rare action", q: store.Query{NotActions: []string{"billing.refund"}}},
		{name: "outcome", q: store.Query{Outcome: event.Denied}, table: "by_outcome", want: byKey("by_outcome", "outcome=?")},
		{name: "outcome oldest first", q: store.Query{Outcome: event.Denied, Asc: true}, table: "by_outcome", want: byKey("by_outcome", "outcome=?")},
		{name: "all", q: store.Query{}},
		{name: "common actions", q: store.Query{ActionLike: "user."}},
		{name: "success", q: store.Query{Outcome: event.Success}},
		{name: "target type", q: store.Query{TargetType: "org"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.To, q.Limit = -1, 50
			p, err := s.plan(ctx, w.Info.ID, q)
			if err != nil {
				t.Fatal(err)
			}
			if c.table == "" {
				if p.drive != "" {
					t.Errorf("Search(%s) is driven by the %s index, want a walk by seq", describe(c.q), p.drive)
				}
				return
			}
			sq := p.query(q.Asc)
			if !strings.Contains(sq.text, " FROM "+c.table+" ") {
				t.Fatalf("Search(%s) is not driven by %s:\n%s", describe(c.q), c.table, sq.text)
			}
			var args []any
			if sq.segmented {
				args = append(append(args, segOf(eventKey(w.Info.ID, 0))), sq.head...)
				args = append(args, eventKey(w.Info.ID, w.Size()-1))
			} else {
				args = append(append(args, sq.head...), eventKey(w.Info.ID, 0), eventKey(w.Info.ID, w.Size()-1), q.Limit)
			}
			plan := explain(t, s.r, sq.text, args)
			t.Logf("plan:\n%s", plan)
			if !c.want.MatchString(plan) {
				t.Errorf("plan of Search(%s) does not match %q:\n%s", describe(c.q), c.want, plan)
			}
			if strings.Contains(plan, "USE TEMP B-TREE FOR ORDER BY") {
				t.Errorf("plan of Search(%s) sorts every match:\n%s", describe(c.q), plan)
			}
		})
	}
}

// byKey matches a plan that finds table's posting rows by primary key:
// the segment, the given equality terms, and a bound on k.
func byKey(table, terms string) *regexp.Regexp {
	return regexp.MustCompile(`^SEARCH ` + table + ` USING PRIMARY KEY \(seg=\? AND ` + regexp.QuoteMeta(terms) + ` AND k<\?\)$`)
}

// ftsScan matches a plan that takes the full-text matches in rowid order
// (the rowid range is part of the virtual table's index).
var ftsScan = regexp.MustCompile(`^SCAN events_fts VIRTUAL TABLE INDEX \d+:M\d+><$`)

func describe(q store.Query) string { return fmt.Sprintf("%+v", q) }

func explain(t *testing.T, db *sql.DB, query string, args []any) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
