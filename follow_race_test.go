package trail_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// writerAndReader makes a store of backend b with a log "acme", and
// returns it through a writing DB and through a read-only DB of its own,
// as two servers see it, with the store's URL.
func writerAndReader(t *testing.T, b backends.Backend) (w, r *trail.Log, url string) {
	t.Helper()
	ctx := context.Background()
	url = storeURL(b.New(t))
	wdb, err := trail.InitStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wdb.Close() })
	if w, err = wdb.CreateLog(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	rdb, err := trail.OpenStore(ctx, url, trail.Options{ReadOnly: true, MasterKey: b.MasterKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if r, err = rdb.Log(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	return w, r, url
}

// busy runs read in n goroutines until the test ends, as other requests
// to a server do.
func busy(t *testing.T, n int, read func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				read()
			}
		})
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// TestReadJustAcknowledgedElsewhere: an event another DB (another server
// behind the same load balancer) has just acknowledged is found by id and
// proved at once, and SizeFor covers it, while other reads keep this DB
// checking the log's size: a read that found such a check under way
// answered not found.
func TestReadJustAcknowledgedElsewhere(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		wl, rl, _ := writerAndReader(t, b)
		if _, err := wl.Append(ctx, event.Event{Actor: event.Actor{ID: "first"}, Action: "user.login"}); err != nil {
			t.Fatal(err)
		}
		busy(t, 3, func() { rl.ProveInclusion(ctx, 0, 1) })
		for i := range 100 {
			rc, err := wl.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login"})
			if err != nil {
				t.Fatal(err)
			}
			if size := rl.SizeFor(ctx, rc.Seq+1); size <= rc.Seq {
				t.Fatalf("append %d: SizeFor(%d) = %d just after another DB acknowledged seq %d", i, rc.Seq+1, size, rc.Seq)
			}
			rc, err = wl.Append(ctx, event.Event{Actor: event.Actor{ID: "v"}, Action: "user.login"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rl.Get(ctx, rc.ID); err != nil {
				t.Fatalf("append %d: Get of the event another DB just acknowledged: %v", i, err)
			}
		}
	})
}

// TestSearchJustAcknowledgedElsewhere: a search finds at once an event
// another DB has just acknowledged, while other reads keep this DB busy.
func TestSearchJustAcknowledgedElsewhere(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		wl, rl, _ := writerAndReader(t, b)
		busy(t, 1, func() { rl.Search(ctx, api.Query{Actor: "nobody", Limit: 1}) })
		for i := range 50 {
			actor := fmt.Sprintf("u%d", i)
			if _, err := wl.Append(ctx, event.Event{Actor: event.Actor{ID: actor}, Action: "user.login"}); err != nil {
				t.Fatal(err)
			}
			page, err := rl.Search(ctx, api.Query{Actor: actor})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) != 1 {
				t.Fatalf("search %d for the event another DB just acknowledged found %d", i, len(page.Events))
			}
		}
	})
}
