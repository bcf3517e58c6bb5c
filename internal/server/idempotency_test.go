package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/trail-audit/trail/internal/server"
)

// post sends body to POST /v1/events with an Idempotency-Key.
func (e *env) post(key, idem string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.keys[key])
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) size(log string) int64 {
	e.t.Helper()
	l, err := e.db.Log(context.Background(), log)
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Size()
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, server.Options{})
	body := []byte(`{"events":[{"actor":{"id":"ana"},"action":"user.delete","targets":[{"type":"user","id":"u_7"}]},{"actor":{"id":"ana"},"action":"user.login"}]}`)

	first := e.post("acme-append", "retry-1", body)
	if first.status != 201 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first POST = %d %s (replayed %q), want 201, not replayed", first.status, first.body, first.header.Get("Idempotent-Replayed"))
	}
	again := e.post("acme-append", "retry-1", body)
	if again.status != 201 || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried POST = %d %s (replayed %q), want 201 with the first answer %s", again.status, again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	if n := e.size("acme") - e.start["acme"]; n != 2 {
		t.Fatalf("log holds %d events after a retry, want 2", n)
	}

	// The same key with another body is a conflict, and stores nothing.
	other := e.post("acme-append", "retry-1", bytes.Replace(body, []byte("u_7"), []byte("u_8"), 1))
	if other.status != http.StatusConflict {
		t.Errorf("same key, other body = %d %s, want 409", other.status, other.body)
	}
	// Keys are per API key: another key may use the same string.
	if r := e.post("acme-admin", "retry-1", body); r.status != 201 || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("same idempotency key from another API key = %d (replayed %q), want a fresh 201", r.status, r.header.Get("Idempotent-Replayed"))
	}
	if n := e.size("acme") - e.start["acme"]; n != 4 {
		t.Errorf("log holds %d events, want 4", n)
	}
	// A malformed key is refused, and so are an empty one and two: none
	// of them is taken as no key, which would store a retry twice.
	if r := e.post("acme-append", "has space", body); r.status != 400 {
		t.Errorf("Idempotency-Key with a space = %d, want 400", r.status)
	}
	for name, values := range map[string][]string{"empty": {""}, "twice": {"a", "b"}} {
		req, _ := http.NewRequest("POST", e.url+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.keys["acme-append"])
		req.Header["Idempotency-Key"] = values
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("Idempotency-Key %s = %d, want 400", name, resp.StatusCode)
		}
	}
	if n := e.size("acme") - e.start["acme"]; n != 4 {
		t.Errorf("log holds %d events after refused keys, want 4", n)
	}
	// A body sent compressed, or in another charset, is refused rather
	// than read as UTF-8 JSON.
	for name, h := range map[string][2]string{"gzip": {"Content-Encoding", "gzip"}, "utf-16": {"Content-Type", "application/json; charset=utf-16"}} {
		req, _ := http.NewRequest("POST", e.url+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.keys["acme-append"])
		req.Header.Set(h[0], h[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("%s body = %d, want 415", name, resp.StatusCode)
		}
	}
}

// Concurrent retries of one request store it once and all get its answer.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	e := newEnv(t, server.Options{})
	answers := make([]response, 16)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = e.post("acme-append", "once", []byte(`{"actor":{"id":"bo"},"action":"password.reset"}`))
		}()
	}
	wg.Wait()
	replays := 0
	for i, a := range answers {
		if a.status != 201 || !bytes.Equal(a.body, answers[0].body) {
			t.Fatalf("answer %d = %d %s, want 201 %s", i, a.status, a.body, answers[0].body)
		}
		if a.header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	if n := e.size("acme") - e.start["acme"]; n != 1 || replays != len(answers)-1 {
		t.Errorf("log holds %d events and %d answers were replays, want 1 and %d", n, replays, len(answers)-1)
	}
}
