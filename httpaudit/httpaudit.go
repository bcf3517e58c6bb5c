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
package httpaudit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
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
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &recorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			// ServeMux sets r.Pattern and the path values on r itself.
			if r.Pattern == "" || opts.Skip != nil && opts.Skip(r) {
				return
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			e := opts.event(r, status, start)
			if _, err := a.Append(context.WithoutCancel(r.Context()), e); err != nil {
				opts.Logger.ErrorContext(r.Context(), "audit event not recorded", "action", e.Action, "status", status, "err", err)
			}
		})
	}
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
	words = append(words, word(method))
	return strings.Join(words, ".")
}

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
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
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

func (o *Options) trusted(a netip.Addr) bool {
	for _, p := range o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// recorder remembers the status the handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
