package trail_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
)

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	secret, ki, err := db.CreateKey(ctx, "acme", "ingest", trail.ScopeAppend, trail.ScopeAppend)
	if err != nil {
		t.Fatalf("CreateKey = %v", err)
	}
	if !strings.HasPrefix(secret, "trail_"+ki.ID+"_") || len(secret) < len("trail_")+16+1+32 {
		t.Errorf("CreateKey secret = %q, want trail_<id>_<at least 128 bits>", secret)
	}
	if ki.Log != "acme" || ki.Name != "ingest" || len(ki.Scopes) != 1 || !ki.Allows(trail.ScopeAppend) || ki.Allows(trail.ScopeRead) {
		t.Errorf("CreateKey info = %+v", ki)
	}
	if _, err := db.Log(ctx, "acme"); err != nil {
		t.Errorf("CreateKey did not create its log: %v", err)
	}
	got, err := db.Authenticate(ctx, secret)
	if err != nil || got.ID != ki.ID || got.Log != "acme" {
		t.Errorf("Authenticate = %+v, %v; want key %s of acme", got, err, ki.ID)
	}

	admin, _, err := db.CreateKey(ctx, "acme", "", trail.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := db.Authenticate(ctx, admin); err != nil || !a.Allows(trail.ScopeRead) || !a.Allows(trail.ScopeAppend) {
		t.Errorf("admin key = %+v, %v; want it to allow read and append", a, err)
	}
	if _, _, err := db.CreateKey(ctx, "acme", "", "write"); err == nil {
		t.Error("CreateKey with scope write succeeded")
	}
	for _, name := range []string{"tab\there", "\xff", strings.Repeat("n", 129)} {
		if _, _, err := db.CreateKey(ctx, "acme", name, trail.ScopeRead); err == nil {
			t.Errorf("CreateKey with name %q succeeded", name)
		}
	}
	if _, _, err := db.CreateKey(ctx, "acme", ""); err == nil {
		t.Error("CreateKey without scopes succeeded")
	}

	last := secret[len(secret)-1]
	flip := byte('0')
	if last == '0' {
		flip = '1'
	}
	for _, bad := range []string{"", "trail_", secret + "0", secret[:len(secret)-1] + string(flip), strings.Replace(secret, "trail_", "trial_", 1)} {
		if _, err := db.Authenticate(ctx, bad); !errors.Is(err, trail.ErrUnauthorized) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthorized", bad, err)
		}
	}

	if err := db.RevokeKey(ctx, ki.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); !errors.Is(err, trail.ErrUnauthorized) {
		t.Errorf("Authenticate(revoked) = %v, want ErrUnauthorized", err)
	}
	if err := db.RevokeKey(ctx, "0000"); !errors.Is(err, trail.ErrNotFound) {
		t.Errorf("RevokeKey(unknown) = %v, want ErrNotFound", err)
	}
	keys, err := db.Keys(ctx)
	if err != nil || len(keys) != 2 || keys[0].ID != ki.ID || keys[0].RevokedAt.IsZero() || keys[1].Log != "acme" {
		t.Errorf("Keys = %+v, %v", keys, err)
	}
}
