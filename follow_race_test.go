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

// TestReadJustAcknowledgedElsewhere: an event another DB (another server
// behind the same load balancer) has just acknowledged is found by id and
// proved at once, and SizeFor covers it, while other reads keep this DB
// checking the log's size: a read that found such a check under way
// answered not found.
func TestReadJustAcknowledgedElsewhere(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		url := storeURL(b.New(t))
		w, err := trail.InitStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wl, err := w.CreateLog(ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wl.Append(ctx, event.Event{Actor: event.Actor{ID: "first"}, Action: "user.login"}); err != nil {
			t.Fatal(err)
		}
		r, err := trail.OpenStore(ctx, url, trail.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rl, err := r.Log(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					rl.ProveInclusion(ctx, 0, 1)
				}
			})
		}
		defer func() { close(stop); wg.Wait() }()
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
		url := storeURL(b.New(t))
		w, err := trail.InitStore(ctx, url, trail.Options{MasterKey: b.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wl, err := w.CreateLog(ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := trail.OpenStore(ctx, url, trail.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rl, err := r.Log(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rl.Search(ctx, api.Query{Actor: "nobody", Limit: 1})
			}
		})
		defer func() { close(stop); wg.Wait() }()
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
