package server

import (
	"testing"
	"time"
)

func TestSessionsExpireAndStayBounded(t *testing.T) {
	var ss sessions
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := ss.create("trail_k_secret", t0)
	if secret, ok := ss.get(id, t0.Add(sessionTTL-time.Second)); !ok || secret != "trail_k_secret" {
		t.Fatalf("a session just before expiry: %q %v", secret, ok)
	}
	if _, ok := ss.get(id, t0.Add(sessionTTL)); ok {
		t.Fatal("a session at its expiry still works")
	}
	if _, ok := ss.get(id, t0); ok {
		t.Fatal("an expired session came back")
	}
	if _, ok := ss.get("made-up", t0); ok {
		t.Fatal("an unknown session id works")
	}
	a := ss.create("a", t0)
	ss.end(a)
	if _, ok := ss.get(a, t0); ok {
		t.Fatal("an ended session still works")
	}
	// Past the bound, the session closest to expiry goes first.
	first := ss.create("first", t0)
	for i := range maxSessions {
		ss.create("x", t0.Add(time.Duration(i+1)*time.Millisecond))
	}
	if len(ss.m) > maxSessions {
		t.Fatalf("%d sessions kept, bound is %d", len(ss.m), maxSessions)
	}
	if _, ok := ss.get(first, t0); ok {
		t.Fatal("the oldest session survived eviction")
	}
}
