package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
)

// Every search and get is recorded in the reading key's log, with the key
// as actor and the filters as metadata; the other tenant's log is not
// touched, and turning the option off stops it.
func TestReadAudit(t *testing.T) {
	e := newEnvAudit(t, server.Options{})
	var receipts struct {
		Events []struct{ ID string } `json:"events"`
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(`{"actor":{"id":"ana"},"action":"user.delete"}`), &receipts)
	e.ok(200, "GET", "/v1/events?actor=ana&limit=5", "acme-read", "", nil, nil)
	e.ok(200, "GET", "/v1/events/"+receipts.Events[0].ID, "acme-read", "", nil, nil)

	l, err := e.db.Log(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	page, err := l.Search(context.Background(), trail.Query{Action: "trail.*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 {
		t.Fatalf("acme holds %d trail.* events, want 2 (one search, one get)", len(page.Events))
	}
	get, search := page.Events[0], page.Events[1]
	if search.Action != "trail.search" || search.Actor.ID != e.ids["acme-read"] || search.Actor.Name != "acme-read" {
		t.Errorf("search audit event = %s by %+v", search.Action, search.Actor)
	}
	var md map[string]string
	if err := json.Unmarshal(search.Metadata, &md); err != nil || md["actor"] != "ana" || md["limit"] != "5" {
		t.Errorf("search audit metadata = %s (%v), want the filters", search.Metadata, err)
	}
	if get.Action != "trail.get" || len(get.Targets) != 1 || get.Targets[0] != (trail.Target{Type: "event", ID: receipts.Events[0].ID}) {
		t.Errorf("get audit event = %s targets %+v", get.Action, get.Targets)
	}
	if g, _ := e.db.Log(context.Background(), "globex"); g.Size() != 0 {
		t.Errorf("globex holds %d events after acme's reads, want 0", g.Size())
	}

	off := newEnv(t, server.Options{})
	off.ok(200, "GET", "/v1/events", "acme-read", "", nil, nil)
	if l, _ := off.db.Log(context.Background(), "acme"); l.Size() != 0 {
		t.Errorf("with NoReadAudit, a search appended %d events", l.Size())
	}
}
