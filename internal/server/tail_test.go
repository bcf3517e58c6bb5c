package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
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
	return readSSE(t, resp, path), func() { cancel(); resp.Body.Close() }
}

// readSSE reads the messages of the stream resp, closing the channel when
// the stream ends.
func readSSE(t *testing.T, resp *http.Response, path string) <-chan [2]string {
	t.Helper()
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
	return msgs
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
	base := e.start["acme"]
	for _, want := range []struct{ id, actor string }{{strconv.FormatInt(base+2, 10), "b"}, {strconv.FormatInt(base+3, 10), "c"}} {
		m := next(t, msgs)
		ev, err := event.DecodeStored([]byte(m[1]))
		if err != nil || m[0] != want.id || ev.Actor.ID != want.actor || string(canon.Append(nil, &ev)) != m[1] {
			t.Fatalf("tail message = %q (%v), want id %s, actor %s, canonical JSON", m, err, want.id, want.actor)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected tail message %q (another action, or another tenant)", m)
	case <-time.After(600 * time.Millisecond):
	}

	// Resuming after the first event replays what came since, then goes on.
	msgs2, stop2 := sse(t, e, "/v1/tail?action=user.delete", strconv.FormatInt(base, 10))
	defer stop2()
	if m, want := next(t, msgs2), strconv.FormatInt(base+2, 10); m[0] != want {
		t.Errorf("resumed tail starts at %q, want %s", m[0], want)
	}
	if m, want := next(t, msgs2), strconv.FormatInt(base+3, 10); m[0] != want {
		t.Errorf("resumed tail then gives %q, want %s", m[0], want)
	}
	if r := e.do("GET", "/v1/tail?limit=3", "acme-read", "", nil); r.status != 400 {
		t.Errorf("tail with a limit = %d, want 400", r.status)
	}
	// A seq written otherwise than Trail writes it is not taken for one.
	for _, last := range []string{"+1", "01", "1.0", "-2", "0x1"} {
		req, _ := http.NewRequest("GET", e.url+"/v1/tail", nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["acme-read"])
		req.Header.Set("Last-Event-ID", last)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("tail with Last-Event-ID %q = %d, want 400", last, resp.StatusCode)
		}
	}

	// A Last-Event-ID past the log, up to the largest seq, replays
	// nothing: the stream starts at the log's end.
	msgs3, stop3 := sse(t, e, "/v1/tail?action=user.delete", "9223372036854775807")
	defer stop3()
	select {
	case m := <-msgs3:
		t.Errorf("tail after the largest seq replayed %q", m)
	case <-time.After(600 * time.Millisecond):
	}
}

// ended waits up to 2 s for the stream msgs to end, and fails unless it
// ends with the error event of a revoked key.
func ended(t *testing.T, what string, msgs <-chan [2]string) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	var last [2]string
	for {
		select {
		case m, ok := <-msgs:
			if ok {
				last = m
				continue
			}
			if !strings.Contains(last[1], `"code":"unauthorized"`) || !strings.Contains(last[1], "revoked") {
				t.Errorf("%s: the stream ended after %q, want an error event saying the key was revoked", what, last)
			}
			return
		case <-deadline:
			t.Fatalf("%s: the stream is still open 2 s after its key was revoked", what)
		}
	}
}

// TestRevokedKeyEndsStreams revokes the key of open streams, through the
// API and through another DB on the same data directory (as trail keys
// revoke does, from its own process), and checks that the streams end
// within 2 s, for /v1/tail and for the viewer's live rows.
func TestRevokedKeyEndsStreams(t *testing.T) {
	e := newEnv(t, server.Options{})
	ctx := context.Background()
	newKey := func(name string) string {
		t.Helper()
		secret, ki, err := e.db.CreateKey(ctx, testAdmin, "acme", name, trail.ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[name], e.ids[name] = secret, ki.ID
		return ki.ID
	}
	tail := func(key string) (<-chan [2]string, func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/tail", nil)
		req.Header.Set("Authorization", "Bearer "+e.keys[key])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readSSE(t, resp, "/v1/tail"), func() { cancel(); resp.Body.Close() }
	}
	// The stream delivers, so it is live when its key is revoked.
	delivers := func(what string, msgs <-chan [2]string) {
		t.Helper()
		e.appendN("acme-append", 1)
		if m := next(t, msgs); m[0] == "" {
			t.Fatalf("%s: first message %q, want an event", what, m)
		}
	}

	t.Run("API", func(t *testing.T) {
		id := newKey("tail-api")
		msgs, stop := tail("tail-api")
		defer stop()
		delivers("tail", msgs)
		e.ok(204, "DELETE", "/v1/keys/"+id, "acme-admin", "", nil, nil)
		ended(t, "tail revoked through the API", msgs)
	})

	t.Run("other DB", func(t *testing.T) {
		id := newKey("tail-cli")
		msgs, stop := tail("tail-cli")
		defer stop()
		delivers("tail", msgs)
		other, err := trail.Open(ctx, e.db.Dir(), trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if err := other.RevokeKey(ctx, testAdmin, id); err != nil {
			t.Fatal(err)
		}
		ended(t, "tail revoked by another DB", msgs)
	})

	t.Run("viewer", func(t *testing.T) {
		newKey("viewer")
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("POST", e.url+"/signin", strings.NewReader(url.Values{"key": {e.keys["viewer"]}, "next": {"/"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.url)
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in: %v %v", resp.Status, err)
		}
		resp.Body.Close()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, _ = http.NewRequestWithContext(ctx, "GET", e.url+"/live", nil)
		if resp, err = c.Do(req); err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msgs := readSSE(t, resp, "/live")
		delivers("live", msgs)
		other, err := trail.Open(ctx, e.db.Dir(), trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if err := other.RevokeKey(ctx, testAdmin, e.ids["viewer"]); err != nil {
			t.Fatal(err)
		}
		ended(t, "live rows revoked by another DB", msgs)
	})
}

// A tail resumed far back sends the whole backlog, in order, each event
// once, across the chunks it reads it in.
func TestTailBacklog(t *testing.T) {
	e := newEnv(t, server.Options{})
	var body strings.Builder
	for i := range 9000 {
		fmt.Fprintf(&body, `{"actor":{"id":"u%d"},"action":"user.login"}`+"\n", i)
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson", []byte(body.String()), nil)
	msgs, stop := sse(t, e, "/v1/tail", "-1")
	defer stop()
	want := e.start["acme"] + 9000
	for seq := int64(0); seq < want; seq++ {
		if m := next(t, msgs); m[0] != strconv.FormatInt(seq, 10) {
			t.Fatalf("backlog message %d has id %s, want %d", seq, m[0], seq)
		}
	}
}
