// Package server is Trail's HTTP API: tenants authenticate with API keys
// (see trail.DB.CreateKey) and each key reaches only its own log.
//
// Routes:
//
//	POST /v1/events                       append (scope append)
//	GET  /v1/events                       search, newest first (scope read)
//	GET  /v1/events/{id}                  one event with its inclusion proof and checkpoint
//	GET  /v1/checkpoint                   latest signed checkpoint, text/plain (any scope)
//	GET  /v1/proof/inclusion?seq=&size=   inclusion proof
//	GET  /v1/proof/consistency?from=&to=  consistency proof
//	GET  /v1/log                          origin, verifier key, tree size (any scope)
//	GET  /v1/tlog/...                     the log in the C2SP tlog-tiles layout (tlog.go)
//	GET  /tlog/{log}/...                  the same under the log's name (witness.go; without a key with PublicTiles)
//	GET  /v1/witness-policy               the witness policy (witness.go)
//	GET  /v1/stats                        counts over time, top actors, actions, failing IPs
//	GET  /v1/actions                      the actions seen, with counts
//	GET  /, /events/{id}, /overview, ...  the viewer (viewer.go), signed in with a read key
//	GET  /healthz, /readyz                liveness and readiness, no key needed
//	GET  /v1/openapi.json                 this API's OpenAPI 3.1 description, no key needed
//	GET  /metrics                         Prometheus metrics (see metrics.go), no key needed
//
// Every /v1 request carries "Authorization: Bearer <key>"; the answers to
// them are not to be cached (Cache-Control: no-store). A log's public facts,
// /v1/log and /v1/checkpoint, are open to every valid key of the log, so
// that an append-only client can pin the verifier key and check its
// receipts. Errors are JSON {"error": {"code", "message", "field"?,
// "index"?}}; see errors.go.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
)

// Options configure the handler. The zero value is a good default.
type Options struct {
	// Logger receives one access log line per request, with the API key's
	// id but never the key itself. Default: discard.
	Logger *slog.Logger
	// Stop, if set, is closed when the server shuts down: open streams
	// (/v1/tail, the viewer's live rows), which would hold a graceful
	// shutdown to its timeout, end then, and their clients reconnect
	// (to another node, or once this one is back) with Last-Event-ID.
	Stop <-chan struct{}
	// MaxBodyBytes bounds a request body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxBatchEvents bounds the events of one POST /v1/events; more get 413.
	// Default 10,000.
	MaxBatchEvents int
	// ReceiptWait is how long an append that asks for receipts
	// (?receipts=wait) waits for a checkpoint meeting the witness policy
	// to cover its events before it answers with the receipts pending.
	// Default 30s.
	ReceiptWait time.Duration
	// NoReadAudit turns off recording each search and get as an event in
	// the reading key's log (see auditRead). Reading is audited by default.
	// Key administration (creating, listing and revoking keys) is always
	// recorded, by the trail package.
	NoReadAudit bool
	// RateLimit is how many requests per second each API key may make,
	// sustained; past it and the burst, requests get 429 with Retry-After.
	// Default 2000 (a busy app's single-event appends fit; beyond that,
	// batch them); negative turns the limit off.
	RateLimit float64
	// RateBurst is how many requests a key may make at once before
	// RateLimit applies. Default twice RateLimit (at least 1).
	RateBurst int
	// Metrics, if set, is a registry made for this server that receives its
	// Prometheus metrics (see metrics.go), and GET /metrics is not served:
	// the caller serves the registry where it likes, such as on another
	// address (trail serve --metrics-addr). Default: a registry of the
	// server's own, served at GET /metrics.
	Metrics *prometheus.Registry
	// PublicTiles serves each log's checkpoint and hash tiles in the
	// tlog-tiles layout without a key, under /tlog/{log}/ (witness.go),
	// for witnesses, monitors and tlog tools. Entry bundles, the events
	// themselves, still need a read key of the log. Off by default.
	PublicTiles bool
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 10000
	}
	if o.ReceiptWait <= 0 {
		o.ReceiptWait = defaultReceiptWait
	}
	if o.RateLimit == 0 {
		o.RateLimit = 2000
	}
	if o.RateBurst <= 0 {
		o.RateBurst = max(1, int(2*o.RateLimit))
	}
}

type server struct {
	db      *trail.DB
	opts    Options
	metrics *metrics
	limiter *keyLimiter // nil when there is no rate limit
	keys    keyCache    // recently authenticated keys
	// sessions are the viewer's signed-in browsers (see session.go).
	sessions sessions
}

// New returns the API handler for db.
func New(db *trail.DB, opts Options) http.Handler {
	opts.defaults()
	s := &server{db: db, opts: opts, metrics: newMetrics(db, opts.Metrics)}
	if opts.RateLimit > 0 {
		s.limiter = newKeyLimiter(opts.RateLimit, opts.RateBurst)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	if opts.Metrics == nil {
		mux.Handle("GET /metrics", s.metrics.handler())
	}
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(api.OpenAPI)
	})
	mux.Handle(appendRoute, s.auth(trail.ScopeAppend, s.appendEvents))
	mux.Handle("GET /v1/events", s.auth(trail.ScopeRead, s.searchEvents))
	mux.Handle("GET /v1/events/{id}", s.auth(trail.ScopeRead, s.getEvent))
	mux.Handle("GET /v1/events/{id}/receipt", s.auth(trail.ScopeRead, s.getReceipt))
	mux.Handle("GET /v1/checkpoint", s.auth(anyScope, s.checkpoint))
	mux.Handle("GET /v1/proof/inclusion", s.auth(trail.ScopeRead, s.inclusionProof))
	mux.Handle("GET /v1/proof/consistency", s.auth(trail.ScopeRead, s.consistencyProof))
	mux.Handle("GET /v1/log", s.auth(anyScope, s.logInfo))
	s.tlogRoutes(mux)
	s.witnessRoutes(mux)
	mux.Handle("GET /v1/export", s.auth(trail.ScopeRead, s.exportEvents))
	mux.Handle("GET /v1/tail", s.auth(trail.ScopeRead, s.tailEvents))
	s.statsRoutes(mux)
	mux.Handle("POST /v1/keys", s.auth(trail.ScopeAdmin, s.createKey))
	mux.Handle("GET /v1/keys", s.auth(trail.ScopeAdmin, s.listKeys))
	mux.Handle("DELETE /v1/keys/{id}", s.auth(trail.ScopeAdmin, s.revokeKey))
	s.viewerRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A route of another method: 405, with the methods it takes.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); m != r.Method && pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: r.Method + " " + r.URL.Path + ": this route takes " + strings.Join(allow, ", ")})
			return
		}
		s.writeError(w, r, errNotFound)
	})
	return s.accessLog(s.wellFormedQuery(mux))
}

// wellFormedQuery refuses a request whose query does not parse, naming
// the parameter: handlers read the query with URL.Query, which drops what
// it cannot parse, so "actor=a;b" would otherwise search without the
// filter and match everything.
func (s *server) wellFormedQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkQuerySyntax(r.URL.RawQuery); err != nil {
			if strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/tlog/") {
				s.writeError(w, r, err)
			} else {
				s.viewerError(w, r, err)
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkQuerySyntax returns a bad-parameter error naming the first
// parameter of the raw query that url.ParseQuery would drop.
func checkQuerySyntax(raw string) error {
	if _, err := url.ParseQuery(raw); err == nil {
		return nil
	}
	for part := range strings.SplitSeq(raw, "&") {
		name, value, _ := strings.Cut(part, "=")
		shown := name
		if n, err := url.QueryUnescape(name); err == nil {
			shown = n
		}
		switch {
		case strings.Contains(part, ";"):
			return badParam(shown, `";" does not separate parameters: use "&", and write a ";" in a value as %3B`)
		case shown == name && strings.Contains(name, "%"):
			if _, err := url.QueryUnescape(name); err != nil {
				return badParam(name, "not valid percent-encoding")
			}
		}
		if _, err := url.QueryUnescape(value); err != nil {
			return badParam(shown, "its value is not valid percent-encoding")
		}
	}
	return badParam("", "the query does not parse")
}

// apiHandler serves a request authenticated by key, on key's log. An error
// it returns becomes the response (see writeError), so it returns errors
// only before it starts the response.
type apiHandler func(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error

// anyScope, given to auth, admits every valid key of the log.
const anyScope trail.Scope = ""

// bySession says whether a request is authenticated by the viewer's
// session rather than a key: a read that carries the session cookie and
// no Authorization header.
func bySession(r *http.Request) bool {
	return r.Header.Get("Authorization") == "" && r.Method == http.MethodGet && hasSessionCookie(r)
}

// auth authenticates the request's bearer key, applies the key's rate
// limit, checks that it grants scope, and runs h on the key's log. Its
// responses, errors included, are marked not to be stored by caches: they
// carry a tenant's events, keys and proofs.
func (s *server) auth(scope trail.Scope, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		w.Header().Set("Cache-Control", "no-store")
		var key trail.KeyInfo
		var err error
		scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		bearer = strings.TrimSpace(bearer)
		switch {
		case bySession(r):
			// The viewer's session stands for its key on reads (the
			// cookie is SameSite=Strict: other sites cannot send it).
			if key, err = s.sessionKey(r); errors.Is(err, errNoSession) {
				err = errNoKey
			}
		case !strings.EqualFold(scheme, "Bearer") || bearer == "":
			err = errNoKey
		default:
			key, err = s.authenticate(ctx, bearer)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
			info.keyID = key.ID
			info.log = key.Log
		}
		if s.limiter != nil {
			if ok, wait := s.limiter.allow(key.ID, time.Now()); !ok {
				w.Header().Set("Retry-After", retryAfter(wait))
				s.writeError(w, r, errRateLimited)
				return
			}
		}
		if scope != anyScope && !key.Allows(scope) {
			denied := &apiError{status: http.StatusForbidden, code: "forbidden", msg: "this key lacks the " + string(scope) + " scope"}
			s.recordDenied(r, key, denied.msg)
			s.writeError(w, r, denied)
			return
		}
		l, err := s.db.Log(ctx, key.Log)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := h(w, r, key, l); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz reports whether the DB works fully (trail.DB.Ready): 503 with
// the reason while it cannot commit or its indexer is failing; 200
// "degraded: …" while a log refuses appends for damage, or appends are
// stored but witnessing fails or lags (witness.go).
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ready(ctx); err != nil {
		s.opts.Logger.WarnContext(ctx, "not ready", "err", err)
		why := err.Error()
		if ue := (*trail.UnavailableError)(nil); errors.As(err, &ue) {
			why = ue.Detail() // "nothing was stored" would puzzle here
		}
		s.writeError(w, r, &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "not ready: " + why})
		return
	}
	if why := append(s.refusedAppends(), s.witnessDegraded()...); len(why) > 0 {
		writeDegraded(w, why)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

// refusedAppends says which logs refused their latest append for damage.
// The server is degraded, not down: the other logs, and the reads of the
// damaged one, are served.
func (s *server) refusedAppends() []string {
	var why []string
	for name, err := range s.db.RefusedAppends() {
		if lde := (*trail.LogDamagedError)(nil); errors.As(err, &lde) {
			why = append(why, fmt.Sprintf("log %s: not served: %s", name, lde.Public()))
			continue
		}
		if ue := (*trail.UnavailableError)(nil); errors.As(err, &ue) {
			why = append(why, ue.Reason) // says the log is not served, and why
			continue
		}
		why = append(why, fmt.Sprintf("log %s: appends refused: %v", name, err))
	}
	slices.Sort(why)
	return why
}

// reqInfo collects what the access log reports beyond the request itself.
type reqInfo struct {
	keyID, log string
	// errCode is the code of an error response (see writeError).
	errCode string
}

type reqInfoKey struct{}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request: method, path (without the query,
// which may hold search terms), status, sizes, duration, the key's id and
// the error code; and counts the request in the metrics. Headers are never
// logged, so neither is the key.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		// Every answer is what its Content-Type says, and over TLS,
		// browsers keep to TLS for this host.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Int64("bytes_in", r.ContentLength),
			slog.Int64("bytes_out", sw.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		}
		if info.keyID != "" {
			attrs = append(attrs, slog.String("key", info.keyID), slog.String("log", info.log))
		}
		if info.errCode != "" {
			attrs = append(attrs, slog.String("error", info.errCode))
		}
		s.metrics.observe(r.Pattern, sw.status, info.errCode, time.Since(start))
		s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}
