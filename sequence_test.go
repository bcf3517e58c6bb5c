package trail

import (
	"context"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

// TestSequenceStampsTimeless: an event sent without a time gets its
// receipt time whenever its request is first sequenced. A commit may fail
// before it sequences (its log moved since the writer read it, say), so
// the first sequencing may come at a later try; sequencing again gives it
// the new receipt time, and leaves an event's own time alone.
func TestSequenceStampsTimeless(t *testing.T) {
	ctx := context.Background()
	db, err := Init(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "audit", "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	timed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []*event.Event{
		{Action: "user.login", Actor: event.Actor{ID: "alice", Type: "user"}, Outcome: event.Success},
		{Action: "user.login", Actor: event.Actor{ID: "bob", Type: "user"}, Outcome: event.Success, Time: timed},
	}
	r := &appendReq{log: l, events: evs, err: make(chan error, 1)}
	now := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	for try := range 2 {
		order, err := db.w.sequence([]*appendReq{r}, now.Add(time.Duration(try)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := order[0].batch.Events
		if !got[0].Time.Equal(now.Add(time.Duration(try)*time.Second)) || !got[1].Time.Equal(timed) {
			t.Errorf("sequencing %d: times %v and %v, want the receipt time %v and the event's own %v",
				try+1, got[0].Time, got[1].Time, now.Add(time.Duration(try)*time.Second), timed)
		}
	}

	// Should an event still have no time, it is refused, not stored as a
	// record no one can read back.
	lost := &appendReq{log: l, events: []*event.Event{{Action: "user.login", Actor: event.Actor{ID: "carol", Type: "user"}, Outcome: event.Success}},
		err: make(chan error, 1), stamped: true}
	if _, err := db.w.sequence([]*appendReq{lost}, now); err == nil {
		t.Error("sequence of an event with no time, its request taken as stamped: no error")
	}
}
