package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/event"
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

// toSchema2 rewrites the events of a closed database the way schema
// version 2 stored them, and drops what version 3 added.
func toSchema2(t *testing.T, path string) {
	t.Helper()
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

// TestUpgradeTo3 builds a database, takes it back to schema version 2 with
// one log fully indexed and one partly, and checks that a read-only store
// refuses it and that opening it read-write rewrites every event into
// bundles, tree and checkpoints intact, with the action and outcome
// indexes of the indexed events, after which the indexer does the rest.
func TestUpgradeTo3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	s := create(t, path, Options{Logger: testLogger(t)})
	pauseIndexer(s)
	a := storetest.NewWriter(t, s, "a")
	b := storetest.NewWriter(t, s, "b")
	storetest.NewWriter(t, s, "empty")
	evs := storetest.Events(1500, 11)
	// Batches of uneven sizes, so that bundles start off multiples of
	// bundleMax, and single events.
	for i, n := range []int{1, 700, 3, 1, 295} {
		a.Append(t, s, t0.Add(time.Duration(i)*time.Second), evs[:n]...)
		evs = evs[n:]
	}
	b.Append(t, s, t0, evs...)
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
