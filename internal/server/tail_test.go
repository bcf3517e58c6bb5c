package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/event"
	"github.com/trail-audit/trail/internal/server"
)

// sse reads Server-Sent Events messages (id, data) from a tail.
func sse(t *testing.T, e *env, path, lastID string) (<-chan [2]string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["acme-read"])
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	msgs := make(chan [2]string, 100)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var id, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			case line == "" && data != "":
				msgs <- [2]string{id, data}
				id, data = "", ""
			}
		}
	}()
	return msgs, func() { cancel(); resp.Body.Close() }
}

func next(t *testing.T, msgs <-chan [2]string) [2]string {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("the tail ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no event from the tail within 5 s")
	}
	return [2]string{}
}

func TestTail(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(201, "POST", "/v1/events", "acme-append", "", []byte(`{"actor":{"id":"old"},"action":"user.delete"}`), nil)
	msgs, stop := sse(t, e, "/v1/tail?action=user.delete", "")
	defer stop()
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson",
		[]byte("{\"actor\":{\"id\":\"a\"},\"action\":\"user.login\"}\n{\"actor\":{\"id\":\"b\"},\"action\":\"user.delete\"}\n"), nil)
	e.ok(201, "POST", "/v1/events", "acme-append", "", []byte(`{"actor":{"id":"c"},"action":"user.delete"}`), nil)
	e.ok(201, "POST", "/v1/events", "globex-admin", "", []byte(`{"actor":{"id":"other"},"action":"user.delete"}`), nil)
	for _, want := range []struct{ id, actor string }{{"2", "b"}, {"3", "c"}} {
		m := next(t, msgs)
		ev, err := event.DecodeStored([]byte(m[1]))
		if err != nil || m[0] != want.id || ev.Actor.ID != want.actor || string(ev.AppendCanonical(nil)) != m[1] {
			t.Fatalf("tail message = %q (%v), want id %s, actor %s, canonical JSON", m, err, want.id, want.actor)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected tail message %q (another action, or another tenant)", m)
	case <-time.After(600 * time.Millisecond):
	}

	// Resuming after seq 0 replays what came since, then goes on.
	msgs2, stop2 := sse(t, e, "/v1/tail?action=user.delete", "0")
	defer stop2()
	if m := next(t, msgs2); m[0] != "2" {
		t.Errorf("resumed tail starts at %q, want 2", m[0])
	}
	if m := next(t, msgs2); m[0] != "3" {
		t.Errorf("resumed tail then gives %q, want 3", m[0])
	}
	if r := e.do("GET", "/v1/tail?limit=3", "acme-read", "", nil); r.status != 400 {
		t.Errorf("tail with a limit = %d, want 400", r.status)
	}
}
