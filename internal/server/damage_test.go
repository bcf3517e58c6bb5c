package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// initAt creates the store at loc, a location a backends.Backend gave: a
// data directory (trail.Init), or a URL (trail.InitStore, with the
// backend's master key).
func initAt(ctx context.Context, loc string) (*trail.DB, error) {
	if !strings.Contains(loc, "://") {
		return trail.Init(ctx, loc, trail.Options{})
	}
	return trail.InitStore(ctx, loc, trail.Options{MasterKey: backends.Postgres.MasterKey})
}

// newEnvOn is newEnv on a new store of backend b.
func newEnvOn(t *testing.T, b backends.Backend, opts server.Options) *env {
	t.Helper()
	opts.NoReadAudit = true
	return newEnvAt(t, b.New(t), opts)
}

// breakEvent damages the stored record of event seq of log, in the store
// of a running server, so that it no longer decodes.
func breakEvent(t *testing.T, tp storetest.Tamperer, log string, seq int64) {
	t.Helper()
	if err := tp.BreakEvent(context.Background(), log, seq); err != nil {
		t.Fatal(err)
	}
}

// alterEvent changes the stored event seq so that it still decodes.
func alterEvent(t *testing.T, tp storetest.Tamperer, log string, seq int64) {
	t.Helper()
	err := tp.EditEvents(context.Background(), log, seq, seq+1, func(evs []*event.Event) []*event.Event {
		evs[0].Reason = "nothing to see"
		return evs
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantDamaged checks an error response: 500, code damaged, naming seq.
func wantDamaged(t *testing.T, call string, r response, seq int64) {
	t.Helper()
	var body struct {
		Error struct {
			Code, Message string
			Seq           *int64
		}
	}
	json.Unmarshal(r.body, &body)
	if r.status != http.StatusInternalServerError || body.Error.Code != "damaged" || body.Error.Seq == nil || *body.Error.Seq != seq {
		t.Errorf("%s = %d %s; want 500 with code damaged and seq %d", call, r.status, r.body, seq)
		return
	}
	if want := "stored event at seq " + strconv.FormatInt(seq, 10) + " is damaged"; !strings.Contains(body.Error.Message, want) || !strings.Contains(body.Error.Message, "run trail verify") {
		t.Errorf("%s says %q; want %q and to run trail verify", call, body.Error.Message, want)
	}
}

// wantClientDamaged checks that the Go client's error names seq.
func wantClientDamaged(t *testing.T, call string, err error, seq int64) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Seq != seq || !errors.Is(err, client.ErrDamaged) || !strings.Contains(err.Error(), "seq "+strconv.FormatInt(seq, 10)) {
		t.Errorf("client %s = %v; want an *client.APIError naming seq %d that matches client.ErrDamaged", call, err, seq)
	}
}

// A damaged event is answered as damaged, naming its seq, by every API
// read that meets it, and by the Go client.
func TestDamagedEventAPI(t *testing.T) {
	backends.Run(t, testDamagedEventAPI)
}

func testDamagedEventAPI(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	tp := b.Tamper(t, e.loc)
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(1600, 5)
	rs, err := l.AppendBatch(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	// Keys may have put events first: seqs come from the receipts.
	d, a := rs[1500].Seq, rs[1200].Seq
	breakEvent(t, tp, "acme", d)
	c, err := client.New(e.url, e.keys["acme-read"], client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}

	wantDamaged(t, "GET /v1/events/{id}", e.do("GET", "/v1/events/"+rs[1500].ID, "acme-read", "", nil), d)
	_, err = c.Get(ctx, rs[1500].ID, l.VerifierKey())
	wantClientDamaged(t, "Get", err, d)

	// Searches that meet it fail; one that stops short of it does not.
	wantDamaged(t, "GET /v1/events?limit=200", e.do("GET", "/v1/events?limit=200", "acme-read", "", nil), d)
	wantDamaged(t, "GET /v1/events?actor=", e.do("GET", "/v1/events?actor="+url.QueryEscape(evs[1500].Actor.ID), "acme-read", "", nil), d)
	e.ok(200, "GET", "/v1/events?limit=50", "acme-read", "", nil, nil)
	_, err = c.SearchPage(ctx, api.Query{Limit: 200})
	wantClientDamaged(t, "SearchPage", err, d)

	// An export that has begun ends with the error and is cut short.
	req, _ := http.NewRequest("GET", e.url+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["acme-read"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var n int64
	var last string
	for sc.Scan() {
		if last != "" {
			n++
		}
		last = sc.Text()
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n != d || sc.Err() == nil {
		t.Errorf("GET /v1/export = %d with %d events before its last line, read error %v; want 200, %d and the body cut short", resp.StatusCode, n, sc.Err(), d)
	}
	wantDamaged(t, "the last line of GET /v1/export", response{status: 500, body: []byte(last)}, d)
	if err := client.ExportError([]byte(last)); err != nil {
		wantClientDamaged(t, "ExportError(last line)", err, d)
	} else {
		t.Errorf("client.ExportError(%s) = nil", last)
	}
	// One that meets it before any match answers with the error.
	breakEvent(t, tp, "acme", 0)
	wantDamaged(t, "GET /v1/export", e.do("GET", "/v1/export", "acme-read", "", nil), 0)
	_, err = c.Export(ctx, api.Query{}, "csv")
	wantClientDamaged(t, "Export", err, 0)

	// An event altered so that it decodes does not hash to its leaf.
	alterEvent(t, tp, "acme", a)
	wantDamaged(t, "GET /v1/events/{id} of an altered event", e.do("GET", "/v1/events/"+rs[1200].ID, "acme-read", "", nil), a)
	_, err = c.Get(ctx, rs[1200].ID, l.VerifierKey())
	wantClientDamaged(t, "Get(altered event)", err, a)
	e.ok(200, "GET", "/v1/events/"+rs[1199].ID, "acme-read", "", nil, nil)
}

// An event stored past the log's end fails appends with code damaged,
// naming its seq; nothing is stored.
func TestStrayEventAPI(t *testing.T) {
	backends.Run(t, testStrayEventAPI)
}

func testStrayEventAPI(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, storetest.Events(100, 6)); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	if err := b.Tamper(t, e.loc).CopyRecord(ctx, "acme", size-1, size); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/v1/events", "acme-append", "application/json", []byte(`{"actor":{"id":"alice"},"action":"user.login"}`))
	wantDamaged(t, "POST /v1/events", r, size)
	if !strings.Contains(string(r.body), "nothing was stored") || strings.Contains(string(r.body), "unavailable") {
		t.Errorf("POST /v1/events = %s, want it to say nothing was stored, for the damage rather than an outage", r.body)
	}
	c, err := client.New(e.url, e.keys["acme-append"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(ctx, event.Event{Actor: event.Actor{ID: "alice"}, Action: "user.login"})
	wantClientDamaged(t, "Append", err, size)
	if l.Size() != size {
		t.Errorf("the log holds %d events after the refused appends, want %d", l.Size(), size)
	}
	// Readiness says so, degraded rather than down: reads are served.
	ready := e.do("GET", "/readyz", "", "", nil)
	if body := string(ready.body); ready.status != 200 || !strings.HasPrefix(body, "degraded: log acme: appends refused: ") || !strings.Contains(body, "damaged") {
		t.Errorf("GET /readyz after refused appends = %d %q, want 200 degraded, naming log acme and the damage", ready.status, body)
	}
}

// The viewer's event page and events list say that a stored event is
// damaged, naming its seq, and to run trail verify.
func TestViewerDamagedEvent(t *testing.T) {
	backends.Run(t, testViewerDamagedEvent)
}

func testViewerDamagedEvent(t *testing.T, b backends.Backend) {
	v := newViewerEnvAt(t, b.New(t))
	tp := b.Tamper(t, v.loc)
	ctx := context.Background()
	l, err := v.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := l.Get(ctx, v.eventID)
	if err != nil {
		t.Fatal(err)
	}
	before, err := l.GetSeq(ctx, bad.Seq-1) // appended with it
	if err != nil {
		t.Fatal(err)
	}
	c := v.browser()
	if resp := v.signIn(c, v.read, "/", v.srv.URL); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in = %s", resp.Status)
	}
	alterEvent(t, tp, "acme", before.Seq) // still decodes
	breakEvent(t, tp, "acme", bad.Seq)    // does not

	for _, tc := range []struct {
		path string
		seq  int64
	}{
		{"/events/" + v.eventID, bad.Seq},
		{"/events/" + before.ID, before.Seq},
		{"/", bad.Seq},
	} {
		resp, page := v.get(c, tc.path)
		want := "The stored event at seq " + strconv.FormatInt(tc.seq, 10) + " is damaged"
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(page, want) || !strings.Contains(page, "run trail verify") {
			t.Errorf("GET %s = %s; want 500 and a page saying %q and to run trail verify:\n%s", tc.path, resp.Status, want, page)
		}
	}
}

// A tail that meets a damaged event ends with an error event naming it;
// the Go client's Tail returns it rather than reconnect for ever.
func TestTailDamagedEvent(t *testing.T) {
	backends.Run(t, testTailDamagedEvent)
}

func testTailDamagedEvent(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	tp := b.Tamper(t, e.loc)
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := l.AppendBatch(ctx, storetest.Events(20, 7))
	if err != nil {
		t.Fatal(err)
	}
	d := rs[10].Seq
	breakEvent(t, tp, "acme", d)
	c, err := client.New(e.url, e.keys["acme-read"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = c.Tail(tctx, api.Query{}, d-2, func(*event.Event) error { return nil })
	wantClientDamaged(t, "Tail", err, d)
}

// With reads audited, a read meets the damage when it records itself: it
// is refused as damaged, saying that the read could not be recorded, not
// that "nothing was stored".
func TestStrayEventAuditedRead(t *testing.T) {
	e := newEnvAudit(t, server.Options{})
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, storetest.Events(10, 6)); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	if err := backends.SQLite.Tamper(t, e.loc).CopyRecord(ctx, "acme", size-1, size); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/events?limit=1", "acme-read", "", nil)
	wantDamaged(t, "GET /v1/events", r, size)
	if !strings.Contains(string(r.body), "this read could not be recorded") || strings.Contains(string(r.body), "nothing was stored") {
		t.Errorf("GET /v1/events = %s, want it to say the read could not be recorded", r.body)
	}
}

// A log whose stored verifier key was replaced (its signing key no
// longer matches it) is neither served nor appended to: DB.CheckKeys
// finds it before any request, its requests answer 500 damaged, saying so
// without the key's file or secret, and readiness names it, degraded.
func TestLogKeyMismatchAPI(t *testing.T) {
	backends.Run(t, testLogKeyMismatchAPI)
}

func testLogKeyMismatchAPI(t *testing.T, b backends.Backend) {
	ctx := context.Background()
	loc := b.New(t)
	db, err := initAt(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	read, _, err := db.CreateKey(ctx, testAdmin, "acme", "r", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	appendKey, _, err := db.CreateKey(ctx, testAdmin, "acme", "a", trail.ScopeAppend)
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	origin := l.Origin()
	db.Close()
	_, other, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	tp := b.Tamper(t, loc)
	if err := tp.SetVerifierKey(ctx, "acme", other); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	if strings.Contains(loc, "://") {
		db, err = trail.OpenStore(ctx, loc, trail.Options{MasterKey: backends.Postgres.MasterKey})
	} else {
		db, err = trail.Open(ctx, loc, trail.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Checked at start, as trail serve does: named before any request.
	failed, err := db.CheckKeys(ctx)
	if lde := (*trail.LogDamagedError)(nil); err != nil || len(failed) != 1 || !errors.As(failed["acme"], &lde) {
		t.Errorf("CheckKeys = %v, %v; want log acme's LogDamagedError", failed, err)
	}
	logged := &logBuffer{t: t}
	srv := httptest.NewServer(server.New(db, server.Options{Logger: slog.New(slog.NewJSONHandler(logged, nil))}))
	defer srv.Close()
	e := &env{t: t, db: db, loc: loc, url: srv.URL, keys: map[string]string{"read": read, "append": appendKey}}
	if ready := e.do("GET", "/readyz", "", "", nil); ready.status != 200 || !strings.HasPrefix(string(ready.body), "degraded: log acme: not served: log acme is damaged") {
		t.Errorf("GET /readyz before any request = %d %q, want 200 degraded, naming log acme", ready.status, ready.body)
	}
	for _, r := range []struct{ method, path, key string }{
		{"GET", "/v1/events", "read"},
		{"GET", "/v1/checkpoint", "read"},
		{"POST", "/v1/events", "append"},
	} {
		var body []byte
		if r.method == "POST" {
			body = []byte(`{"actor":{"id":"alice"},"action":"user.login"}`)
		}
		resp := e.do(r.method, r.path, r.key, "application/json", body)
		var got api.Error
		json.Unmarshal(resp.body, &got)
		if resp.status != http.StatusInternalServerError || got.Error.Code != "damaged" ||
			!strings.Contains(got.Error.Message, "log acme is damaged: its signing key does not match the verifier key stored for it") {
			t.Errorf("%s %s = %d %s, want 500 damaged saying the log's keys do not match", r.method, r.path, resp.status, resp.body)
		}
		if strings.Contains(string(resp.body), loc) || strings.Contains(string(resp.body), "secret") || strings.Contains(string(resp.body), other) {
			t.Errorf("%s %s = %s: names where the key is, or the key", r.method, r.path, resp.body)
		}
	}
	ready := e.do("GET", "/readyz", "", "", nil)
	if body := string(ready.body); ready.status != 200 || !strings.HasPrefix(body, "degraded: log acme: not served: log acme is damaged") {
		t.Errorf("GET /readyz = %d %q, want 200 degraded, naming log acme", ready.status, body)
	}
	if !strings.Contains(logged.String(), "does not match the log's verifier key "+other) {
		t.Errorf("the server's log does not give the detail: %s", logged.String())
	}
}
