package sqlite

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

func TestRecentEvents(t *testing.T) {
	var r recentEvents
	r.add(1, evs(0, 10))
	r.add(1, evs(10, 5))
	if got := r.get(1, 3, 15); len(got) != 12 || got[0].Seq != 3 || got[11].Seq != 14 {
		t.Fatalf("get(3, 15) = %d events", len(got))
	}
	if r.get(1, 3, 16) != nil || r.get(2, 0, 1) != nil {
		t.Error("get beyond what is held returned events")
	}
	r.drop(1, 12)
	if r.get(1, 11, 13) != nil || len(r.get(1, 12, 15)) != 3 || r.total != 3 {
		t.Errorf("after drop(12): total %d", r.total)
	}
	// A gap starts over.
	r.add(1, evs(20, 2))
	if r.get(1, 12, 15) != nil || len(r.get(1, 20, 22)) != 2 || r.total != 2 {
		t.Errorf("after a gap: total %d", r.total)
	}
	// Past the bound, the log is dropped and read from the database.
	r.add(2, evs(0, maxRecent))
	if r.get(2, 0, 1) != nil || r.total != 2 {
		t.Errorf("over the bound: held %v, total %d", r.get(2, 0, 1) != nil, r.total)
	}
}
