package server_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/server"
)

// A key over its rate gets 429 with Retry-After, other keys do not, and
// after waiting that long the key is served again.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, server.Options{RateLimit: 1, RateBurst: 3})
	for range 3 {
		e.ok(200, "GET", "/v1/log", "acme-read", "", nil, nil)
	}
	e.fails(429, "rate_limited", "", "GET", "/v1/log", "acme-read", "", nil)
	r := e.do("GET", "/v1/log", "acme-read", "", nil)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || err != nil || secs != 1 {
		t.Fatalf("GET /v1/log over the limit = %d with Retry-After %q, want 429 and 1 second", r.status, r.header.Get("Retry-After"))
	}
	// Other keys, of the same log or not, have buckets of their own, and
	// appends are limited too.
	e.ok(200, "GET", "/v1/log", "acme-admin", "", nil, nil)
	e.ok(200, "GET", "/v1/log", "globex-admin", "", nil, nil)
	for range 3 {
		e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")), nil)
	}
	e.fails(429, "rate_limited", "", "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")))
	if got := e.scrape()[`trail_ingest_rejected_requests_total{reason="rate_limited"}`]; got != 1 {
		t.Errorf("/metrics rejected appends for rate_limited = %v, want 1", got)
	}

	time.Sleep(time.Duration(secs) * time.Second)
	e.ok(200, "GET", "/v1/log", "acme-read", "", nil, nil)

	// Unlimited when turned off.
	free := newEnv(t, server.Options{RateLimit: -1})
	for range 500 {
		free.ok(200, "GET", "/healthz", "", "", nil, nil)
	}
	for range 300 {
		if r := free.do("GET", "/v1/log", "acme-read", "", nil); r.status != 200 {
			t.Fatalf("GET /v1/log with no rate limit = %d %s", r.status, r.body)
		}
	}
}

// The default limit lets a key make 200 requests at once.
func TestRateLimitDefault(t *testing.T) {
	e := newEnv(t, server.Options{})
	// A busy client's requests fit the default: well past the old 200.
	for i := range 1000 {
		if r := e.do("GET", "/v1/log", "acme-read", "", nil); r.status != 200 {
			t.Fatalf("request %d: GET /v1/log = %d %s, want 200 within the default burst", i, r.status, r.body)
		}
	}
}
