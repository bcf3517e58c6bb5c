package store

import (
	"testing"

	"github.com/trail-audit/trail/event"
)

func evs(from, n int64) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		out[i] = &event.Event{Seq: from + int64(i)}
	}
	return out
}

func TestRecent(t *testing.T) {
	var r Recent
	r.Add(1, evs(0, 10))
	r.Add(1, evs(10, 5))
	if got := r.Get(1, 3, 15); len(got) != 12 || got[0].Seq != 3 || got[11].Seq != 14 {
		t.Fatalf("Get(3, 15) = %d events", len(got))
	}
	if from, to := r.Held(1); from != 0 || to != 15 {
		t.Errorf("Held = [%d, %d), want [0, 15)", from, to)
	}
	if r.Get(1, 3, 16) != nil || r.Get(2, 0, 1) != nil {
		t.Error("Get beyond what is held returned events")
	}
	// Bounds the wrong way round, as a damaged database's index progress
	// gives them: nothing, not a panic.
	if r.Get(1, 9, 2) != nil {
		t.Error("Get(9, 2) returned events")
	}
	r.Drop(1, 12)
	if r.Get(1, 11, 13) != nil || len(r.Get(1, 12, 15)) != 3 || r.total != 3 {
		t.Errorf("after Drop(12): total %d", r.total)
	}
	// A gap starts over.
	r.Add(1, evs(20, 2))
	if r.Get(1, 12, 15) != nil || len(r.Get(1, 20, 22)) != 2 || r.total != 2 {
		t.Errorf("after a gap: total %d", r.total)
	}
	// Past the bound, the log is dropped and read from the database.
	r.Add(2, evs(0, MaxRecent))
	if r.Get(2, 0, 1) != nil || r.total != 2 {
		t.Errorf("over the bound: held %v, total %d", r.Get(2, 0, 1) != nil, r.total)
	}
	if from, to := r.Held(2); from != to {
		t.Errorf("Held of a dropped log = [%d, %d)", from, to)
	}
}
