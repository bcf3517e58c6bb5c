package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// schema2Events is the events table of schema versions 1 and 2: one row
// per event, with the action and outcome indexes a commit maintained.
const schema2Events = `
CREATE TABLE events (
	k            INTEGER PRIMARY KEY,
	received_at  INTEGER NOT NULL,
	time         INTEGER NOT NULL,
	actor_id     TEXT NOT NULL,
	action       TEXT NOT NULL,
	outcome      INTEGER NOT NULL,
	ip           TEXT NOT NULL,
	actor_type   TEXT NOT NULL,
	actor_email  TEXT NOT NULL,
	actor_role   TEXT NOT NULL,
	actor_name   TEXT NOT NULL,
	targets      TEXT NOT NULL,
	reason       TEXT NOT NULL,
	user_agent   TEXT NOT NULL,
	request_id   TEXT NOT NULL,
	trace_id     TEXT NOT NULL,
	before       TEXT NOT NULL,
	after        TEXT NOT NULL,
	metadata     TEXT NOT NULL
);
CREATE INDEX events_action ON events (action);
CREATE INDEX events_outcome ON events (outcome) WHERE outcome <> 0;`

// toSchema4 takes a closed database back to schema version 4: the rows of
// the posting tail become rows of the index tables, one per value and
// chunk, as version 4 wrote them.
func toSchema4(t *testing.T, path string) {
	t.Helper()
	toSchema5(t, path)
	db := rawDB(t, path)
	defer db.Close()
	rows, err := db.Query("SELECT seg, t, data FROM posting_tail")
	if err != nil {
		t.Fatal(err)
	}
	var inserts [][]any
	for rows.Next() {
		var seg int64
		var ix int
		var data []byte
		if err := rows.Scan(&seg, &ix, &data); err != nil {
			t.Fatal(err)
		}
		err := decodeTail(seg, data, func(a, b []byte, k int64, ks []byte) error {
			row := []any{ix, seg, string(a)}
			if ix == targetIndex {
				row = append(row, string(b))
			}
			inserts = append(inserts, append(row, k, slices.Clone(ks)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, row := range inserts {
		ix := postingIndexes[row[0].(int)]
		if _, err := db.Exec("INSERT INTO "+ix.table+" (seg, "+ix.cols+", k, ks) VALUES ("+placeholders(len(row)-1)+")", row[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, db, "DROP TABLE posting_tail", "PRAGMA user_version = 4")
}

// toSchema3 takes a closed database back to schema version 3: the
// segment-keyed indexes hold one row per event, and logs no posted_size.
func toSchema3(t *testing.T, path string) {
	t.Helper()
	toSchema4(t, path)
	db := rawDB(t, path)
	defer db.Close()
	for _, ix := range postingIndexes {
		cols := strings.Split(ix.cols, ", ")
		exec(t, db, "ALTER TABLE "+ix.table+" RENAME TO "+ix.table+"_v4",
			"CREATE TABLE "+ix.table+" (seg INTEGER NOT NULL, "+strings.Join(cols, " NOT NULL, ")+" NOT NULL, k INTEGER NOT NULL, PRIMARY KEY (seg, "+ix.cols+", k)) WITHOUT ROWID")
		rows, err := db.Query("SELECT " + ix.cols + ", k, ks FROM " + ix.table + "_v4")
		if err != nil {
			t.Fatal(err)
		}
		var v3 [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			dest := make([]any, len(cols))
			for i := range vals {
				dest[i] = &vals[i]
			}
			var k int64
			var ks []byte
			if err := rows.Scan(append(dest, &k, &ks)...); err != nil {
				t.Fatal(err)
			}
			keys, err := appendPosting(nil, k, ks, 0, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				v3 = append(v3, append([]any{segOf(k)}, append(vals, k)...))
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range v3 {
			if _, err := tx.Exec("INSERT INTO "+ix.table+" VALUES ("+placeholders(len(row))+")", row...); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		exec(t, db, "DROP TABLE "+ix.table+"_v4")
	}
	exec(t, db, "ALTER TABLE logs DROP COLUMN posted_size", "DELETE FROM events_fts_config WHERE k IN ('automerge', 'crisismerge', 'pgsz')",
		"PRAGMA user_version = 3")
}

// ftsSettings returns the full-text index's merge settings and leaf size,
// automerge/crisismerge/pgsz as FTS5 keeps them ("" for a default).
func ftsSettings(t *testing.T, db *sql.DB) string {
	t.Helper()
	var am, cm, pg sql.NullString
	if err := db.QueryRow(`SELECT (SELECT v FROM events_fts_config WHERE k = 'automerge'),
		(SELECT v FROM events_fts_config WHERE k = 'crisismerge'),
		(SELECT v FROM events_fts_config WHERE k = 'pgsz')`).Scan(&am, &cm, &pg); err != nil {
		t.Fatal(err)
	}
	return am.String + "/" + cm.String + "/" + pg.String
}

// toSchema2 rewrites the events of a closed database the way schema
// version 2 stored them, and drops what versions 3 and 4 added.
func toSchema2(t *testing.T, path string) {
	t.Helper()
	toSchema3(t, path)
	db := rawDB(t, path)
	defer db.Close()
	var evs []*event.Event
	rows, err := db.Query("SELECT k, data FROM events ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k int64
		var data []byte
		if err := rows.Scan(&k, &data); err != nil {
			t.Fatal(err)
		}
		bevs, err := decodeBundle("x", k, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range bevs {
			e.Seq |= k &^ (1<<seqBits - 1) // the event's key, for the insert below
		}
		evs = append(evs, bevs...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	exec(t, db, "ALTER TABLE events RENAME TO events_v3", schema2Events)
	for _, e := range evs {
		var before, after string
		if e.Changes != nil {
			before, after = string(e.Changes.Before), string(e.Changes.After)
		}
		if _, err := db.Exec("INSERT INTO events ("+v2Cols+") VALUES ("+placeholders(19)+")",
			e.Seq, e.ReceivedAt.UnixNano(), e.Time.UnixNano(), outcomeCode(e.Outcome), e.Actor.ID, e.Action, e.Source.IP,
			e.Actor.Type, e.Actor.Email, e.Actor.Role, e.Actor.Name, encodeTargets(e.Targets), e.Reason, e.Source.UserAgent,
			e.RequestID, e.TraceID, before, after, string(e.Metadata)); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, db, "DROP TABLE events_v3", "DROP TABLE by_action", "DROP TABLE by_outcome", "ALTER TABLE logs DROP COLUMN rolled_size", "PRAGMA user_version = 2")
}

// oldLogs creates a store at a new path, its indexer paused, with logs a,
// b and one left empty: a gets evs in batches of the given sizes, a
// second apart, and b the rest in one batch.
func oldLogs(t *testing.T, evs []event.Event, batches []int) (string, *Store, *storetest.Writer, *storetest.Writer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t)})
	pauseIndexer(s)
	a := storetest.NewWriter(t, s, "a")
	b := storetest.NewWriter(t, s, "b")
	storetest.NewWriter(t, s, "empty")
	for i, n := range batches {
		a.Append(t, s, t0.Add(time.Duration(i)*time.Second), evs[:n]...)
		evs = evs[n:]
	}
	b.Append(t, s, t0, evs...)
	return path, s, a, b
}

// TestUpgradeTo3 builds a database, takes it back to schema version 2 with
// one log fully indexed and one partly, and checks that a read-only store
// refuses it and that opening it read-write rewrites every event into
// bundles, tree and checkpoints intact, with the action and outcome
// indexes of the indexed events, after which the indexer does the rest.
func TestUpgradeTo3(t *testing.T) {
	ctx := context.Background()
	// Batches of uneven sizes, so that bundles start off multiples of
	// bundleMax, and single events.
	path, s, a, b := oldLogs(t, storetest.Events(1500, 11), []int{1, 700, 3, 1, 295})
	indexTo(t, s, a.Info.ID, a.Size())
	indexTo(t, s, b.Info.ID, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	toSchema2(t, path)

	if _, err := Open(ctx, path, Options{ReadOnly: true}); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("read-only Open of schema 2 = %v, want ErrNeedsUpgrade", err)
	}
	if v := userVersion(t, rawDB(t, path)); v != 2 {
		t.Fatalf("user_version after a read-only open = %d, want 2", v)
	}

	s = open(t, path, Options{Logger: testLogger(t), IndexDelay: time.Hour})
	if v := userVersion(t, s.r); v != schemaVersion {
		t.Errorf("user_version after the upgrade = %d, want %d", v, schemaVersion)
	}
	var rows int64
	if err := s.r.QueryRow("SELECT count(*) FROM events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if want := int64(1000+500) / bundleMax; rows < want || rows > 2*want {
		t.Errorf("%d bundles hold 1500 events, want about %d", rows, want)
	}
	for _, w := range []*storetest.Writer{a, b} {
		storetest.CheckLog(t, s, w)
	}
	// The indexes the upgrade filled, then those the indexer adds.
	for _, q := range []store.Query{
		{Actions: []string{"billing.refund", "admin.role.grant"}},
		{Outcome: event.Denied},
		{Outcome: event.Failure, Asc: true},
		{ActionLike: "user."},
		{Actor: "alice"},
	} {
		q.To = -1
		storetest.CheckSearch(t, s, a, q, false)
		storetest.CheckSearch(t, s, b, q, false)
	}
	for _, table := range []string{"by_action", "by_outcome"} {
		var max sql.NullInt64
		if err := s.r.QueryRow("SELECT max(k) FROM "+table+" WHERE k >= ? AND k < ?", eventKey(b.Info.ID, 0), eventKey(b.Info.ID+1, 0)).Scan(&max); err != nil {
			t.Fatal(err)
		}
		if !max.Valid || max.Int64 >= eventKey(b.Info.ID, 300) {
			t.Errorf("%s of log b after the upgrade reaches key %v, want below seq 300", table, max)
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.WaitIndexed(waitCtx, b.Info.ID); err != nil {
		t.Fatal(err)
	}
	storetest.CheckSearch(t, s, b, store.Query{Outcome: event.Denied, To: -1}, false)
}

// TestUpgradeTo4 takes a database back to schema version 3, with one log
// fully indexed, one partly and with the entries of a chunk cut off
// half-way, and checks that a read-only store refuses it and that opening
// it read-write turns the indexes into posting lists of exactly the
// indexed events, which searches use, after which the indexer does the
// rest.
func TestUpgradeTo4(t *testing.T) {
	ctx := context.Background()
	path, s, a, b := oldLogs(t, storetest.Events(2000, 12), []int{1, 700, 3, 296})
	if got := ftsSettings(t, s.r); got != "16/32/8000" {
		t.Errorf("full-text settings of a new database: %q, want 16/32/8000", got)
	}
	indexTo(t, s, a.Info.ID, 600) // two chunks...
	indexTo(t, s, a.Info.ID, a.Size())
	indexTo(t, s, b.Info.ID, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	toSchema3(t, path)
	// ... and what a version 3 chunk cut off after its first part left.
	db := rawDB(t, path)
	exec(t, db, fmt.Sprintf("INSERT INTO by_actor VALUES (%d, 'alice', %d)", segOf(eventKey(b.Info.ID, 400)), eventKey(b.Info.ID, 400)))
	db.Close()

	if _, err := Open(ctx, path, Options{ReadOnly: true}); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("read-only Open of schema 3 = %v, want ErrNeedsUpgrade", err)
	}
	s = open(t, path, Options{Logger: testLogger(t), IndexDelay: time.Hour})
	if v := userVersion(t, s.r); v != schemaVersion {
		t.Errorf("user_version after the upgrade = %d, want %d", v, schemaVersion)
	}
	if got := ftsSettings(t, s.r); got != "16/32/8000" {
		t.Errorf("full-text settings after the upgrade: %q, want 16/32/8000", got)
	}
	var posted int64
	if err := s.r.QueryRow("SELECT posted_size FROM logs WHERE id = ?", b.Info.ID).Scan(&posted); err != nil || posted != 300 {
		t.Errorf("posted_size of log b after the upgrade = %d, %v; want 300", posted, err)
	}
	indexed := func(w *storetest.Writer, seqs int64) []int64 {
		var keys []int64
		for seq := range seqs {
			keys = append(keys, eventKey(w.Info.ID, seq))
		}
		return keys
	}
	want := append(indexed(a, a.Size()), indexed(b, 300)...)
	for _, table := range []string{"by_action", "by_actor"} {
		if got := postingKeys(t, s.r, table); !slices.Equal(got, want) {
			t.Errorf("%s after the upgrade lists %d events, want the %d indexed", table, len(got), len(want))
		}
	}
	var rows int64
	if err := s.r.QueryRow("SELECT count(*) FROM by_action").Scan(&rows); err != nil || rows >= int64(len(want))/4 {
		t.Errorf("by_action holds %d rows (%v) for %d events; want a few per action", rows, err, len(want))
	}
	queries := []store.Query{
		{Actions: []string{"billing.refund", "admin.role.grant"}},
		{Outcome: event.Denied},
		{Outcome: event.Failure, Asc: true},
		{Actor: "alice"},
		{Actor: "alice", Asc: true, From: 100, To: 900},
		{IP: "10.0.0.1"},
		{TargetType: "document", TargetID: "doc-3"},
	}
	for _, q := range queries {
		if q.To == 0 {
			q.To = -1
		}
		storetest.CheckSearch(t, s, a, q, false)
		storetest.CheckSearch(t, s, b, q, false)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.WaitIndexed(waitCtx, b.Info.ID); err != nil {
		t.Fatal(err)
	}
	want = append(indexed(a, a.Size()), indexed(b, b.Size())...)
	for _, table := range []string{"by_action", "by_actor"} {
		if got := postingKeys(t, s.r, table); !slices.Equal(got, want) {
			t.Errorf("%s once indexed lists %d events, want all %d", table, len(got), len(want))
		}
	}
	for _, q := range queries {
		if q.To == 0 {
			q.To = -1
		}
		storetest.CheckSearch(t, s, b, q, false)
	}
}
