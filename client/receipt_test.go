package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/server"
)

// TestAppendWithReceipts appends through the client to a real server
// whose log two real witnesses cosign, quorum both: each receipt checks
// offline against the pinned key and the policy. With a witness down the
// events are stored and ErrReceiptsPending says the receipts are not
// there yet; once it is back, Receipt fetches one that checks.
func TestAppendWithReceipts(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := db.CreateKey(ctx, testAdmin, "acme", "app", trail.ScopeAppend, trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	db.Close()
	ws := newWitnessSet(t, 2, vkey)
	pol := ws.policy(t, vkey, "group both all w1 w2\nquorum both")
	if db, err = trail.Open(ctx, dir, trail.Options{WitnessPolicy: pol}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(server.New(db, server.Options{ReceiptWait: time.Second}))
	defer srv.Close()
	c, err := client.New(srv.URL, key, client.Options{})
	if err != nil {
		t.Fatal(err)
	}

	rs, err := c.AppendWithReceipts(ctx, ev("u1", "user.login"), ev("u2", "user.delete"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		got, err := client.CheckReceipt([]byte(r.Proof), vkey, pol)
		if err != nil || got.Event.ID != r.ID {
			t.Fatalf("receipt of %s: %v", r.ID, err)
		}
		if got.Witnesses == nil || !got.Witnesses.Met || len(got.Witnesses.Cosigners) != 2 {
			t.Errorf("receipt of %s: Witnesses = %+v, want the policy met by both witnesses", r.ID, got.Witnesses)
		}
	}

	ws.ws[1].Stop()
	rs, err = c.AppendWithReceipts(ctx, ev("u3", "user.login"))
	if !errors.Is(err, client.ErrReceiptsPending) || len(rs) != 1 || rs[0].Proof != "" {
		t.Fatalf("AppendWithReceipts with a witness down = %+v, %v; want the receipt without proof and ErrReceiptsPending", rs, err)
	}
	if l, err = db.Log(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if e, err := l.Get(ctx, rs[0].ID); err != nil || e.Actor.ID != "u3" {
		t.Fatalf("the event whose receipt is pending is not stored: %v", err)
	}
	var apiErr *client.APIError
	if _, err := c.Receipt(ctx, rs[0].ID, 0); !errors.As(err, &apiErr) || apiErr.Code != "not_witnessed" {
		t.Fatalf("Receipt of an event not witnessed = %v, want not_witnessed", err)
	}
	ws.ws[1].Restart()
	receipt, err := c.Receipt(ctx, rs[0].ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.CheckReceipt(receipt, vkey, pol); err != nil || got.Event.ID != rs[0].ID {
		t.Fatalf("receipt once the witness is back: %v", err)
	}
}
