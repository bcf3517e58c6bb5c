package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
)

// testAdmin is who the tests say creates and revokes keys.
var testAdmin = trail.Caller{Actor: event.Actor{ID: "test-admin", Type: event.ActorUser}}

// TestTailEndsWhenKeyRevoked revokes the key of an open tail from another
// DB on the same data directory, as trail keys revoke does: Tail returns
// the server's 401 saying so, instead of following on.
func TestTailEndsWhenKeyRevoked(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	key, ki, err := f.db.CreateKey(ctx, testAdmin, "acme", "tail", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(f.srv.URL, key, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *event.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Tail(ctx, api.Query{}, -1, func(e *event.Event) error {
			got <- e
			return nil
		})
	}()
	// Appended until the tail delivers one, so it is open.
	for delivered := false; !delivered; {
		if _, err := f.log.Append(ctx, ev("u1", "user.login")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			delivered = true
		case err := <-done:
			t.Fatalf("Tail() = %v before its key was revoked", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	other, err := trail.Open(ctx, f.db.Dir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.RevokeKey(ctx, testAdmin, ki.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "stream was revoked") {
			t.Errorf("Tail() after its key was revoked = %v, want the stream's 401 saying so", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Tail() still running 3 s after its key was revoked")
	}
}
