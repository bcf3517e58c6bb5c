package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/server"
)

// An app sends its audit events to a trail server, finds them again, and
// checks the server's answers against the log's verifier key, which it was
// given out of band: it never takes the server's word for them.
func Example() {
	url, key, verifierKey, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, err := client.New(url, key, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	rcs, err := c.Append(ctx,
		event.Event{Actor: event.Actor{ID: "u_42"}, Action: "user.password.reset", Targets: []event.Target{{Type: "user", ID: "u_7"}}},
		event.Event{Actor: event.Actor{ID: "u_9"}, Action: "user.login", Outcome: event.Denied},
	)
	if err != nil {
		log.Fatal(err)
	}

	page, err := c.SearchPage(ctx, api.Query{Action: "user.*", Outcome: event.Denied})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Events {
		fmt.Println(e.Actor.ID, e.Action, e.Outcome)
	}

	v, err := c.Get(ctx, rcs[0].ID, verifierKey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Event.Action, "is in the signed tree of size", v.Checkpoint.Size)

	cp, err := c.Verify(ctx, verifierKey, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	// The log holds Trail's own events too: the key's creation, and the
	// search and the fetch, which were audited as reads.
	fmt.Println("whole log verified up to size", cp.Size)
	// Output:
	// u_9 user.login denied
	// user.password.reset is in the signed tree of size 5
	// whole log verified up to size 5
}

// startServer runs a trail server on a new data directory with one log and
// a key that may append and read it, as `trail serve` would.
func startServer() (url, key, verifierKey string, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trail-client-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		log.Fatal(err)
	}
	admin := trail.Caller{Actor: event.Actor{ID: "ops", Type: event.ActorUser}}
	key, _, err = db.CreateKey(ctx, admin, "acme", "app", trail.ScopeAppend, trail.ScopeRead)
	if err != nil {
		log.Fatal(err)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(server.New(db, server.Options{}))
	return srv.URL, key, l.VerifierKey(), func() {
		srv.Close()
		db.Close()
		os.RemoveAll(dir)
	}
}
