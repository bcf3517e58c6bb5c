package trail_test

import (
	"context"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// A request retried with its idempotency key through another DB of the
// store (another server behind the load balancer) gets the first
// request's receipts, and that DB serves those events at once, though it
// read the log's size a moment before the first request was committed.
func TestReplayFollowsOtherWriter(t *testing.T) {
	ctx := context.Background()
	server, sl := newDataDir(t, trail.Options{})
	other, err := trail.Open(ctx, server.Dir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ol, err := other.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ol.Search(ctx, api.Query{}); err != nil { // the other DB reads the size now
		t.Fatal(err)
	}
	evs := storetest.Events(3, 11)
	id := trail.Idempotency{Scope: "k", Key: "retried", Fingerprint: []byte{7}}
	first, replayed, err := sl.AppendIdempotent(ctx, evs, id)
	if err != nil || replayed {
		t.Fatalf("AppendIdempotent = %v, %v", replayed, err)
	}
	again, replayed, err := ol.AppendIdempotent(ctx, evs, id)
	if err != nil || !replayed || len(again) != len(first) || again[2] != first[2] {
		t.Fatalf("AppendIdempotent through the other DB = %v, %v, %v; want %v replayed", again, replayed, err, first)
	}
	if size := ol.Size(); size <= first[2].Seq {
		t.Errorf("the other DB acknowledged seq %d but serves a log of %d events", first[2].Seq, size)
	}
	page, err := ol.Search(ctx, api.Query{})
	if err != nil || len(page.Events) == 0 || page.Events[0].ID != first[2].ID {
		t.Errorf("search through the other DB right after the replay: %v, want the replayed events first", err)
	}
}
