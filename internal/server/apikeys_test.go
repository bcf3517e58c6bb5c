package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/server"
)

func TestKeysOverAPI(t *testing.T) {
	e := newEnv(t, server.Options{})
	var made struct {
		Key, ID, Log string
		Scopes       []string
	}
	e.ok(201, "POST", "/v1/keys", "acme-admin", "application/json", []byte(`{"name":"auditor","scopes":["read"]}`), &made)
	if !strings.HasPrefix(made.Key, "trail_") || made.Log != "acme" || len(made.Scopes) != 1 || made.Scopes[0] != "read" {
		t.Fatalf("POST /v1/keys = %+v", made)
	}
	// The new key works, with its scope only.
	e.keys["new"] = made.Key
	e.ok(200, "GET", "/v1/events", "new", "", nil, nil)
	if r := e.do("POST", "/v1/events", "new", "application/json", []byte(ev("a", "user.login"))); r.status != 403 {
		t.Errorf("append with the new read key = %d, want 403", r.status)
	}
	// Listed for acme's admin, not for globex's; only admins manage keys.
	var list struct{ Keys []struct{ ID, Log string } }
	e.ok(200, "GET", "/v1/keys", "acme-admin", "", nil, &list)
	found := false
	for _, k := range list.Keys {
		found = found || k.ID == made.ID
		if k.Log != "acme" {
			t.Errorf("acme's key list holds a key of log %q", k.Log)
		}
	}
	if !found {
		t.Errorf("GET /v1/keys does not list the new key")
	}
	e.ok(200, "GET", "/v1/keys", "globex-admin", "", nil, &list)
	for _, k := range list.Keys {
		if k.ID == made.ID {
			t.Error("globex's admin sees acme's key")
		}
	}
	for _, key := range []string{"acme-read", "acme-append"} {
		if r := e.do("GET", "/v1/keys", key, "", nil); r.status != 403 {
			t.Errorf("GET /v1/keys with %s = %d, want 403", key, r.status)
		}
	}
	if r := e.do("DELETE", "/v1/keys/"+made.ID, "globex-admin", "", nil); r.status != 404 || !strings.Contains(string(r.body), "this log has no API key") || !strings.Contains(string(r.body), made.ID) {
		t.Errorf("globex's admin revoking acme's key = %d %s, want 404 saying the log has no such key", r.status, r.body)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"name":"x","scopes":[]}`, "scopes"},
		{`{"name":"x","scopes":["root"]}`, "scopes"},
		{`{"name":"x","scopes":["read"],"log":"globex"}`, "log"},
		{`nope`, ""},
		// As strict as events: no trailing data, duplicate or
		// differently spelt keys, invalid UTF-8 or wrong types.
		{`{"name":"x","scopes":["read"]} trailing`, ""},
		{`{"name":"x","name":"y","scopes":["read"]}`, "name"},
		{`{"NAME":"x","SCOPES":["read"]}`, "NAME"},
		{"{\"name\":\"bad\xffutf\",\"scopes\":[\"read\"]}", ""},
		{`{"name":5,"scopes":["read"]}`, "name"},
		{`{"name":"x","scopes":"read"}`, "scopes"},
	} {
		r := e.do("POST", "/v1/keys", "acme-admin", "application/json", []byte(bad.body))
		var ae apiErr
		json.Unmarshal(r.body, &ae)
		if r.status != 400 || ae.Error.Field != bad.field {
			t.Errorf("POST /v1/keys %s = %d %s, want 400 naming field %q", bad.body, r.status, r.body, bad.field)
		}
	}

	// A body of another type, a form's say, is refused, as for events;
	// one without a Content-Type is read as JSON.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json-seq", "bogus/"} {
		if r := e.do("POST", "/v1/keys", "acme-admin", ct, []byte(`{"name":"form","scopes":["read"]}`)); r.status != 415 || !strings.Contains(string(r.body), "unsupported_media_type") {
			t.Errorf("POST /v1/keys as %s = %d %s, want 415", ct, r.status, r.body)
		}
	}
	if r := e.do("POST", "/v1/keys", "acme-admin", "", []byte(`{"name":"untyped","scopes":["read"]}`)); r.status != 201 {
		t.Errorf("POST /v1/keys without a Content-Type = %d %s, want 201", r.status, r.body)
	}
	if r := e.do("POST", "/v1/keys", "acme-admin", "application/json; charset=utf-8", []byte(`{"name":"typed","scopes":["read"]}`)); r.status != 201 {
		t.Errorf("POST /v1/keys as application/json; charset=utf-8 = %d %s, want 201", r.status, r.body)
	}

	// Revoked: refused at once.
	if r := e.do("DELETE", "/v1/keys/"+made.ID, "acme-admin", "", nil); r.status != 204 {
		t.Fatalf("DELETE /v1/keys/%s = %d %s, want 204", made.ID, r.status, r.body)
	}
	if r := e.do("GET", "/v1/events", "new", "", nil); r.status != 401 {
		t.Errorf("search with the revoked key = %d, want 401", r.status)
	}
}
