package trail_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestIdempotencyAcrossDBs sends one request with one idempotency key
// through two DBs on one store at the same moment, as a client retrying
// through another server while its first attempt is still in flight:
// whichever commits first stores the events, and the other answers with
// its receipts. The events are stored once, never twice.
func TestIdempotencyAcrossDBs(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		url := storeURL(b.New(t))
		db, err := trail.InitStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateLog(ctx, "acme", ""); err != nil {
			t.Fatal(err)
		}
		db.Close()
		var nodes [2]*trail.Log
		for i := range nodes {
			db, err := trail.OpenStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if nodes[i], err = db.Log(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
		}
		const rounds, perRequest = 40, 3
		for round := range rounds {
			evs := make([]event.Event, perRequest)
			for i := range evs {
				evs[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("u_%d_%d", round, i)}, Action: "user.login"}
			}
			id := trail.Idempotency{Scope: "key_1", Key: fmt.Sprintf("retry-%d", round), Fingerprint: []byte{byte(round)}}
			var (
				wg       sync.WaitGroup
				start    = make(chan struct{})
				got      [2][]api.Receipt
				replayed [2]bool
				errs     [2]error
			)
			for i, l := range nodes {
				wg.Go(func() {
					<-start
					got[i], replayed[i], errs[i] = l.AppendIdempotent(ctx, evs, id)
				})
			}
			close(start)
			wg.Wait()
			for i := range nodes {
				if errs[i] != nil {
					t.Fatalf("round %d, node %d: %v", round, i, errs[i])
				}
			}
			if !slices.Equal(got[0], got[1]) || replayed[0] == replayed[1] {
				t.Fatalf("round %d: node 0 got %v (replayed %v), node 1 %v (replayed %v); want the same receipts, one of them replayed",
					round, got[0], replayed[0], got[1], replayed[1])
			}
		}
		for i, l := range nodes {
			n := 0
			for e, err := range l.Events(ctx, api.Query{Limit: 10000}) {
				if err != nil {
					t.Fatal(err)
				}
				if e.Action == "user.login" {
					n++
				}
			}
			if n != rounds*perRequest {
				t.Fatalf("node %d finds %d events, want %d: a request was stored twice", i, n, rounds*perRequest)
			}
		}
	})
}
