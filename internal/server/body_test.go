package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestBodyReadTimeout sends a body that trickles in past the server's read
// timeout, over a raw connection to a real listening server: the answer is
// 408, and nothing is logged as a server error.
func TestBodyReadTimeout(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret, _, err := db.CreateKey(ctx, testAdmin, "acme", "slow", trail.ScopeAppend)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{t: t}
	addr := shortTimeouts(t, server.New(db, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))}))

	body := `{"actor":{"id":"a"},"action":"user.login","reason":"` + strings.Repeat("x", 200) + `"}`
	status, b := postTrickled(t, addr, "POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer "+secret+
		"\r\nContent-Type: application/json\r\n", body)
	var ae apiErr
	json.Unmarshal(b, &ae)
	if status != http.StatusRequestTimeout || ae.Error.Code != "timeout" {
		t.Errorf("trickled body: %d %s, want 408 with code timeout", status, b)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a slow client was logged as a server error:\n%s", logs)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() != 1 { // the key's trail.key.create
		t.Errorf("log size = %d after a request that timed out, want 1", l.Size())
	}
}

// TestNoStore checks that every authenticated answer, which may carry
// events, keys or proofs, tells caches not to keep it.
func TestNoStore(t *testing.T) {
	e := newEnv(t, server.Options{})
	id := e.appendN("acme-append", 3).Events[0].ID
	var created struct{ ID string }
	r := e.ok(201, "POST", "/v1/keys", "acme-admin", "application/json", []byte(`{"name":"tmp","scopes":["read"]}`), &created)
	check := func(what string, h http.Header) {
		t.Helper()
		if got := h.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, got)
		}
	}
	check("POST /v1/keys", r.header)
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/events"},
		{"GET", "/v1/events"},
		{"GET", "/v1/events/" + id},
		{"GET", "/v1/events/01KDNB3J2Y0000000099A1B2C3"}, // an error answer
		{"GET", "/v1/export"},
		{"GET", "/v1/export?format=csv"},
		{"GET", "/v1/checkpoint"},
		{"GET", "/v1/log"},
		{"GET", "/v1/proof/inclusion?seq=0&size=3"},
		{"GET", "/v1/proof/consistency?from=1&to=3"},
		{"GET", "/v1/stats"},
		{"GET", "/v1/actions"},
		{"GET", "/v1/keys"},
		{"DELETE", "/v1/keys/" + created.ID},
	} {
		r := e.do(c.method, c.path, "acme-admin", "application/json", []byte(ev("a", "user.login")))
		check(c.method+" "+c.path, r.header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/tail", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["acme-read"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	check("GET /v1/tail", resp.Header)
	cancel()
	resp.Body.Close()
}

// TestBodyBrokenOff: a body that ends before its Content-Length (the
// client closed its side), or whose chunked encoding is malformed, gets
// a 400 saying the body broke off, not a 500; nothing is stored.
func TestBodyBrokenOff(t *testing.T) {
	e := newEnv(t, server.Options{})
	body := ev("a", "user.login")
	for name, req := range map[string]string{
		"short of its length": fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", e.keys["acme-append"], len(body)+100, body),
		"a malformed chunk":   fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n%s\r\n0\r\n\r\n", e.keys["acme-append"], body),
		"keys, short":         fmt.Sprintf("POST /v1/keys HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"name\":", e.keys["acme-admin"]),
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, req)
			conn.(*net.TCPConn).CloseWrite()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			var ae apiErr
			json.Unmarshal(b, &ae)
			if resp.StatusCode != http.StatusBadRequest || ae.Error.Code != "invalid_request" {
				t.Errorf("answer %d %s, want 400 invalid_request", resp.StatusCode, b)
			}
		})
	}
	l, _ := e.db.Log(context.Background(), "acme")
	if l.Size() != e.start["acme"] {
		t.Errorf("log size %d after broken bodies, want %d", l.Size(), e.start["acme"])
	}
}

// TestStreamPastWriteTimeout: an export that a client reads for longer
// than the server's write timeout arrives whole, and so do a tail's
// events sent after it; the timeout bounds each write, not the stream.
func TestStreamPastWriteTimeout(t *testing.T) {
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	evs := make([]event.Event, 0, 1000)
	for i := 0; i < n; i += cap(evs) {
		evs = evs[:0]
		for j := 0; j < cap(evs); j++ {
			evs = append(evs, event.Event{Actor: event.Actor{ID: fmt.Sprintf("u%d", i+j)}, Action: "doc.read", Reason: strings.Repeat("r", 300)})
		}
		if _, err := l.AppendBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	secret, _, err := db.CreateKey(ctx, testAdmin, "acme", "slow", trail.ScopeRead, trail.ScopeAppend)
	if err != nil {
		t.Fatal(err)
	}
	addr := shortTimeouts(t, server.New(db, server.Options{RateLimit: -1}))
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// Several megabytes, more than the sockets hold, read 64 KiB every
	// 10 ms: about a second and a half.
	resp := get("/v1/export")
	lines := 0
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	buf := make([]byte, 64<<10)
	var rest []byte
	for {
		k, err := io.ReadFull(br, buf)
		chunk := append(rest, buf[:k]...)
		i := strings.LastIndexByte(string(chunk), '\n')
		lines += strings.Count(string(chunk[:i+1]), "\n")
		rest = append([]byte(nil), chunk[i+1:]...)
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp.Body.Close()
	if lines < n || len(rest) != 0 {
		t.Errorf("export read slowly: %d whole lines and %d bytes more, want at least %d lines", lines, len(rest), n)
	}

	// A tail open past the write timeout still sends what is appended.
	resp = get("/v1/tail?action=user.login")
	defer resp.Body.Close()
	time.Sleep(700 * time.Millisecond)
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "late"}, Action: "user.login"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"late"`) {
				got <- true
				return
			}
		}
		got <- false
	}()
	select {
	case ok := <-got:
		if !ok {
			t.Errorf("the tail ended before the event appended after the write timeout")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the tail sent no event appended after the write timeout within 10 s")
	}
}

// TestLateErrorAnswered: an error found after the server's write timeout
// (here /readyz's, which waits two seconds for a write lock held
// elsewhere) is still answered, not dropped with the connection.
func TestLateErrorAnswered(t *testing.T) {
	ctx := context.Background()
	b := backends.SQLite
	loc := b.New(t)
	db, err := initAt(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	addr := shortTimeouts(t, server.New(db, server.Options{Logger: slog.New(slog.DiscardHandler)}))
	unlock, err := b.Tamper(t, loc).LockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz with the database locked: %v, want a 503 answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database locked: %d, want 503", resp.StatusCode)
	}
}

// shortTimeouts serves h on a loopback port with read and write timeouts
// of 300 ms, set as trail serve sets its minute: the same for reads and
// writes, so the write deadline has passed too when the read times out.
// It returns the address.
// postTrickled sends, over a raw connection to addr, the request line and
// headers head (each line ending in CRLF) with the body's Content-Length,
// then body a byte every 50 ms, and returns the answer's status and body.
func postTrickled(t *testing.T, addr, head, body string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n", head, len(body))
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; i < len(body); i++ {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b
}

// TestSignInReadTimeout: a viewer sign-in form that trickles in past the
// server's read timeout is answered 408, saying to send it again, rather
// than the connection closed without an answer.
func TestSignInReadTimeout(t *testing.T) {
	db, err := trail.Init(context.Background(), t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := &logBuffer{t: t}
	addr := shortTimeouts(t, server.New(db, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))}))
	body := "key=trail_" + strings.Repeat("0", 200)
	status, b := postTrickled(t, addr, "POST /signin HTTP/1.1\r\nHost: trail\r\nContent-Type: application/x-www-form-urlencoded\r\n", body)
	if status != http.StatusRequestTimeout || !strings.Contains(string(b), "did not arrive in time") {
		t.Errorf("trickled sign-in form: %d %s, want 408 saying it did not arrive in time", status, b)
	}
}

func shortTimeouts(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
