package httpaudit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/httpaudit"
)

// What apps hand the middleware: a local log, or a client's batcher.
var (
	_ httpaudit.Appender = (*trail.Log)(nil)
	_ httpaudit.Appender = (*client.Batcher)(nil)
)

func newLog(t *testing.T) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "app", "test.example/app")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// adminAPI is a small admin API: the actor comes from a header the app's
// own authentication would have checked.
func adminAPI(l *trail.Log, opts httpaudit.Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /admin/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-User") {
		case "":
			http.Error(w, "sign in", http.StatusUnauthorized)
		case "mallory":
			http.Error(w, "not an admin", http.StatusForbidden)
		default:
			if r.PathValue("id") == "404" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /admin/subscriptions/{sub}/toggle", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "billing is down", http.StatusBadGateway)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	if opts.Actor == nil {
		opts.Actor = func(r *http.Request) event.Actor {
			if u := r.Header.Get("X-User"); u != "" {
				return event.Actor{ID: u, Type: "user"}
			}
			return event.Actor{ID: "anonymous", Type: "anonymous"}
		}
	}
	return httpaudit.Middleware(l, opts)(mux)
}

func do(t *testing.T, srv *httptest.Server, method, path string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// events returns the log's events, oldest first.
func events(t *testing.T, l *trail.Log) []*event.Event {
	t.Helper()
	var out []*event.Event
	for e, err := range l.Events(context.Background(), api.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestMiddlewareRecordsRequests(t *testing.T) {
	l := newLog(t)
	srv := httptest.NewServer(adminAPI(l, httpaudit.Options{}))
	defer srv.Close()

	tests := []struct {
		method, path string
		header       map[string]string
		wantStatus   int
		wantActor    string
		wantAction   string
		wantOutcome  event.Outcome
		wantTarget   event.Target
	}{
		{"DELETE", "/admin/users/42", map[string]string{"X-User": "ana", "X-Request-Id": "req-1"}, 204, "ana", "admin.users.delete", event.Success, event.Target{Type: "users", ID: "42"}},
		{"DELETE", "/admin/users/7", map[string]string{"X-User": "mallory"}, 403, "mallory", "admin.users.delete", event.Denied, event.Target{Type: "users", ID: "7"}},
		{"DELETE", "/admin/users/7", nil, 401, "anonymous", "admin.users.delete", event.Denied, event.Target{Type: "users", ID: "7"}},
		{"DELETE", "/admin/users/404", map[string]string{"X-User": "ana"}, 404, "ana", "admin.users.delete", event.Failure, event.Target{Type: "users", ID: "404"}},
		{"POST", "/admin/subscriptions/sub_9/toggle", map[string]string{"X-User": "ana"}, 502, "ana", "admin.subscriptions.toggle.post", event.Errored, event.Target{Type: "subscriptions", ID: "sub_9"}},
	}
	for _, tt := range tests {
		if got := do(t, srv, tt.method, tt.path, tt.header); got != tt.wantStatus {
			t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, got, tt.wantStatus)
		}
	}
	// A request that matches no route records nothing.
	do(t, srv, "GET", "/nowhere", nil)

	got := events(t, l)
	if len(got) != len(tests) {
		t.Fatalf("log holds %d events, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		e := got[i]
		if e.Actor.ID != tt.wantActor || e.Action != tt.wantAction || e.Outcome != tt.wantOutcome {
			t.Errorf("%s %s: event actor %q action %q outcome %q, want %q %q %q", tt.method, tt.path, e.Actor.ID, e.Action, e.Outcome, tt.wantActor, tt.wantAction, tt.wantOutcome)
		}
		if len(e.Targets) != 1 || e.Targets[0] != tt.wantTarget {
			t.Errorf("%s %s: targets %+v, want [%+v]", tt.method, tt.path, e.Targets, tt.wantTarget)
		}
		if e.Source.IP != "127.0.0.1" || !strings.HasPrefix(e.Source.UserAgent, "Go-http-client") {
			t.Errorf("%s %s: source %+v, want 127.0.0.1 and Go's user agent", tt.method, tt.path, e.Source)
		}
		if (e.Outcome == event.Success) != (e.Reason == "") {
			t.Errorf("%s %s: outcome %q with reason %q", tt.method, tt.path, e.Outcome, e.Reason)
		}
		var md struct {
			Method string `json:"method"`
			Path   string `json:"path"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(e.Metadata, &md); err != nil || md.Method != tt.method || md.Path != tt.path || md.Status != tt.wantStatus {
			t.Errorf("%s %s: metadata %s (%v)", tt.method, tt.path, e.Metadata, err)
		}
	}
	if got[0].RequestID != "req-1" {
		t.Errorf("request id = %q, want req-1", got[0].RequestID)
	}
	if got[1].Reason != "HTTP 403 Forbidden" {
		t.Errorf("reason = %q, want HTTP 403 Forbidden", got[1].Reason)
	}
}

func TestMiddlewareTrustsOnlyConfiguredProxies(t *testing.T) {
	xff := map[string]string{"X-User": "ana", "X-Forwarded-For": "198.51.100.9, 203.0.113.5, 10.0.0.2"}
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"no trusted proxies: the peer", nil, "127.0.0.1"},
		{"loopback and 10/8 trusted: first untrusted hop from the right", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}, "203.0.113.5"},
		{"only loopback trusted: a spoofable hop is not believed further", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "10.0.0.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLog(t)
			srv := httptest.NewServer(adminAPI(l, httpaudit.Options{TrustedProxies: tt.trusted}))
			defer srv.Close()
			do(t, srv, "DELETE", "/admin/users/1", xff)
			got := events(t, l)
			if len(got) != 1 || got[0].Source.IP != tt.want {
				t.Fatalf("source ip = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestMiddlewareHooksAndSkip(t *testing.T) {
	l := newLog(t)
	srv := httptest.NewServer(adminAPI(l, httpaudit.Options{
		Action: func(r *http.Request) string { return "user.delete" },
		Targets: func(r *http.Request) []event.Target {
			return []event.Target{{Type: "user", ID: "u_" + r.PathValue("id")}}
		},
		Skip: func(r *http.Request) bool { return r.Pattern == "GET /healthz" },
	}))
	defer srv.Close()
	do(t, srv, "GET", "/healthz", nil)
	do(t, srv, "DELETE", "/admin/users/5", map[string]string{"X-User": "ana", "User-Agent": "bad\xffagent"})
	got := events(t, l)
	if len(got) != 1 {
		t.Fatalf("log holds %d events, want 1 (healthz skipped)", len(got))
	}
	if e := got[0]; e.Action != "user.delete" || e.Targets[0].ID != "u_5" || e.Source.UserAgent != "bad\uFFFDagent" {
		t.Errorf("event = action %q targets %+v ua %q", e.Action, e.Targets, e.Source.UserAgent)
	}
}

type failing struct{}

func (failing) Append(context.Context, event.Event) (api.Receipt, error) {
	return api.Receipt{}, errors.New("store unavailable")
}

// A failed append is logged and does not change the response.
func TestMiddlewareLogsAppendFailures(t *testing.T) {
	var logs strings.Builder
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/users/{id}/reset", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") })
	h := httpaudit.Middleware(failing{}, httpaudit.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})(mux)
	srv := httptest.NewServer(h)
	defer srv.Close()
	if got := do(t, srv, "POST", "/admin/users/3/reset", nil); got != 200 {
		t.Fatalf("status = %d, want 200", got)
	}
	if !strings.Contains(logs.String(), "audit event not recorded") || !strings.Contains(logs.String(), "admin.users.reset.post") {
		t.Errorf("logs = %q, want the failure with the action", logs.String())
	}
}

func TestActionFromPattern(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{"DELETE /admin/users/{id}", "admin.users.delete"},
		{"POST /admin/subscriptions/{id}/toggle", "admin.subscriptions.toggle.post"},
		{"GET /", "get"},
		{"/files/{path...}", "files.request"},
		{"PUT example.com/api/v2/Org-Settings", "api.v2.org_settings.put"},
		{"GET /2fa/reset", "x2fa.reset.get"},
		{"POST /trail/keys", "http.trail.keys.post"},
		{"GET /trail", "http.trail.get"},
		{"GET /trailer/x", "trailer.x.get"},
		{"GET /" + strings.Repeat("abcdefghi/", 20) + "end", strings.Repeat("abcdefghi.", 12) + "get"},
		{"GET /" + strings.Repeat("x", 100) + "/" + strings.Repeat("y", 100), strings.Repeat("x", 64) + ".get"},
	} {
		if got := httpaudit.ActionFromPattern(tt.pattern); got != tt.want {
			t.Errorf("ActionFromPattern(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

func TestOutcomeFromStatus(t *testing.T) {
	for status, want := range map[int]event.Outcome{200: event.Success, 204: event.Success, 302: event.Success, 400: event.Failure, 401: event.Denied, 403: event.Denied, 404: event.Failure, 409: event.Failure, 500: event.Errored, 503: event.Errored} {
		if got := httpaudit.OutcomeFromStatus(status); got != want {
			t.Errorf("OutcomeFromStatus(%d) = %q, want %q", status, got, want)
		}
	}
}

// requireUser answers 401 itself when no user is named, and passes the
// mux a copy of the request carrying the user, as authentication
// middleware does.
func requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := r.Header.Get("X-User")
		if u == "" {
			http.Error(w, "sign in", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

type userKey struct{}

// Handlers between the middleware and the mux: with Options.Routes, every
// routed request is recorded, with its route's action and targets, those
// answered before the mux too; without, the middleware says once why it
// records nothing.
func TestMiddlewareRoutesBehindHandlers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /admin/users/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /files/{path...}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.PathValue("path")) })
	actor := func(r *http.Request) event.Actor {
		return event.Actor{ID: r.Header.Get("X-User"), Type: event.ActorUser}
	}

	t.Run("with Routes", func(t *testing.T) {
		l := newLog(t)
		srv := httptest.NewServer(httpaudit.Middleware(l, httpaudit.Options{Actor: actor, Routes: mux})(
			requireUser(http.TimeoutHandler(mux, 5*time.Second, "slow"))))
		defer srv.Close()
		ana := map[string]string{"X-User": "ana"}
		for _, c := range []struct {
			path   string
			header map[string]string
			status int
		}{
			{"/admin/users/42", ana, 204},
			{"/admin/users/7", nil, 401},
			{"/files/a%2Fb/c%20d", ana, 200},
			{"/nowhere", ana, 404},
		} {
			method := "DELETE"
			if strings.HasPrefix(c.path, "/files/") || c.path == "/nowhere" {
				method = "GET"
			}
			if got := do(t, srv, method, c.path, c.header); got != c.status {
				t.Fatalf("%s %s = %d, want %d", method, c.path, got, c.status)
			}
		}
		got := events(t, l)
		want := []struct {
			actor, action string
			outcome       event.Outcome
			target        event.Target
		}{
			{"ana", "admin.users.delete", event.Success, event.Target{Type: "users", ID: "42"}},
			{"anonymous", "admin.users.delete", event.Denied, event.Target{Type: "users", ID: "7"}},
			{"ana", "files.get", event.Success, event.Target{Type: "files", ID: "a/b/c d"}},
		}
		if len(got) != len(want) {
			t.Fatalf("log holds %d events, want %d (the unrouted request left out)", len(got), len(want))
		}
		for i, w := range want {
			e := got[i]
			if e.Actor.ID != w.actor || e.Action != w.action || e.Outcome != w.outcome || len(e.Targets) != 1 || e.Targets[0] != w.target {
				t.Errorf("event %d = %s %s %s %+v, want %s %s %s %+v", i, e.Actor.ID, e.Action, e.Outcome, e.Targets, w.actor, w.action, w.outcome, w.target)
			}
		}
	})

	t.Run("without Routes", func(t *testing.T) {
		l := newLog(t)
		var logs strings.Builder
		srv := httptest.NewServer(httpaudit.Middleware(l, httpaudit.Options{Actor: actor, Logger: slog.New(slog.NewTextHandler(&logs, nil))})(requireUser(mux)))
		defer srv.Close()
		do(t, srv, "DELETE", "/admin/users/1", map[string]string{"X-User": "ana"})
		do(t, srv, "DELETE", "/admin/users/2", map[string]string{"X-User": "ana"})
		if n := len(events(t, l)); n != 0 {
			t.Errorf("log holds %d events, want none: the mux routed a copy of the request", n)
		}
		if n := strings.Count(logs.String(), "set Options.Routes"); n != 1 {
			t.Errorf("logs = %q, want one warning naming Options.Routes", logs.String())
		}
	})
}

// A handler that panics is recorded as an error, and the panic goes on to
// the server.
func TestMiddlewareRecordsPanics(t *testing.T) {
	l := newLog(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/wipe", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	h := httpaudit.Middleware(l, httpaudit.Options{})(mux)
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/admin/wipe", nil))
	}()
	if recovered != "boom" {
		t.Errorf("recovered %v, want the handler's panic", recovered)
	}
	got := events(t, l)
	if len(got) != 1 || got[0].Action != "admin.wipe.post" || got[0].Outcome != event.Errored || !strings.Contains(got[0].Reason, "panicked") {
		t.Fatalf("events = %+v, want one admin.wipe.post error saying the handler panicked", got)
	}
}

// Handlers stream and switch protocols under the middleware as without
// it, and what they answer is what is recorded: an informational status
// is not the answer, a hijacked connection is 101.
func TestMiddlewareStreamsAndHijacks(t *testing.T) {
	l := newLog(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "a")
		f.Flush()
	})
	mux.HandleFunc("GET /hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /upgrade", func(w http.ResponseWriter, r *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "hijacking unsupported", http.StatusInternalServerError)
			return
		}
		c, rw, err := hj.Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: example\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
	})
	srv := httptest.NewServer(httpaudit.Middleware(l, httpaudit.Options{})(mux))
	defer srv.Close()
	for path, want := range map[string]int{"/stream": 200, "/hints": 500} {
		if got := do(t, srv, "GET", path, nil); got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/upgrade", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "example")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("GET /upgrade = %d, want 101", resp.StatusCode)
	}
	// The client has the 101 before the handler returns.
	for deadline := time.Now().Add(5 * time.Second); l.Size() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	statuses := map[string]int{}
	for _, e := range events(t, l) {
		var md struct {
			Status int `json:"status"`
		}
		json.Unmarshal(e.Metadata, &md)
		statuses[e.Action] = md.Status
	}
	if want := map[string]int{"stream.get": 200, "hints.get": 500, "upgrade.get": 101}; !maps.Equal(statuses, want) {
		t.Errorf("recorded statuses %v, want %v", statuses, want)
	}
}

// Addresses forwarded with a port are read without it.
func TestMiddlewareForwardedPort(t *testing.T) {
	for hop, want := range map[string]string{"203.0.113.5:4711": "203.0.113.5", "[2001:db8::1]:4711": "2001:db8::1"} {
		l := newLog(t)
		srv := httptest.NewServer(adminAPI(l, httpaudit.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
		do(t, srv, "DELETE", "/admin/users/1", map[string]string{"X-User": "ana", "X-Forwarded-For": hop})
		srv.Close()
		if got := events(t, l); len(got) != 1 || got[0].Source.IP != want {
			t.Errorf("X-Forwarded-For %s: events %v, want one from %s", hop, got, want)
		}
	}
}
