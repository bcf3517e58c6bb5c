package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

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

// A key revoked through another DB on the store (another server, or trail
// keys revoke) is refused within 2 seconds by a server that had just
// authenticated and cached it: the cache trusts a key for keyCacheTTL, one
// second.
func TestKeyRevokedElsewhereRefusedWithinTwoSeconds(t *testing.T) {
	s := newSharedServers(t)
	get := func() int {
		req, _ := http.NewRequest("GET", s.b.URL+"/v1/log", nil)
		req.Header.Set("Authorization", "Bearer "+s.read)
		resp, err := s.b.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(); st != http.StatusOK {
		t.Fatalf("GET /v1/log on server B = %d, want 200", st)
	}
	if err := s.dbA.RevokeKey(context.Background(), testAdmin, s.readID); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "server B refuses the key revoked through server A's DB", func() (bool, string) {
		st := get()
		return st == http.StatusUnauthorized, fmt.Sprintf("GET /v1/log = %d", st)
	})
}
