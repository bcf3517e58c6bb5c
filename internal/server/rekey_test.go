package server_test

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// TestRekeyWhileServing: a server still running with the old master key
// after trail rekey keeps signing for every log it had at start, the idle
// ones included (trail serve checks every log's keys then); a log made
// afterwards, its key sealed under the new master key, is answered 503
// saying what to do, and /readyz names it.
func TestRekeyWhileServing(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	k1, k2 := make([]byte, 32), make([]byte, 32)
	rand.Read(k1)
	rand.Read(k2)
	setup, err := trail.InitStore(ctx, url, trail.Options{MasterKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	idleKey, _, err := setup.CreateKey(ctx, testAdmin, "idle", "a", trail.ScopeAppend)
	if err != nil {
		t.Fatal(err)
	}
	setup.Close()

	old, err := trail.OpenStore(ctx, url, trail.Options{MasterKey: k1})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if failed, err := old.CheckKeys(ctx); err != nil || len(failed) != 0 {
		t.Fatalf("CheckKeys = %v, %v", failed, err)
	}
	srv := httptest.NewServer(server.New(old, server.Options{}))
	defer srv.Close()

	if _, err := trail.RotateMasterKey(ctx, url, k1, k2); err != nil {
		t.Fatal(err)
	}
	fresh, err := trail.OpenStore(ctx, url, trail.Options{MasterKey: k2})
	if err != nil {
		t.Fatal(err)
	}
	laterKey, _, err := fresh.CreateKey(ctx, testAdmin, "later", "a", trail.ScopeAppend, trail.ScopeRead)
	fresh.Close()
	if err != nil {
		t.Fatal(err)
	}

	e := &env{t: t, db: old, loc: url, url: srv.URL, keys: map[string]string{"idle": idleKey, "later": laterKey}}
	e.ok(201, "POST", "/v1/events", "idle", "application/json", []byte(ev("u1", "user.login")), nil)
	ae := e.fails(503, "unavailable", "", "POST", "/v1/events", "later", "application/json", []byte(ev("u1", "user.login")))
	if msg := ae.Error.Message; !strings.Contains(msg, "sealed under another master key") || !strings.Contains(msg, "restart this server with the new master key") {
		t.Errorf("an append to the log made after the rekey says %q, want it to say its key is sealed under another master key and what to do", msg)
	}
	e.fails(503, "unavailable", "", "GET", "/v1/log", "later", "", nil)
	if ready := e.do("GET", "/readyz", "", "", nil); ready.status != 200 || !strings.Contains(string(ready.body), "degraded: log later is not served: its signing key is sealed under another master key") {
		t.Errorf("GET /readyz = %d %q, want 200 degraded naming log later", ready.status, ready.body)
	}
}
