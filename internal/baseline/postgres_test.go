package baseline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// testEvents returns n distinct events, the i-th by actor u<i>.
func testEvents(from, n int) []event.Event {
	evs := make([]event.Event, n)
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range evs {
		k := from + i
		evs[i] = event.Event{
			Time:     at.Add(time.Duration(k) * time.Second),
			Actor:    event.Actor{ID: fmt.Sprintf("u%d", k), Type: event.ActorUser},
			Action:   "document.read",
			Targets:  []event.Target{{Type: "document", ID: fmt.Sprintf("d%d", k)}},
			Outcome:  event.Success,
			Source:   event.Source{IP: "192.0.2.7"},
			Metadata: json.RawMessage(`{"client":"cli"}`),
		}
	}
	return evs
}

// TestPostgres stores events with each of Insert, InsertBatch and Copy,
// and reads every row back: its columns and its JSON, on a durable
// connection, in a table with the three indexes.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	tbl, err := CreatePostgres(ctx, pgtest.DB(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()

	var want []event.Event
	one := testEvents(0, 1)
	if err := tbl.Insert(ctx, &one[0]); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	want = append(want, one...)
	batch := testEvents(1, 10)
	if err := tbl.InsertBatch(ctx, batch); err != nil {
		t.Fatalf("InsertBatch: %v", err)
	}
	want = append(want, batch...)
	copied := testEvents(11, 10)
	if err := tbl.Copy(ctx, copied); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	want = append(want, copied...)

	rows, err := tbl.Pool.Query(ctx, "SELECT time, actor_id, action, target_type, target_id, ip, outcome, event->'actor'->>'id', event->'metadata'->>'client' FROM audit ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Time                                             time.Time
		Actor, Action, TargetType, TargetID, IP, Outcome string
		JSONActor, JSONClient                            string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("table holds %d rows, want %d", len(got), len(want))
	}
	for i, e := range want {
		w := row{e.Time, e.Actor.ID, e.Action, e.Targets[0].Type, e.Targets[0].ID, e.Source.IP, string(e.Outcome), e.Actor.ID, "cli"}
		if !got[i].Time.Equal(w.Time) {
			t.Errorf("row %d time = %v, want %v", i, got[i].Time, w.Time)
		}
		got[i].Time = w.Time
		if got[i] != w {
			t.Errorf("row %d = %+v, want %+v", i, got[i], w)
		}
	}

	var sync string
	if err := tbl.Pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sync); err != nil || sync != "on" {
		t.Errorf("synchronous_commit = %q (%v), want on", sync, err)
	}
	rows, err = tbl.Pool.Query(ctx, "SELECT indexname FROM pg_indexes WHERE tablename = 'audit' ORDER BY indexname")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if wantIdx := []string{"audit_action", "audit_actor", "audit_pkey", "audit_target"}; !slices.Equal(idx, wantIdx) {
		t.Errorf("indexes = %q, want %q", idx, wantIdx)
	}
}
