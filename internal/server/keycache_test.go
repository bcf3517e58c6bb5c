package server_test

import (
	"context"
	"testing"

	"github.com/trail-audit/trail/internal/server"
)

// A key revoked through the server's DB stops working at the next
// request, even though it was just authenticated and cached.
func TestRevokedKeyRefusedAtOnce(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(200, "GET", "/v1/log", "acme-read", "", nil, nil)
	if err := e.db.RevokeKey(context.Background(), testAdmin, e.ids["acme-read"]); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/v1/log", "acme-read", "", nil); r.status != 401 {
		t.Errorf("GET /v1/log with a key revoked after its last use = %d, want 401", r.status)
	}
	e.ok(200, "GET", "/v1/log", "acme-admin", "", nil, nil)
}
