package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
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
	page, err := l.Search(context.Background(), api.Query{Action: "trail.*", Actor: e.ids["acme-read"]})
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
	if get.Action != "trail.get" || len(get.Targets) != 1 || get.Targets[0] != (event.Target{Type: "event", ID: receipts.Events[0].ID}) {
		t.Errorf("get audit event = %s targets %+v", get.Action, get.Targets)
	}
	// A read refused for a parameter it does not take is not recorded.
	before := l.Size()
	e.fails(400, "invalid_parameter", "p00", "GET", "/v1/events/"+receipts.Events[0].ID+"?p00=v", "acme-read", "", nil)
	if l.Size() != before {
		t.Errorf("a refused get appended %d events, want none", l.Size()-before)
	}
	// A refused export is not recorded as one.
	before = l.Size()
	e.do("GET", "/v1/export?action=BAD", "acme-read", "", nil)
	if l.Size() != before {
		t.Errorf("a refused export appended %d events, want none", l.Size()-before)
	}

	// A key denied a route for lack of its scope is recorded as such,
	// in its own log: an invalid access attempt.
	e.fails(403, "forbidden", "", "GET", "/v1/events?actor=ana", "acme-append", "", nil)
	e.fails(403, "forbidden", "", "POST", "/v1/events", "acme-read", "application/json", []byte(`{"actor":{"id":"x"},"action":"user.login"}`))
	page, err = l.Search(context.Background(), api.Query{Action: trail.ActionAccess, Limit: 10})
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("after two denied requests, acme holds %d %s events (%v), want 2", len(page.Events), trail.ActionAccess, err)
	}
	for i, c := range []struct{ key, route, scope string }{
		{"acme-read", "POST /v1/events", "append"},
		{"acme-append", "GET /v1/events", "read"},
	} {
		d := page.Events[i]
		if d.Actor.ID != e.ids[c.key] || d.Outcome != event.Denied || !strings.Contains(d.Reason, "lacks the "+c.scope+" scope") ||
			len(d.Targets) != 1 || d.Targets[0] != (event.Target{Type: "route", ID: c.route}) {
			t.Errorf("denied request %d recorded as %s by %s, outcome %s, reason %q, targets %+v; want %s denied to %s for lack of %s",
				i, d.Action, d.Actor.ID, d.Outcome, d.Reason, d.Targets, c.route, c.key, c.scope)
		}
	}

	if g, _ := e.db.Log(context.Background(), "globex"); g.Size() != e.start["globex"] {
		t.Errorf("globex holds %d events after acme's reads, want %d", g.Size(), e.start["globex"])
	}

	off := newEnv(t, server.Options{})
	off.ok(200, "GET", "/v1/events", "acme-read", "", nil, nil)
	if l, _ := off.db.Log(context.Background(), "acme"); l.Size() != off.start["acme"] {
		t.Errorf("with NoReadAudit, a search appended %d events", l.Size()-off.start["acme"])
	}
}

// Each read the API and the viewer serve is recorded as one of
// trail.ReadActions, and each of those is recorded by some read, under the
// reading key; creating and revoking keys are recorded, and are not reads.
func TestReadActions(t *testing.T) {
	e := newEnvAudit(t, server.Options{})
	ctx := context.Background()
	var receipts struct {
		Events []struct{ ID string } `json:"events"`
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(`{"actor":{"id":"ana"},"action":"user.delete"}`), &receipts)
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	from := l.Size()
	for _, path := range []string{"/v1/events", "/v1/events/" + receipts.Events[0].ID, "/v1/export", "/v1/stats", "/v1/actions", "/v1/keys"} {
		e.ok(200, "GET", path, "acme-admin", "", nil, nil)
	}
	tctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(tctx, "GET", e.url+"/v1/tail", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["acme-admin"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/tail = %v, %v", resp, err)
	}
	cancel()
	resp.Body.Close()
	signIn, _ := http.NewRequest("POST", e.url+"/signin", strings.NewReader(url.Values{"key": {e.keys["acme-read"]}}.Encode()))
	signIn.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	signIn.Header.Set("Origin", e.url)
	if resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(signIn); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in = %v, %v", resp, err)
	}
	var created struct{ ID string }
	e.ok(201, "POST", "/v1/keys", "acme-admin", "application/json", []byte(`{"name":"ci","scopes":["append"]}`), &created)
	e.ok(204, "DELETE", "/v1/keys/"+created.ID, "acme-admin", "", nil, nil)

	reads := map[string]bool{}
	var others []string
	for ev, err := range l.Events(ctx, api.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Seq < from:
		case trail.IsReadAction(ev.Action):
			reads[ev.Action] = true
		default:
			others = append(others, ev.Action)
		}
	}
	if got := slices.Sorted(maps.Keys(reads)); !slices.Equal(got, slices.Sorted(slices.Values(trail.ReadActions()))) {
		t.Errorf("the reads recorded %v; want each of ReadActions %v", got, trail.ReadActions())
	}
	if want := []string{trail.ActionKeyCreate, trail.ActionKeyRevoke}; !slices.Equal(others, want) {
		t.Errorf("besides the reads, the log recorded %v; want %v", others, want)
	}
}

// Creating, listing and revoking keys through the API are recorded in the
// log, naming the admin key that did it and the key it was done to, never
// the secret; with reads not audited too (newEnv), as key administration
// is always recorded. Keys made with the library name the Caller given.
func TestKeyAudit(t *testing.T) {
	e := newEnv(t, server.Options{})
	ctx := context.Background()
	var created struct {
		Key    string
		ID     string
		Scopes []string
	}
	e.ok(201, "POST", "/v1/keys", "acme-admin", "application/json", []byte(`{"name":"billing app","scopes":["append","read"]}`), &created)
	e.ok(200, "GET", "/v1/keys", "acme-admin", "", nil, nil)
	e.ok(204, "DELETE", "/v1/keys/"+created.ID, "acme-admin", "", nil, nil)
	e.fails(404, "not_found", "", "DELETE", "/v1/keys/"+created.ID, "globex-admin", "", nil)

	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	page, err := l.Search(ctx, api.Query{Action: "trail.key.*", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range page.Events {
		target := ""
		if len(ev.Targets) == 1 {
			target = ev.Targets[0].Type + ":" + ev.Targets[0].ID + " " + ev.Targets[0].Name
		}
		got = append(got, fmt.Sprintf("%s by %s/%s/%s from %s: %s %s", ev.Action, ev.Actor.ID, ev.Actor.Type, ev.Actor.Name, ev.Source.IP, target, ev.Metadata))
	}
	admin := e.ids["acme-admin"]
	want := []string{
		`trail.key.revoke by ` + admin + `/service/acme-admin from 127.0.0.1: api_key:` + created.ID + ` billing app {"scopes":["append","read"]}`,
		`trail.key.list by ` + admin + `/service/acme-admin from 127.0.0.1:  `,
		`trail.key.create by ` + admin + `/service/acme-admin from 127.0.0.1: api_key:` + created.ID + ` billing app {"fingerprint":"` + fingerprint(created.Key) + `","scopes":["append","read"]}`,
		`trail.key.create by test-admin/user/ from : api_key:` + e.ids["acme-read"] + ` acme-read {"fingerprint":"` + fingerprint(e.keys["acme-read"]) + `","scopes":["read"]}`,
		`trail.key.create by test-admin/user/ from : api_key:` + e.ids["acme-append"] + ` acme-append {"fingerprint":"` + fingerprint(e.keys["acme-append"]) + `","scopes":["append"]}`,
		`trail.key.create by test-admin/user/ from : api_key:` + e.ids["acme-admin"] + ` acme-admin {"fingerprint":"` + fingerprint(e.keys["acme-admin"]) + `","scopes":["admin"]}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("acme's trail.key.* events, newest first:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r := e.ok(200, "GET", "/v1/export", "acme-admin", "", nil, nil)
	for name, secret := range map[string]string{"created": created.Key, "acme-admin": e.keys["acme-admin"]} {
		_, s, _ := strings.Cut(strings.TrimPrefix(secret, trail.KeyPrefix), "_")
		if s == "" || bytes.Contains(r.body, []byte(s)) {
			t.Errorf("the log holds the secret of key %s", name)
		}
	}
	if g, _ := e.db.Log(ctx, "globex"); g.Size() != e.start["globex"] {
		t.Errorf("globex holds %d events after acme's key administration, want %d", g.Size(), e.start["globex"])
	}
}

// fingerprint is the fingerprint a key's creation records of its secret:
// the first 16 bytes, in hex, of the SHA-256 of a label and the secret's
// SHA-256.
func fingerprint(secret string) string {
	h := sha256.Sum256([]byte(secret))
	f := sha256.Sum256(append([]byte("trail api key fingerprint\n"), h[:]...))
	return hex.EncodeToString(f[:16])
}
