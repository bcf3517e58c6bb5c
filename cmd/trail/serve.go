package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/policy"
)

// serveCommand runs the HTTP API.
type serveCommand struct {
	env      *env
	db       dbFlags
	addr     string
	maxBody  int64
	shutdown time.Duration
	demo     bool
	tlsCert  string
	tlsKey   string
	rate     float64
	burst    int
	metrics  string
	migrate  bool
	// policy is the witness policy file; publicTiles serves checkpoints
	// and hash tiles without a key.
	policy          string
	witnessInterval time.Duration
	publicTiles     bool
}

// defaultWitnessInterval is --witness-interval's default.
const defaultWitnessInterval = 200 * time.Millisecond

func (c *serveCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.db.registerStore(fs, c.db)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen on `HOST:PORT` (port 0 picks a free one)")
	fs.Int64Var(&c.maxBody, "max-body", 1<<20, "largest request body in `BYTES`")
	fs.Float64Var(&c.rate, "rate-limit", 2000, "requests per second (`N`) each API key may make, sustained; more get 429 with Retry-After; 0 turns the limit off")
	fs.IntVar(&c.burst, "rate-burst", 0, "requests (`N`) a key may make at once before --rate-limit applies (default twice --rate-limit)")
	fs.StringVar(&c.metrics, "metrics-addr", "", "serve /metrics on `HOST:PORT` (plain HTTP) instead of on --addr, away from the tenants")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with the certificate chain in PEM `FILE` (needs --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key in PEM `FILE` of --tls-cert")
	fs.BoolVar(&c.demo, "demo", false, "create a \"demo\" log of sample events if there is none, and a read key and an append key for it; print them")
	fs.BoolVar(&c.migrate, "migrate", false, "apply the schema migrations a PostgreSQL store lacks before serving (safe when several servers start at once; see trail migrate)")
	fs.StringVar(&c.policy, "witness-policy", "", "witness the logs' checkpoints under the C2SP tlog-policy in `FILE` (log, witness NAME VKEY URL, group, quorum lines): submit them to its witnesses and serve the newest that meets it")
	fs.DurationVar(&c.witnessInterval, "witness-interval", defaultWitnessInterval, "submit each log's newest checkpoint to the witnesses at most once every `DURATION` (with --witness-policy); each submission covers every commit since the last")
	fs.BoolVar(&c.publicTiles, "public-tiles", false, "serve each log's checkpoint and hash tiles without a key under /tlog/LOG/ (entry bundles still need a read key)")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long (`DURATION`) requests in flight may take to finish")
	return fs
}

func (c *serveCommand) Usage() string {
	return usage(c.flagSet(), "trail serve [--data DIR] [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE] [--demo]", `
Serve runs Trail's HTTP API and web viewer on the data directory, which
"trail init" or "trail keys create" makes (or --demo, below). Every /v1
request needs an API key ("Authorization: Bearer KEY"), made with "trail
keys create"; a key reaches only its own log. The viewer at / (events, one
event with its proof checked in the browser, an overview) signs in with a
read key.

  POST /v1/events                       append one event, {"events": [...]}, or NDJSON
                                        (Content-Type: application/json or
                                        application/x-ndjson)
  GET  /v1/events                       search, newest first
  GET  /v1/events/{id}                  an event with its inclusion proof and checkpoint
  GET  /v1/checkpoint                   the latest signed checkpoint; with
                                        --witness-policy the newest cosigned
                                        one that meets it
  GET  /v1/proof/inclusion?seq=&size=   inclusion proof
  GET  /v1/proof/consistency?from=&to=  consistency proof
  GET  /v1/log                          origin, verifier key and tree size
  GET  /v1/stats, /v1/actions           counts for charts, the actions seen
  GET  /v1/export, /v1/tail             NDJSON or CSV export, live events (SSE)
  GET  /v1/tlog/checkpoint, /v1/tlog/tile/...
                                        the log in the C2SP tlog-tiles layout:
                                        hash tiles, and entry bundles (read key)
  GET  /tlog/LOG/checkpoint, /tlog/LOG/tile/...
                                        the same under the log's name; without
                                        a key with --public-tiles (entry
                                        bundles still need a read key)
  GET  /v1/witness-policy               the witness policy (--witness-policy)
  GET  /healthz, /readyz                liveness and readiness
  GET  /metrics                         Prometheus metrics (no key; it names
                                        every log: see --metrics-addr)

It prints the address it listens on, then one access log line per request
on stderr (JSON unless stderr is a terminal). SIGTERM or SIGINT stops it
gracefully: it stops accepting, lets requests in flight finish, commits and
exits 0. An event acknowledged with a 2xx status is durable.

With --store postgres://USER@HOST/DATABASE any number of servers, on any
machines, serve the same logs from one PostgreSQL database: each takes
appends and reads for every log, and sees the others' events, API keys and
revocations within a second or two. Each needs --master-key-file (the file
"trail init --store" made); --migrate applies schema migrations at start.

With --witness-policy FILE it has each log's checkpoints cosigned by
witnesses (C2SP tlog-witness): after commits it submits the newest
checkpoint to every witness of the policy, with a consistency proof from
the one that witness cosigned last, and stores it once the cosignatures
meet the policy's quorum. /v1/checkpoint, /v1/tlog/checkpoint and event
proofs then serve the newest checkpoint that meets the policy, with its
cosignatures (header Trail-Witnessed: met, or unmet while none does);
?witnessed=false the newest signed one. The policy covers every log, or,
if it has log lines, the logs whose verifier keys they list: a log of the
store they do not list makes serve refuse to start. Appends never wait
for witnesses: while one is down or refuses, witnessing lags (metric
trail_witness_lag_events), /readyz answers 200 "degraded: ..." saying
why, and it catches up by itself.

With --tls-cert and --tls-key it serves HTTPS (TLS 1.2 or later) instead
of HTTP.

With --demo it first creates a log named "demo" holding 3,000 sample events
(as "trail demo" makes) unless the log exists, then a new read key and a
new append key for it, and prints both keys with the URL and example
requests. The sample events are recorded as received over the past day.`, `
  trail serve --demo
  trail serve --addr :8443 --tls-cert /etc/trail/cert.pem --tls-key /etc/trail/key.pem
  trail serve --data /var/lib/trail --addr 127.0.0.1:8080
  trail serve --witness-policy /etc/trail/witness-policy.txt --public-tiles
  KEY=$(trail keys create --log demo --scope append | tail -n 1)
  curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"actor":{"id":"alice"},"action":"user.login"}' http://127.0.0.1:8080/v1/events`)
}

// listen listens on addr, the value of flag: HOST:PORT. An empty addr,
// which net.Listen takes as every interface, is refused: a server
// listens on every interface only when told so (:PORT).
func listen(flag, addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usagef("%s %q: want HOST:PORT, such as 127.0.0.1:8080 (:8080 listens on every interface)", flag, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return ln, nil
}

func (c *serveCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if c.maxBody <= 0 {
		return usagef("--max-body must be positive")
	}
	if c.shutdown < 0 {
		return usagef("--shutdown-timeout %v: must not be negative", c.shutdown)
	}
	if c.rate < 0 || c.burst < 0 {
		return usagef("--rate-limit and --rate-burst must not be negative")
	}
	rateLimit := c.rate
	if rateLimit == 0 {
		rateLimit = -1 // server.Options: negative turns the limit off
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	var certs []tls.Certificate
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("loading the TLS certificate: %w", err)
		}
		certs = []tls.Certificate{cert}
	}
	var h slog.Handler = slog.NewJSONHandler(c.env.stderr, nil)
	if c.env.stderrTTY {
		h = slog.NewTextHandler(c.env.stderr, nil)
	}
	logger := slog.New(h)

	clock := &replayClock{}
	// The server holds the directory's lock: one server per directory,
	// with trail append, keys and the readers beside it. It never
	// creates a directory unless --demo asks for one: a directory gone
	// (a typo, or removed by mistake) must not turn into an empty one
	// whose keys all fail.
	dbOpts := trail.Options{Now: clock.now, Lock: true, Logger: logger, Migrate: c.migrate, WitnessInterval: c.witnessInterval}
	if c.witnessInterval < 10*time.Millisecond || c.witnessInterval > time.Hour {
		return usagef("--witness-interval %v: want from 10ms to 1h", c.witnessInterval)
	}
	if c.policy == "" && c.witnessInterval != defaultWitnessInterval {
		return usagef("--witness-interval goes with --witness-policy, which names the witnesses")
	}
	if c.policy != "" {
		text, err := readFlagFile(c.policy, maxSmallFile)
		if err != nil {
			return usagef("--witness-policy: %v", err)
		}
		if dbOpts.WitnessPolicy, err = policy.Parse(text); err != nil {
			return usagef("--witness-policy %s: %v", c.policy, err)
		}
	}
	var db *trail.DB
	var err error
	if c.demo {
		db, _, err = c.db.openOrInit(ctx, dbOpts)
	} else {
		db, err = c.openWaiting(ctx, dbOpts, logger)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	var demo *demoKeys
	if c.demo {
		if demo, err = setUpDemo(ctx, db, c.env.now(), clock); err != nil {
			return err
		}
	}
	// A log that cannot be served is named now, not at its first request.
	failed, err := db.CheckKeys(ctx)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		logger.Error("log not served: its requests fail until this is repaired", "log", name, "err", failed[name])
	}
	ln, err := listen("--addr", c.addr)
	if err != nil {
		return err
	}
	opts := server.Options{Logger: logger, MaxBodyBytes: c.maxBody, RateLimit: rateLimit, RateBurst: c.burst, PublicTiles: c.publicTiles}
	var msrv *http.Server
	var mln net.Listener
	if c.metrics != "" {
		opts.Metrics = prometheus.NewRegistry()
		if mln, err = listen("--metrics-addr", c.metrics); err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{}))
		msrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
		}
	}
	stopStreams := make(chan struct{})
	opts.Stop = stopStreams
	srv := &http.Server{
		Handler:           server.New(db, opts),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(func() { close(stopStreams) })
	url := "http://" + ln.Addr().String()
	if certs != nil {
		srv.TLSConfig = &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
		url = "https://" + ln.Addr().String()
	}
	if demo != nil {
		demo.print(c.env.stdout, url, c.db.data)
	}
	if mln != nil {
		fmt.Fprintf(c.env.stdout, "Metrics are on http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(c.env.stdout, "Trail is listening on %s (data %s)\n", url, c.db.data)
	if f, ok := c.env.stdout.(interface{ Sync() error }); ok {
		f.Sync()
	}

	served, mserved := make(chan error, 1), make(chan error, 1)
	go func() {
		if certs != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	if msrv != nil {
		go func() { mserved <- msrv.Serve(mln) }()
	}
	select {
	case err := <-served:
		return err
	case err := <-mserved:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", c.shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdown)
	defer cancel()
	if msrv != nil {
		msrv.Close()
	}
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// demoEventCount is how many events serve --demo puts in a new demo log.
const demoEventCount = 3000

// demoKeys is what serve --demo made.
type demoKeys struct {
	created    int // events appended, 0 if the log existed
	size       int64
	read, appd string
	vkey       string // the log's verifier key
}

// setUpDemo creates the demo log, filled with sample events, unless it
// exists, and a new read key and append key for it.
func setUpDemo(ctx context.Context, db *trail.DB, now time.Time, clock *replayClock) (*demoKeys, error) {
	d := &demoKeys{}
	l, err := db.Log(ctx, "demo")
	if errors.Is(err, trail.ErrNotFound) {
		if l, err = db.CreateLog(ctx, "demo", ""); err != nil {
			return nil, err
		}
		if _, _, err := fillDemo(ctx, l, demoEventCount, now, clock); err != nil {
			return nil, err
		}
		d.created = demoEventCount
	} else if err != nil {
		return nil, err
	}
	d.size, d.vkey = l.Size(), l.VerifierKey()
	if d.read, _, err = db.CreateKey(ctx, cliCaller(), "demo", "demo-read", trail.ScopeRead); err != nil {
		return nil, err
	}
	if d.appd, _, err = db.CreateKey(ctx, cliCaller(), "demo", "demo-append", trail.ScopeAppend); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *demoKeys) print(w io.Writer, url, data string) {
	if d.created > 0 {
		fmt.Fprintf(w, "Created log \"demo\" in %s with %d sample events.\n", data, d.created)
	} else {
		fmt.Fprintf(w, "Log \"demo\" in %s holds %d events.\n", data, d.size)
	}
	fmt.Fprintf(w, "Read key (search, get, proofs):  %s\n", d.read)
	fmt.Fprintf(w, "Append key (POST /v1/events):    %s\n", d.appd)
	fmt.Fprintf(w, "These keys are shown only now.\n")
	fmt.Fprintf(w, "Verifier key of the log (what proofs and checkpoints are checked with): %s\n", d.vkey)
	url = dialURL(url)
	fmt.Fprintf(w, "Open the viewer at %s/ and sign in with the read key. Or try:\n", url)
	fmt.Fprintf(w, "  curl -H 'Authorization: Bearer %s' '%s/v1/events?action=user.login.failed&ip=203.0.113.7&limit=3'\n", d.read, url)
	fmt.Fprintf(w, "  curl -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"actor\":{\"id\":\"alice\"},\"action\":\"user.login\"}' %s/v1/events\n", d.appd, url)
}

// dialURL returns the URL of a server listening on url's address as a
// client on this machine reaches it: a wildcard address (":8080" listens
// on [::]:8080) becomes 127.0.0.1, which browsers connect to (some refuse
// 0.0.0.0 and [::]).
func dialURL(u string) string {
	scheme, hostport, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return u
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return scheme + "://" + net.JoinHostPort("127.0.0.1", port)
	}
	return u
}

// storeWait is how long serve waits at start for a database server it
// cannot reach (PostgreSQL restarting, or starting beside it), trying
// again, before it gives up.
var storeWait = time.Minute

// openWaiting opens the store, trying again for up to storeWait while its
// database server cannot be reached, and saying so on stderr.
func (c *serveCommand) openWaiting(ctx context.Context, opts trail.Options, logger *slog.Logger) (*trail.DB, error) {
	deadline := time.Now().Add(storeWait)
	pause := 250 * time.Millisecond
	for {
		db, err := c.db.openStore(ctx, opts)
		if err == nil || !errors.Is(err, store.ErrUnreachable) || time.Now().Add(pause).After(deadline) {
			return db, err
		}
		logger.Warn("the store cannot be reached; trying again", "err", err, "retry_in", pause.String(), "gives_up_in", time.Until(deadline).Round(time.Second).String())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}
