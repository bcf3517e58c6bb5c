// Package httpaudit records an audit event for every request that reaches
// the routes of a net/http handler: who made it (a hook reads the actor from
// the request), what it did (the route pattern, e.g. "DELETE
// /admin/users/{id}" becomes the action admin.users.delete), to what (the
// path wildcards, e.g. a user with id 42), from where (the client address,
// through trusted proxies only, and the user agent) and whether it worked
// (from the status code: 2xx and 3xx success, 401 and 403 denied, other 4xx
// failure, 5xx error).
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("DELETE /admin/users/{id}", deleteUser)
//	handler := httpaudit.Middleware(log, httpaudit.Options{Actor: actorFromSession})(mux)
//
// With handlers between the middleware and the mux, such as the app's
// authentication, name the mux in Options.Routes, so that requests those
// handlers answer or pass on as copies are recorded too:
//
//	handler := httpaudit.Middleware(log, httpaudit.Options{Actor: actorFromSession, Routes: mux})(requireSession(mux))
//
// A handler that panics is recorded as an error (status 500 unless it had
// answered), and the panic goes on to the server.
package httpaudit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// Appender stores one event. *trail.Log implements it (durable when Append
// returns), and so does *client.Batcher, which sends events to a Trail
// server in the background.
type Appender interface {
	Append(ctx context.Context, e event.Event) (api.Receipt, error)
}

// Options tune the middleware. The zero value records every routed request
// with an anonymous actor.
type Options struct {
	// Actor says who made the request, e.g. from the session the app's
	// own authentication middleware put in the context. Default: an
	// anonymous actor.
	Actor func(r *http.Request) event.Actor
	// Action names what the request did. Default: the route pattern's
	// literal path segments and the method, lower-cased and dotted:
	// "DELETE /admin/users/{id}" gives "admin.users.delete".
	Action func(r *http.Request) string
	// Targets lists the entities the request acted on. Default: one target
	// per path wildcard, typed by the literal segment before it:
	// "/admin/users/{id}" gives {type: "users", id: <the value>}.
	Targets func(r *http.Request) []event.Target
	// Skip leaves a request out, e.g. health checks. Requests that matched
	// no route (empty r.Pattern) are always left out.
	Skip func(r *http.Request) bool
	// Routes is the ServeMux that routes the requests, for when handlers
	// sit between the middleware and it: authentication that answers 401
	// itself, or handlers that pass the mux a changed copy of the request
	// (r.WithContext, http.TimeoutHandler). The mux records a request's
	// route on the copy it is given, which the middleware never sees, so
	// without Routes such requests look unrouted and are left out. With
	// it, the middleware asks Routes for the request's pattern and path
	// values before the handler runs, so requests answered before they
	// reach the mux are recorded too. Give the mux the request reaches
	// with its path unchanged (not one behind http.StripPrefix).
	Routes interface {
		Handler(r *http.Request) (h http.Handler, pattern string)
	}
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	// The client address is the right-most forwarded address that is not
	// itself a trusted proxy. Default: none, so the peer address is used.
	TrustedProxies []netip.Prefix
	// RequestIDHeader names the header carrying the request id. Default
	// "X-Request-Id".
	RequestIDHeader string
	// Logger receives append failures (the response is not changed:
	// it has been decided by then). Default: slog.Default().
	Logger *slog.Logger
}

// Middleware returns a middleware that appends one event per routed request
// to a, after the wrapped handler has run. The append happens before
// ServeHTTP returns, so an embedded log adds its commit latency to the
// request; a batching remote appender does not.
func Middleware(a Appender, opts Options) func(http.Handler) http.Handler {
	if opts.RequestIDHeader == "" {
		opts.RequestIDHeader = "X-Request-Id"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var warned atomic.Bool
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			var route *http.Request // r as routed, its pattern and path values set
			if opts.Routes != nil {
				route = routed(opts.Routes, r)
			}
			rec := &recorder{ResponseWriter: w}
			record := func(status int, panicked bool) {
				if route == nil && r.Pattern != "" {
					// ServeMux sets r.Pattern and the path values on the
					// request it is given.
					route = r
				}
				if route == nil {
					if status != http.StatusNotFound && status != http.StatusMethodNotAllowed && warned.CompareAndSwap(false, true) {
						opts.Logger.WarnContext(r.Context(), "httpaudit: a request was answered without a route pattern, so it is not recorded; if a handler between the middleware and the ServeMux answers requests or passes the mux a copy of them, set Options.Routes to the mux",
							"method", event.Sanitize(r.Method, 32), "status", status)
					}
					return
				}
				if opts.Skip != nil && opts.Skip(route) {
					return
				}
				e := opts.event(route, status, start)
				if panicked {
					e.Reason = "the handler panicked"
				}
				if _, err := a.Append(context.WithoutCancel(r.Context()), e); err != nil {
					opts.Logger.ErrorContext(r.Context(), "audit event not recorded", "action", e.Action, "status", status, "err", err)
				}
			}
			defer func() {
				if p := recover(); p != nil {
					// The request failed: recorded as an error unless the
					// handler had answered otherwise, then the panic goes on
					// to the server.
					status := rec.status
					if status == 0 {
						status = http.StatusInternalServerError
					}
					record(status, true)
					panic(p)
				}
			}()
			next.ServeHTTP(rec, r)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			record(status, false)
		})
	}
}

// routed returns a copy of r with the pattern and path values of the route
// mux gives it, or nil if none matches.
func routed(mux interface {
	Handler(*http.Request) (http.Handler, string)
}, r *http.Request) *http.Request {
	_, pattern := mux.Handler(r)
	if pattern == "" {
		return nil
	}
	c := r.Clone(r.Context())
	c.Pattern = pattern
	_, path, ok := strings.Cut(pattern, " ")
	if !ok {
		path = pattern
	}
	if i := strings.IndexByte(path, '/'); i > 0 {
		path = path[i:] // drop a host
	}
	// The pattern matched r's path, segment by segment, as ServeMux
	// matches: on the escaped path, each segment unescaped.
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	for i, p := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		name, ok := strings.CutPrefix(p, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		if i >= len(segs) {
			break
		}
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			if v, err := url.PathUnescape(strings.Join(segs[i:], "/")); err == nil {
				c.SetPathValue(rest, v)
			}
			break
		}
		if name == "$" {
			continue
		}
		if v, err := url.PathUnescape(segs[i]); err == nil {
			c.SetPathValue(name, v)
		}
	}
	return c
}

func (o *Options) event(r *http.Request, status int, start time.Time) event.Event {
	e := event.Event{
		Time:      start,
		Actor:     event.Actor{ID: "anonymous", Type: "anonymous"},
		Action:    ActionFromPattern(r.Pattern),
		Outcome:   OutcomeFromStatus(status),
		Source:    event.Source{IP: o.clientIP(r), UserAgent: event.Sanitize(r.UserAgent(), 1024)},
		RequestID: event.Sanitize(r.Header.Get(o.RequestIDHeader), 256),
		Metadata:  metadata(r, status, time.Since(start)),
	}
	if e.Outcome != event.Success {
		e.Reason = fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	}
	if o.Actor != nil {
		e.Actor = o.Actor(r)
		if e.Actor.ID == "" {
			// A caller the hook cannot name, such as one refused for
			// having no session: still recorded, as anonymous.
			e.Actor.ID = "anonymous"
			if e.Actor.Type == "" {
				e.Actor.Type = "anonymous"
			}
		}
	}
	if o.Action != nil {
		e.Action = o.Action(r)
	}
	if o.Targets != nil {
		e.Targets = o.Targets(r)
	} else {
		e.Targets = TargetsFromPattern(r)
	}
	return e
}

func metadata(r *http.Request, status int, d time.Duration) []byte {
	b, _ := json.Marshal(map[string]any{
		"duration_ms": d.Milliseconds(),
		"method":      event.Sanitize(r.Method, 32),
		"path":        event.Sanitize(r.URL.Path, 2048),
		"status":      status,
	})
	return b
}

// ActionFromPattern turns a ServeMux pattern into an action: the literal
// path segments, then the method, lower-cased, with characters outside
// [a-z0-9_] replaced by '_', joined by dots. "DELETE /admin/users/{id}"
// gives "admin.users.delete"; a pattern without a method ends in ".request".
// An action that would begin with "trail." (Trail's own records) begins
// with "http.trail." instead, and one longer than an action may be (128
// bytes) keeps its first words and the method.
func ActionFromPattern(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	if i := strings.IndexByte(path, '/'); i > 0 {
		path = path[i:] // drop a host
	}
	var words []string
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || strings.HasPrefix(seg, "{") {
			continue
		}
		words = append(words, word(seg))
	}
	if method == "" {
		method = "request"
	}
	if len(words) > 0 && words[0] == "trail" {
		words = append([]string{"http"}, words...)
	}
	last := word(method)
	n := len(last)
	for i, w := range words {
		if len(w) > 64 {
			words[i], w = w[:64], w[:64]
		}
		if n+len(w)+1 > maxAction {
			words = words[:i]
			break
		}
		n += len(w) + 1
	}
	if len(last) > 64 {
		last = last[:64]
	}
	return strings.Join(append(words, last), ".")
}

// maxAction is the longest action an event may have (event.Event.Action).
const maxAction = 128

// word lower-cases s and makes it match [a-z][a-z0-9_]*.
func word(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || !('a' <= b[0] && b[0] <= 'z') {
		b = append([]byte("x"), b...)
	}
	return string(b)
}

// TargetsFromPattern returns one target per wildcard of the request's
// route pattern, typed by the literal segment before it.
func TargetsFromPattern(r *http.Request) []event.Target {
	_, path, ok := strings.Cut(r.Pattern, " ")
	if !ok {
		path = r.Pattern
	}
	var ts []event.Target
	prev := ""
	for _, seg := range strings.Split(path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
			if v := r.PathValue(name); v != "" {
				typ := prev
				if typ == "" {
					typ = name
				}
				ts = append(ts, event.Target{Type: event.Sanitize(typ, 64), ID: event.Sanitize(v, 256)})
			}
			continue
		}
		if seg != "" {
			prev = seg
		}
	}
	return ts
}

// OutcomeFromStatus maps an HTTP status to an outcome: 1xx-3xx success,
// 401 and 403 denied, other 4xx failure, 5xx error.
func OutcomeFromStatus(status int) event.Outcome {
	switch {
	case status < 400:
		return event.Success
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return event.Denied
	case status < 500:
		return event.Failure
	}
	return event.Errored
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the
// right-most X-Forwarded-For address that is not a trusted proxy.
func (o *Options) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	peer = peer.Unmap()
	if !o.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := hopAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: believe nothing further left
		}
		a = a.Unmap()
		if !o.trusted(a) {
			return a.String()
		}
	}
	return peer.String()
}

// hopAddr parses one X-Forwarded-For hop: an address, or an address and
// port as some proxies write it ("203.0.113.5:4711", "[2001:db8::1]:4711").
func hopAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil {
		return a, nil
	}
	ap, perr := netip.ParseAddrPort(s)
	if perr != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

func (o *Options) trusted(a netip.Addr) bool {
	for _, p := range o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// recorder remembers the status the handler wrote. It flushes and hijacks
// as the writer under it does, so that streaming and upgrading handlers
// work under the middleware.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	// An informational status (103 Early Hints, say) is not the answer;
	// 101 Switching Protocols is.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker: the handler takes the connection, as
// to switch protocols, which is recorded as status 101 unless it wrote
// another first.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
