package trail_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// testAdmin is who the tests say creates, lists and revokes keys.
var testAdmin = trail.Caller{Actor: event.Actor{ID: "test-admin", Type: event.ActorUser}}

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	secret, ki, err := db.CreateKey(ctx, testAdmin, "acme", "ingest", trail.ScopeAppend, trail.ScopeAppend)
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

	admin, _, err := db.CreateKey(ctx, testAdmin, "acme", "", trail.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := db.Authenticate(ctx, admin); err != nil || !a.Allows(trail.ScopeRead) || !a.Allows(trail.ScopeAppend) {
		t.Errorf("admin key = %+v, %v; want it to allow read and append", a, err)
	}
	if _, _, err := db.CreateKey(ctx, testAdmin, "acme", "", "write"); err == nil {
		t.Error("CreateKey with scope write succeeded")
	}
	for _, name := range []string{"tab\there", "\xff", strings.Repeat("n", 129)} {
		if _, _, err := db.CreateKey(ctx, testAdmin, "acme", name, trail.ScopeRead); err == nil {
			t.Errorf("CreateKey with name %q succeeded", name)
		}
	}
	// A long name is not repeated whole in the error.
	if _, _, err := db.CreateKey(ctx, testAdmin, "acme", strings.Repeat("n", 5000), trail.ScopeRead); err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "5000 bytes") {
		t.Errorf("CreateKey with a 5000-byte name = %v, want a short error giving its size", err)
	}
	if _, _, err := db.CreateKey(ctx, testAdmin, "acme", ""); err == nil {
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

	if err := db.RevokeKey(ctx, testAdmin, ki.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); !errors.Is(err, trail.ErrUnauthorized) {
		t.Errorf("Authenticate(revoked) = %v, want ErrUnauthorized", err)
	}
	if err := db.RevokeKey(ctx, testAdmin, "0000"); !errors.Is(err, trail.ErrNotFound) {
		t.Errorf("RevokeKey(unknown) = %v, want ErrNotFound", err)
	}
	keys, err := db.Keys(ctx)
	if err != nil || len(keys) != 2 || keys[0].ID != ki.ID || keys[0].RevokedAt.IsZero() || keys[1].Log != "acme" {
		t.Errorf("Keys = %+v, %v", keys, err)
	}
}

// Creating, listing and revoking keys are recorded in the key's log, naming
// the caller and the key, never the secret; a call without a caller does
// nothing.
func TestKeyAdministrationRecorded(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ana := trail.Caller{Actor: event.Actor{ID: "cli:ana", Type: event.ActorUser}, Source: event.Source{IP: "192.0.2.1"}}

	if _, _, err := db.CreateKey(ctx, trail.Caller{}, "acme", "nobody", trail.ScopeRead); err == nil {
		t.Fatal("CreateKey without a caller succeeded")
	}
	if names, _ := db.Logs(ctx); len(names) != 0 {
		t.Errorf("CreateKey without a caller made logs %v", names)
	}
	secret, ki, err := db.CreateKey(ctx, ana, "acme", "billing", trail.ScopeRead, trail.ScopeAppend)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateKey(ctx, testAdmin, "globex", "other", trail.ScopeAdmin); err != nil {
		t.Fatal(err)
	}
	keys, err := db.ListKeys(ctx, ana, "acme")
	if err != nil || len(keys) != 1 || keys[0].ID != ki.ID {
		t.Errorf("ListKeys(acme) = %+v, %v; want the one key of acme", keys, err)
	}
	if _, err := db.ListKeys(ctx, ana, "nosuch"); !errors.Is(err, trail.ErrNotFound) {
		t.Errorf("ListKeys(nosuch) = %v, want ErrNotFound", err)
	}
	if err := db.RevokeKey(ctx, trail.Caller{}, ki.ID); err == nil {
		t.Error("RevokeKey without a caller succeeded")
	}
	if _, err := db.Authenticate(ctx, secret); err != nil {
		t.Errorf("RevokeKey without a caller revoked the key: %v", err)
	}
	for range 2 {
		if err := db.RevokeKey(ctx, ana, ki.ID); err != nil {
			t.Fatal(err)
		}
	}

	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for seq := range l.Size() {
		e, err := l.GetSeq(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		c := canon.Append(nil, e)
		if strings.Contains(string(c), secret[len(secret)-48:]) {
			t.Errorf("event %d holds the key's secret: %s", seq, c)
		}
		line := e.Action + " by " + e.Actor.ID + "/" + e.Actor.Type + " from " + e.Source.IP
		for _, tg := range e.Targets {
			line += " " + tg.Type + ":" + tg.ID + ":" + tg.Name
		}
		md := string(e.Metadata)
		if strings.Contains(md, "already_revoked_at") {
			md = `{"already_revoked_at":…,"scopes":["read","append"]}`
		}
		got = append(got, line+" "+md)
	}
	want := []string{
		"trail.key.create by cli:ana/user from 192.0.2.1 api_key:" + ki.ID + ":billing " + `{"fingerprint":"` + fingerprint(secret) + `","scopes":["read","append"]}`,
		"trail.key.list by cli:ana/user from 192.0.2.1 ",
		"trail.key.revoke by cli:ana/user from 192.0.2.1 api_key:" + ki.ID + ":billing " + `{"scopes":["read","append"]}`,
		"trail.key.revoke by cli:ana/user from 192.0.2.1 api_key:" + ki.ID + ":billing " + `{"already_revoked_at":…,"scopes":["read","append"]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("acme holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if g, _ := db.Log(ctx, "globex"); g.Size() != 1 {
		t.Errorf("globex holds %d events, want its key's trail.key.create", g.Size())
	}

	ro, err := trail.Open(ctx, db.Dir(), trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.ListKeys(ctx, ana, "acme"); !errors.Is(err, trail.ErrReadOnly) {
		t.Errorf("ListKeys on a read-only DB = %v, want ErrReadOnly: a listing must be recorded", err)
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
