package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/server"
)

// testAdmin is who the tests say creates and revokes keys outside the API.
var testAdmin = trail.Caller{Actor: event.Actor{ID: "test-admin", Type: event.ActorUser}}

// logBuffer keeps the server's logs for inspection and sends them to t.Log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a running server with a real data directory and keys of two
// tenants, acme and globex.
type env struct {
	t    *testing.T
	db   *trail.DB
	loc  string // where the store is: a data directory, or a URL
	url  string
	logs *logBuffer
	// keys by name: acme-admin, acme-append, acme-read, globex-admin.
	keys map[string]string
	ids  map[string]string
	// start is the size of each log once its keys are made: the
	// trail.key.create events that record them.
	start map[string]int64
}

// newEnv starts a server with reads not audited, so tests can count the
// events they append; TestReadAudit covers auditing.
func newEnv(t *testing.T, opts server.Options) *env {
	t.Helper()
	opts.NoReadAudit = true
	return newEnvAudit(t, opts)
}

func newEnvAudit(t *testing.T, opts server.Options) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), opts)
}

// newEnvAt is newEnvAudit with the store created at loc, a data
// directory or a location a backends.Backend gave (see initAt).
func newEnvAt(t *testing.T, loc string, opts server.Options) *env {
	t.Helper()
	ctx := context.Background()
	db, err := initAt(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, loc: loc, logs: &logBuffer{t: t}, keys: map[string]string{}, ids: map[string]string{}, start: map[string]int64{}}
	for _, k := range []struct {
		name, log string
		scope     trail.Scope
	}{
		{"acme-admin", "acme", trail.ScopeAdmin},
		{"acme-append", "acme", trail.ScopeAppend},
		{"acme-read", "acme", trail.ScopeRead},
		{"globex-admin", "globex", trail.ScopeAdmin},
	} {
		secret, ki, err := db.CreateKey(ctx, testAdmin, k.log, k.name, k.scope)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[k.name], e.ids[k.name] = secret, ki.ID
	}
	for _, name := range []string{"acme", "globex"} {
		l, err := db.Log(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		e.start[name] = l.Size()
		if err := l.WaitIndexed(ctx); err != nil { // a test starts with nothing to index
			t.Fatal(err)
		}
	}
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	srv := httptest.NewServer(server.New(db, opts))
	e.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		db.Close()
		for name, secret := range e.keys {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("the server logged the secret of key %s", name)
			}
		}
		if strings.Contains(e.logs.String(), "Bearer") {
			t.Error("the server logged an Authorization header")
		}
	})
	return e
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the named key ("" for none) and returns the
// response.
func (e *env) do(method, path, key, contentType string, body []byte) response {
	e.t.Helper()
	// A request that never ends (a stream begun by mistake) fails the
	// test rather than hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		secret, ok := e.keys[key]
		if !ok {
			secret = key // a literal, possibly bad, key
		}
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// ok does a request and fails unless the status is want; it decodes a
// JSON answer into v (if not nil).
func (e *env) ok(want int, method, path, key, contentType string, body []byte, v any) response {
	e.t.Helper()
	r := e.do(method, path, key, contentType, body)
	if r.status != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.body, want)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, r.body)
		}
	}
	return r
}

type apiErr struct {
	Error struct {
		Code, Message, Field string
		Index                *int
	}
}

// fails does a request and checks the error status, code and field.
func (e *env) fails(status int, code, field, method, path, key, contentType string, body []byte) apiErr {
	e.t.Helper()
	r := e.do(method, path, key, contentType, body)
	var ae apiErr
	if err := json.Unmarshal(r.body, &ae); err != nil {
		e.t.Fatalf("%s %s: error body %q is not JSON: %v", method, path, r.body, err)
	}
	if r.status != status || ae.Error.Code != code || ae.Error.Field != field || ae.Error.Message == "" {
		e.t.Errorf("%s %s = %d %s, want %d with code %q, field %q", method, path, r.status, r.body, status, code, field)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: error Content-Type %q", method, path, ct)
	}
	return ae
}

type receipts struct {
	Events []struct {
		ID  string
		Seq int64
	}
}

func ev(actor, action string) string {
	return fmt.Sprintf(`{"actor":{"id":%q},"action":%q}`, actor, action)
}

// appendN appends n events to the key's log in one batch, actor i%5 and
// action by i%3.
func (e *env) appendN(key string, n int) receipts {
	e.t.Helper()
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"actor":{"id":"u%d"},"action":%q,"source":{"ip":"192.0.2.%d"}}`, i%5, []string{"user.login", "user.delete", "billing.pay"}[i%3], i%2+1))
	}
	var rs receipts
	e.ok(201, "POST", "/v1/events", key, "application/json", []byte(`{"events":[`+strings.Join(evs, ",")+`]}`), &rs)
	if len(rs.Events) != n {
		e.t.Fatalf("appended %d events, got %d receipts", n, len(rs.Events))
	}
	return rs
}

type page struct {
	Events     []json.RawMessage
	NextCursor *string `json:"next_cursor"`
}

type stored struct {
	ID     string
	Seq    int64
	Log    string
	Action string
	Actor  struct{ ID string }
}

func TestIngestShapes(t *testing.T) {
	e := newEnv(t, server.Options{})
	base := e.start["acme"] // after the keys' trail.key.create events
	var rs receipts
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")), &rs)
	if len(rs.Events) != 1 || rs.Events[0].Seq != base || rs.Events[0].ID == "" {
		t.Errorf("single event: receipts %+v, want one at seq %d", rs, base)
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "", []byte(`{"events":[`+ev("bob", "user.login")+`,`+ev("carol", "user.delete")+`]}`), &rs)
	if len(rs.Events) != 2 || rs.Events[0].Seq != base+1 || rs.Events[1].Seq != base+2 {
		t.Errorf("batch: receipts %+v, want seqs %d, %d", rs, base+1, base+2)
	}
	nd := ev("dave", "user.login") + "\n\n" + ev("erin", "billing.pay") + "\n" + ev("frank", "user.logout")
	e.ok(201, "POST", "/v1/events", "acme-append", "application/x-ndjson", []byte(nd), &rs)
	if len(rs.Events) != 3 || rs.Events[0].Seq != base+3 || rs.Events[2].Seq != base+5 {
		t.Errorf("NDJSON: receipts %+v, want seqs %d..%d", rs, base+3, base+5)
	}

	var p page
	e.ok(200, "GET", "/v1/events", "acme-read", "", nil, &p)
	var actors []string
	for _, raw := range p.Events {
		var s stored
		json.Unmarshal(raw, &s)
		actors = append(actors, s.Actor.ID)
		if s.Log != "acme" {
			t.Errorf("event %s in log %q, want acme", s.ID, s.Log)
		}
	}
	if want := []string{"frank", "erin", "dave", "carol", "bob", "alice", "test-admin", "test-admin", "test-admin"}; !slices.Equal(actors, want) {
		t.Errorf("GET /v1/events actors = %q, want %q", actors, want)
	}
	if p.NextCursor != nil {
		t.Errorf("next_cursor = %q, want null", *p.NextCursor)
	}
	// Events are returned in their canonical form, the bytes of the leaf.
	l, _ := e.db.Log(context.Background(), "acme")
	got, err := l.GetSeq(context.Background(), base+5)
	if err != nil {
		t.Fatal(err)
	}
	if want := canon.Append(nil, got); !bytes.Equal(p.Events[0], want) {
		t.Errorf("GET /v1/events[0] = %s, want canonical %s", p.Events[0], want)
	}
}

func TestValidationErrors(t *testing.T) {
	e := newEnv(t, server.Options{MaxBatchEvents: 3})
	e.appendN("acme-append", 1)
	bad := `{"actor":{"id":"x"}}`
	ae := e.fails(400, "invalid_event", "action", "POST", "/v1/events", "acme-append", "application/json",
		[]byte(`{"events":[`+ev("a", "user.login")+`,`+bad+`]}`))
	if ae.Error.Index == nil || *ae.Error.Index != 1 || !strings.Contains(ae.Error.Message, "event 1") {
		t.Errorf("batch error = %+v, want index 1", ae.Error)
	}
	ae = e.fails(400, "invalid_event", "actor.id", "POST", "/v1/events", "acme-append", "application/x-ndjson",
		[]byte(ev("a", "user.login")+"\n"+ev("b", "user.login")+"\n"+`{"actor":{"id":7},"action":"user.login"}`+"\n"))
	if ae.Error.Index == nil || *ae.Error.Index != 2 {
		t.Errorf("NDJSON error = %+v, want index 2", ae.Error)
	}
	ae = e.fails(400, "invalid_event", "action", "POST", "/v1/events", "acme-append", "application/json", []byte(bad))
	if ae.Error.Index != nil {
		t.Errorf("single-event error = %+v, want no index", ae.Error)
	}
	e.fails(400, "invalid_event", "id", "POST", "/v1/events", "acme-append", "application/json", []byte(`{"id":"x","actor":{"id":"a"},"action":"a.b"}`))
	e.fails(400, "invalid_event", "", "POST", "/v1/events", "acme-append", "application/json", []byte(`[1]`))
	for _, body := range []string{
		`{"events":[` + ev("a", "user.login") + `],"events":[]}`,
		`{"events":[` + ev("a", "user.login") + `],"x":1}`,
		`{"events":[` + ev("a", "user.login") + `]} {}`,
	} {
		e.fails(400, "invalid_event", "", "POST", "/v1/events", "acme-append", "application/json", []byte(body))
	}
	e.fails(400, "invalid_event", "events", "POST", "/v1/events", "acme-append", "application/json", []byte(`{"events":{}}`))
	e.fails(400, "invalid_event", "", "POST", "/v1/events", "acme-append", "application/x-ndjson", nil)
	e.fails(415, "unsupported_media_type", "", "POST", "/v1/events", "acme-append", "text/plain", []byte(ev("a", "user.login")))
	// A misspelt parameter is refused, not ignored (no receipts).
	e.fails(400, "invalid_parameter", "receipt", "POST", "/v1/events?receipt=wait", "acme-append", "application/json", []byte(ev("a", "user.login")))
	e.fails(400, "invalid_parameter", "receipts", "POST", "/v1/events?receipts=wait&receipts=wait", "acme-append", "application/json", []byte(ev("a", "user.login")))
	e.fails(400, "invalid_parameter", "sise", "GET", "/v1/proof/inclusion?seq=0&size=1&sise=1", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "form", "GET", "/v1/proof/consistency?form=1&from=1&to=1", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "witnesed", "GET", "/v1/checkpoint?witnesed=false", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "x", "GET", "/v1/log?x=1", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "proof", "GET", "/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV?proof=1", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "wiat", "GET", "/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/receipt?wiat=5s", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "wait", "GET", "/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/receipt?wait=1s&wait=2s", "acme-read", "", nil)
	e.fails(400, "invalid_parameter", "log", "GET", "/v1/keys?log=globex", "acme-admin", "", nil)
	e.fails(400, "invalid_parameter", "scope", "POST", "/v1/keys?scope=admin", "acme-admin", "application/json", []byte(`{"name":"x","scopes":["read"]}`))
	e.fails(400, "invalid_parameter", "force", "DELETE", "/v1/keys/k1?force=1", "acme-admin", "", nil)
	e.fails(400, "invalid_parameter", "x", "GET", "/v1/witness-policy?x=1", "acme-read", "", nil)
	ae = e.fails(413, "too_large", "", "POST", "/v1/events", "acme-append", "application/x-ndjson",
		[]byte(strings.Repeat(ev("a", "user.login")+"\n", 4)))
	if want := "over 3 events in one request (4 sent)"; !strings.Contains(ae.Error.Message, want) {
		t.Errorf("413 for a large batch says %q, want it to contain %q", ae.Error.Message, want)
	}
	huge := fmt.Sprintf(`{"actor":{"id":"a"},"action":"user.login","reason":%q}`, strings.Repeat("x", 1<<20))
	ae = e.fails(413, "too_large", "", "POST", "/v1/events", "acme-append", "application/json", []byte(huge))
	if want := "request body over the 1048576-byte limit (--max-body)"; ae.Error.Message != want {
		t.Errorf("413 for a large body says %q, want %q", ae.Error.Message, want)
	}
	// A client that declares a body over the limit and waits for 100
	// Continue before it sends it gets the 413 at once.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\nExpect: 100-continue\r\n\r\n", e.keys["acme-append"])
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 413 ") {
		t.Errorf("a declared body of 100 MB, waiting for 100 Continue: answered %q, %v; want 413 first", status, err)
	}
	// Numbers canonicalisation would rewrite, and the zero time, which
	// would stand for an absent one.
	for _, c := range []struct{ body, field, msg string }{
		{`{"actor":{"id":"a"},"action":"user.login","metadata":{"x":1.0}}`, "metadata.x", "number 1.0 is not in canonical form (write 1)"},
		{`{"actor":{"id":"a"},"action":"user.login","metadata":{"x":{"y":[-0]}}}`, "metadata.x.y[0]", "write 0"},
		{`{"actor":{"id":"a"},"action":"user.login","changes":{"after":{"n":1E+2}}}`, "changes.after.n", "write 100"},
		{`{"actor":{"id":"a"},"action":"user.login","time":"0001-01-01T00:00:00Z"}`, "time", "between 1970-01-01 and 2262-04-11"},
		// Trail's own records: a key that may append cannot forge them.
		{`{"actor":{"id":"a"},"action":"trail.key.revoke"}`, "action", `starting with "trail." are Trail's own records`},
		{`{"events":[{"actor":{"id":"a"},"action":"user.login"},{"actor":{"id":"a"},"action":"trail.search"}]}`, "action", `event 1: action: actions starting with "trail."`},
	} {
		ae = e.fails(400, "invalid_event", c.field, "POST", "/v1/events", "acme-append", "application/json", []byte(c.body))
		if !strings.Contains(ae.Error.Message, c.msg) {
			t.Errorf("POST %s: message %q, want it to contain %q", c.body, ae.Error.Message, c.msg)
		}
	}

	l, _ := e.db.Log(context.Background(), "acme")
	if l.Size() != e.start["acme"]+1 {
		t.Errorf("log size after rejected requests = %d, want %d (all or nothing)", l.Size(), e.start["acme"]+1)
	}

	// A query that does not parse is refused, naming the parameter,
	// rather than searched without the part that did not parse.
	for _, q := range []struct{ path, field string }{
		{"/v1/events?actor=a;b&limit=2", "actor"},
		{"/v1/events?actor=%zz", "actor"},
		{"/v1/events?q%zz=a", "q%zz"},
		{"/v1/export?actor=nobody;x", "actor"},
		{"/v1/proof/inclusion?seq=1;&size=5", "seq"},
		{"/v1/tail?action=a;b", "action"},
	} {
		if ae := e.fails(400, "invalid_parameter", q.field, "GET", q.path, "acme-read", "", nil); !strings.Contains(ae.Error.Message, q.field+":") {
			t.Errorf("GET %s: message %q, want it to name %s", q.path, ae.Error.Message, q.field)
		}
	}

	for _, q := range []struct{ query, field string }{
		{"since=yesterday", "since"},
		{"until=2026-13-01T00:00:00Z", "until"},
		{"limit=0", "limit"},
		{"limit=20000", "limit"},
		{"cursor=abc", "cursor"},
		{"outcome=maybe", "outcome"},
		{"ip=300.1.1.1", "ip"},
		{"q=" + url.QueryEscape("-- *"), "q"},
		{"q=" + strings.Repeat("w+", trail.MaxTextTerms+1), "q"},
		{"action=" + url.QueryEscape("no spaces"), "action"},
		{"actor=a&actor=b", "actor"},
		{"actr=a", "actr"},
		{"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"},
	} {
		e.fails(400, "invalid_parameter", q.field, "GET", "/v1/events?"+q.query, "acme-read", "", nil)
	}
	e.fails(400, "invalid_parameter", "until", "GET", "/v1/export?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "acme-read", "", nil)
	e.ok(200, "GET", "/v1/events?q="+strings.Repeat("w+", trail.MaxTextTerms), "acme-read", "", nil, nil)
	// A live tail refuses them before its stream starts.
	for _, q := range []struct{ query, field string }{
		{"outcome=maybe", "outcome"},
		{"q=" + url.QueryEscape("-- *"), "q"},
		{"action=" + url.QueryEscape("no spaces"), "action"},
		{"ip=300.1.1.1", "ip"},
	} {
		e.fails(400, "invalid_parameter", q.field, "GET", "/v1/tail?"+q.query, "acme-read", "", nil)
	}
	for _, q := range []struct{ path, field, says string }{
		{"/v1/proof/inclusion?size=1", "seq", "required"},
		{"/v1/proof/inclusion?seq=0&size=x", "size", "integer"},
		{"/v1/proof/consistency?from=-1&to=1", "from", "integer"},
		{"/v1/proof/inclusion?seq=5&size=5", "seq", "5 must be below size 5: a tree of 5 events holds seqs 0 to 4"},
		{"/v1/proof/inclusion?seq=0&size=0", "size", "at least 1"},
		{"/v1/proof/consistency?from=0&to=5", "from", "at least 1"},
		{"/v1/proof/consistency?from=6&to=5", "from", "6 must not be past to 5"},
	} {
		if ae := e.fails(400, "invalid_parameter", q.field, "GET", q.path, "acme-read", "", nil); !strings.Contains(ae.Error.Message, q.says) {
			t.Errorf("GET %s: %q, want it to say %q", q.path, ae.Error.Message, q.says)
		}
	}
	e.fails(404, "not_found", "", "GET", fmt.Sprintf("/v1/proof/inclusion?seq=0&size=%d", l.Size()+1), "acme-read", "", nil)
	e.fails(404, "not_found", "", "GET", "/v1/events/nope", "acme-read", "", nil)
	e.fails(404, "not_found", "", "GET", "/v1/nothing", "acme-read", "", nil)
	if r := e.do("GET", "/v1/log", "acme-read", "", nil); r.status != 200 || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /v1/log = %d, X-Content-Type-Options %q; want 200, nosniff", r.status, r.header.Get("X-Content-Type-Options"))
	}
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/v1/events", "GET, POST"},
		{"DELETE", "/v1/log", "GET"},
		{"POST", "/v1/keys/k1", "DELETE"},
	} {
		r := e.do(c.method, c.path, "acme-admin", "", nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s = %d, Allow %q; want 405, Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
	}
}

// TestSearchPages pages through filtered results while events are
// appended, and checks that the pages hold every match once, in order.
func TestSearchPages(t *testing.T) {
	e := newEnv(t, server.Options{})
	all := e.appendN("acme-append", 300)
	e.appendN("globex-admin", 50)
	var ticks []int64
	since := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339Nano)
	for _, tc := range []struct {
		query string
		match func(i int) bool
	}{
		{"", func(int) bool { return true }},
		{"actor=u3", func(i int) bool { return i%5 == 3 }},
		{"action=user.login", func(i int) bool { return i%3 == 0 }},
		{"action=user.*&ip=192.0.2.2", func(i int) bool { return i%3 != 2 && i%2 == 1 }},
		{"q=delete&since=" + url.QueryEscape(since), func(i int) bool { return i%3 == 1 }},
		{"outcome=failure", func(int) bool { return false }},
		{"until=" + url.QueryEscape(since), func(int) bool { return false }},
	} {
		t.Run(tc.query, func(t *testing.T) {
			// Events appended while paging (ticks) come after the first
			// page and must not show; earlier ticks match only "".
			var want []int64
			if tc.query == "" {
				want = slices.Clone(ticks)
				slices.Reverse(want)
			}
			for i := len(all.Events) - 1; i >= 0; i-- {
				if tc.match(i) {
					want = append(want, all.Events[i].Seq)
				}
			}
			if tc.query == "" { // and the keys' trail.key.create events
				for seq := e.start["acme"] - 1; seq >= 0; seq-- {
					want = append(want, seq)
				}
			}
			var got, tick []int64
			defer func() { ticks = append(ticks, tick...) }()
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 400 {
					t.Fatal("too many pages")
				}
				path := "/v1/events?limit=7&" + tc.query
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				var p page
				e.ok(200, "GET", path, "acme-read", "", nil, &p)
				for _, raw := range p.Events {
					var s stored
					json.Unmarshal(raw, &s)
					if s.Log != "acme" {
						t.Fatalf("event of log %q in acme's results", s.Log)
					}
					got = append(got, s.Seq)
				}
				var rs receipts
				e.ok(201, "POST", "/v1/events", "acme-append", "", []byte(ev("zz", "test.tick")), &rs)
				tick = append(tick, rs.Events[0].Seq)
				if p.NextCursor == nil {
					break
				}
				cursor = *p.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged seqs = %v,\nwant %v", got, want)
			}
		})
	}
}

// checkpointOf fetches and verifies the key's log's checkpoint.
func (e *env) checkpointOf(key string) (merkle.Checkpoint, string) {
	e.t.Helper()
	var info struct {
		Origin      string
		VerifierKey string `json:"verifier_key"`
		TreeSize    int64  `json:"tree_size"`
	}
	e.ok(200, "GET", "/v1/log", key, "", nil, &info)
	r := e.ok(200, "GET", "/v1/checkpoint", key, "", nil, nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		e.t.Errorf("checkpoint Content-Type = %q, want text/plain", ct)
	}
	return e.openCheckpoint(info.VerifierKey, info.Origin, r.body), info.VerifierKey
}

func (e *env) openCheckpoint(vkey, origin string, signed []byte) merkle.Checkpoint {
	e.t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		e.t.Fatalf("note.Open(checkpoint) = %v\n%s", err, signed)
	}
	c, err := merkle.ParseCheckpoint([]byte(n.Text))
	if err != nil {
		e.t.Fatal(err)
	}
	if c.Origin != origin {
		e.t.Errorf("checkpoint origin %q, want %q", c.Origin, origin)
	}
	return c
}

func decodeHashes(t *testing.T, hs []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("hash %q: not base64 of 32 bytes", h)
		}
		out[i] = tlog.Hash(b)
	}
	return out
}

func TestProofs(t *testing.T) {
	e := newEnv(t, server.Options{})
	rs := e.appendN("acme-append", 20)
	old, vkey := e.checkpointOf("acme-read")
	if old.Size != e.start["acme"]+20 {
		t.Fatalf("checkpoint size %d, want %d", old.Size, e.start["acme"]+20)
	}
	rs2 := e.appendN("acme-append", 13)
	// Characters a JSON encoder escapes for HTML: the event's bytes as
	// served must still be its leaf's.
	var html receipts
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json",
		[]byte(`{"actor":{"id":"ana"},"action":"user.update","metadata":{"note":"<b>&amp;</b>\u2028\u2029"}}`), &html)
	c, _ := e.checkpointOf("acme-read")

	for _, id := range []string{rs.Events[0].ID, rs.Events[17].ID, rs2.Events[12].ID, html.Events[0].ID} {
		var got struct {
			Event json.RawMessage
			Proof struct {
				Seq      int64
				TreeSize int64 `json:"tree_size"`
				Hashes   []string
			}
			Checkpoint string
		}
		e.ok(200, "GET", "/v1/events/"+id, "acme-read", "", nil, &got)
		gc := e.openCheckpoint(vkey, old.Origin, []byte(got.Checkpoint))
		if got.Proof.TreeSize != gc.Size {
			t.Errorf("proof tree_size %d, checkpoint size %d", got.Proof.TreeSize, gc.Size)
		}
		var s stored
		json.Unmarshal(got.Event, &s)
		if s.ID != id || s.Seq != got.Proof.Seq {
			t.Errorf("GET /v1/events/%s = event %s at %d, proof for %d", id, s.ID, s.Seq, got.Proof.Seq)
		}
		if err := tlog.CheckRecord(decodeHashes(t, got.Proof.Hashes), gc.Size, gc.Hash, got.Proof.Seq, tlog.RecordHash(got.Event)); err != nil {
			t.Errorf("tlog.CheckRecord(event %s) = %v", id, err)
		}
	}

	// A proof's numbers are given once, in decimal digits.
	for q, field := range map[string]string{"seq=1&seq=2&size=5": "seq", "seq=%2B1&size=5": "seq", "seq=1&size=05": "size"} {
		e.fails(400, "invalid_parameter", field, "GET", "/v1/proof/inclusion?"+q, "acme-read", "", nil)
	}

	var incl struct {
		Seq, TreeSize int64
		Hashes        []string
	}
	e.ok(200, "GET", fmt.Sprintf("/v1/proof/inclusion?seq=5&size=%d", old.Size), "acme-read", "", nil, &incl)
	var p page
	e.ok(200, "GET", "/v1/events?limit=1&cursor=6", "acme-read", "", nil, &p)
	if err := tlog.CheckRecord(decodeHashes(t, incl.Hashes), old.Size, old.Hash, 5, tlog.RecordHash(p.Events[0])); err != nil {
		t.Errorf("tlog.CheckRecord(seq 5 in the old tree) = %v", err)
	}

	var cons struct {
		From, To int64
		Hashes   []string
	}
	e.ok(200, "GET", fmt.Sprintf("/v1/proof/consistency?from=%d&to=%d", old.Size, c.Size), "acme-read", "", nil, &cons)
	if err := tlog.CheckTree(decodeHashes(t, cons.Hashes), c.Size, c.Hash, old.Size, old.Hash); err != nil {
		t.Errorf("tlog.CheckTree(%d -> %d) = %v", old.Size, c.Size, err)
	}
	e.fails(404, "not_found", "", "GET", fmt.Sprintf("/v1/proof/consistency?from=1&to=%d", c.Size+1), "acme-read", "", nil)
}

// TestTenantIsolation tries every endpoint with the other tenant's key.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, server.Options{})
	acme := e.appendN("acme-append", 10)
	globex := e.appendN("globex-admin", 3)
	if globex.Events[0].Seq != e.start["globex"] {
		t.Errorf("globex's first seq = %d, want %d (after its key's trail.key.create)", globex.Events[0].Seq, e.start["globex"])
	}

	for _, ev := range acme.Events {
		e.fails(404, "not_found", "", "GET", "/v1/events/"+ev.ID, "globex-admin", "", nil)
	}
	for _, ev := range globex.Events {
		e.fails(404, "not_found", "", "GET", "/v1/events/"+ev.ID, "acme-read", "", nil)
	}
	var p page
	e.ok(200, "GET", "/v1/events?limit=100", "globex-admin", "", nil, &p)
	if want := e.start["globex"] + 3; int64(len(p.Events)) != want {
		t.Errorf("globex sees %d events, want its %d", len(p.Events), want)
	}
	for _, raw := range p.Events {
		if !bytes.Contains(raw, []byte(`"log":"globex"`)) {
			t.Errorf("globex's search returned %s", raw)
		}
	}
	ca, _ := e.checkpointOf("acme-read")
	cg, _ := e.checkpointOf("globex-admin")
	acmeSize, globexSize := e.start["acme"]+10, e.start["globex"]+3
	if ca.Size != acmeSize || cg.Size != globexSize || ca.Origin == cg.Origin {
		t.Errorf("checkpoints: acme %+v, globex %+v; want sizes %d and %d, different origins", ca, cg, acmeSize, globexSize)
	}
	e.fails(404, "not_found", "", "GET", fmt.Sprintf("/v1/proof/inclusion?seq=5&size=%d", acmeSize), "globex-admin", "", nil)
	e.fails(404, "not_found", "", "GET", fmt.Sprintf("/v1/proof/consistency?from=%d&to=%d", globexSize, acmeSize), "globex-admin", "", nil)
	var info struct {
		TreeSize int64 `json:"tree_size"`
	}
	e.ok(200, "GET", "/v1/log", "globex-admin", "", nil, &info)
	if info.TreeSize != globexSize {
		t.Errorf("globex /v1/log tree_size = %d, want %d", info.TreeSize, globexSize)
	}
	l, _ := e.db.Log(context.Background(), "acme")
	if l.Size() != acmeSize {
		t.Errorf("acme has %d events after globex appended, want %d", l.Size(), acmeSize)
	}
}

var endpoints = []struct {
	method, path string
	scope        trail.Scope
}{
	{"POST", "/v1/events", trail.ScopeAppend},
	{"GET", "/v1/events", trail.ScopeRead},
	{"GET", "/v1/events/ID", trail.ScopeRead},
	{"GET", "/v1/checkpoint", ""}, // a log's public facts: any key of the log
	{"GET", "/v1/proof/inclusion?seq=0&size=1", trail.ScopeRead},
	{"GET", "/v1/proof/consistency?from=1&to=1", trail.ScopeRead},
	{"GET", "/v1/log", ""},
}

func TestScopesAndKeys(t *testing.T) {
	e := newEnv(t, server.Options{})
	id := e.appendN("acme-append", 1).Events[0].ID
	revoked, ki, err := e.db.CreateKey(context.Background(), testAdmin, "acme", "old", trail.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.RevokeKey(context.Background(), testAdmin, ki.ID); err != nil {
		t.Fatal(err)
	}
	e.keys["revoked"] = revoked
	body := []byte(ev("a", "user.login"))
	for _, ep := range endpoints {
		path := strings.Replace(ep.path, "ID", id, 1)
		for _, key := range []string{"", "revoked", "trail_0123456789abcdef_" + strings.Repeat("0", 48), "not-a-key"} {
			e.fails(401, "unauthorized", "", ep.method, path, key, "application/json", body)
		}
		for key, scope := range map[string]trail.Scope{"acme-append": trail.ScopeAppend, "acme-read": trail.ScopeRead} {
			if ep.scope == "" || scope == ep.scope {
				e.ok(map[string]int{"GET": 200, "POST": 201}[ep.method], ep.method, path, key, "application/json", body, nil)
			} else {
				e.fails(403, "forbidden", "", ep.method, path, key, "application/json", body)
			}
		}
		e.ok(map[string]int{"GET": 200, "POST": 201}[ep.method], ep.method, path, "acme-admin", "application/json", body, nil)
	}
	req, _ := http.NewRequest("GET", e.url+"/v1/log", nil)
	req.Header.Set("Authorization", "bearer  "+e.keys["acme-read"])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /v1/log with a lower-case bearer scheme = %v, %v; want 200", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	for _, h := range []string{"Basic " + e.keys["acme-read"], e.keys["acme-read"], "Bearer"} {
		req.Header.Set("Authorization", h)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
			t.Errorf("GET /v1/log with Authorization %.12q… = %v, %v; want 401", h, resp.Status, err)
		} else {
			resp.Body.Close()
		}
	}
	r := e.do("GET", "/v1/log", "", "", nil)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		e.ok(200, "GET", p, "", "", nil, nil)
	}
	logs := e.logs.String()
	for _, name := range []string{"acme-append", "acme-read", "acme-admin"} {
		if !strings.Contains(logs, e.ids[name]) {
			t.Errorf("access log does not name key %s (%s)", name, e.ids[name])
		}
	}
}

// TestClosedStore checks that a store that cannot answer gives 503, never
// a 2xx.
func TestClosedStore(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.appendN("acme-append", 1)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.fails(503, "unavailable", "", "POST", "/v1/events", "acme-append", "application/json", []byte(ev("a", "user.login")))
	e.fails(503, "unavailable", "", "GET", "/v1/events", "acme-read", "", nil)
	e.fails(503, "unavailable", "", "GET", "/readyz", "", "", nil)
	e.ok(200, "GET", "/healthz", "", "", nil, nil)
}

// TestAppendHalfClosed: a client that sends its whole request and then
// closes its side of the connection (which ends the request's context)
// still gets the append's true outcome: stored, 201, not a 503 saying
// nothing was stored.
func TestAppendHalfClosed(t *testing.T) {
	e := newEnv(t, server.Options{})
	body := ev("a", "x.halfclose")
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		e.keys["acme-append"], len(body), body)
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	l, _ := e.db.Log(context.Background(), "acme")
	stored := l.Size() == e.start["acme"]+1
	if resp.StatusCode != http.StatusCreated || !stored {
		t.Errorf("half-closed append = %s %s, stored %v; want 201 and stored", resp.Status, b, stored)
	}
}
