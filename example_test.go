package trail_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// An app embeds Trail: it creates a data directory once, appends an event
// for each audited action, searches them and verifies the log.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trail-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		log.Fatal(err)
	}

	rc, err := l.Append(ctx, event.Event{
		Actor:   event.Actor{ID: "u_42", Type: event.ActorUser},
		Action:  "user.delete",
		Targets: []event.Target{{Type: "user", ID: "u_7"}},
		Source:  event.Source{IP: "203.0.113.9"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := l.Append(ctx, event.Event{
		Actor:   event.Actor{ID: "u_9"},
		Action:  "user.login",
		Outcome: event.Failure,
		Reason:  "wrong password",
	}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at seq", rc.Seq)

	page, err := l.Search(ctx, api.Query{Outcome: event.Failure})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Events {
		fmt.Println(e.Seq, e.Actor.ID, e.Action, e.Outcome, e.Reason)
	}

	rep, err := l.Verify(ctx, trail.VerifyOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified", rep.Size, "events")
	// Output:
	// stored at seq 0
	// 1 u_9 user.login failure wrong password
	// verified 2 events
}
