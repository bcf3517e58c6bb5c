package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
)

func TestIndexes(t *testing.T) {
	storetest.RunIndexes(t, func(t *testing.T) storetest.LogIndexes { return newStore(t) })
}

// TestSearchDamaged checks that a search meeting an event that is missing
// or cannot be decoded fails with a *store.DamagedError at its seq, rather
// than skip it, and that SeqAtTime does too.
func TestSearchDamaged(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := open(t, url)
	w := storetest.NewWriter(t, s, "audit")
	w.Append(t, s, t0, storetest.Events(30, 1)...)
	w.Append(t, s, t0.Add(time.Second), storetest.Events(30, 2)...)
	conn := raw(t, url)
	if _, err := conn.Exec(ctx, "DELETE FROM events WHERE log = $1 AND seq = 40", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "UPDATE events SET data = '\\x7b7b'::bytea WHERE log = $1 AND seq = 10", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		q       store.Query
		seq     int64
		problem string
	}{
		{"missing, newest first", store.Query{To: -1}, 40, store.ProblemMissing},
		{"undecodable, oldest first", store.Query{To: -1, Asc: true}, 10, store.ProblemUndecodable},
		{"undecodable, newest first", store.Query{To: 30}, 10, store.ProblemUndecodable},
	}
	for _, c := range cases {
		_, err := s.Search(ctx, w.Info.ID, c.q)
		var de *store.DamagedError
		if !errors.As(err, &de) || de.Seq != c.seq || de.Problem != c.problem {
			t.Errorf("%s: Search = %v, want a *store.DamagedError at seq %d: %s", c.name, err, c.seq, c.problem)
		}
	}
	if got, err := s.Search(ctx, w.Info.ID, store.Query{From: 11, To: 39}); err != nil || len(got) != 29 {
		t.Errorf("Search(seqs 11 to 39) = %d events, %v; want 29", len(got), err)
	}
	// The events of the second batch were received at t0+1s; seq 30 is
	// intact, seq 40 is missing.
	if got, err := s.SeqAtTime(ctx, w.Info.ID, t0.Add(time.Second)); err != nil || got != 30 {
		t.Errorf("SeqAtTime(second batch) = %d, %v; want 30", got, err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM events WHERE log = $1 AND seq = 30", w.Info.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.SeqAtTime(ctx, w.Info.ID, t0.Add(time.Second))
	var de *store.DamagedError
	if !errors.As(err, &de) || de.Seq != 30 || de.Problem != store.ProblemMissing {
		t.Errorf("SeqAtTime(second batch) after deleting seq 30 = %v, want a *store.DamagedError at seq 30", err)
	}
}
