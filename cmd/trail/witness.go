package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"k8s.io/klog/v2"

	"github.com/trail-audit/trail/internal/witnessd"
)

// witnessCommand runs a tlog-witness for Trail logs (or any signed-note
// log), or with init creates its key.
type witnessCommand struct {
	env      *env
	db       dbFlags
	data     string
	name     string
	addr     string
	logs     multiFlag
	shutdown time.Duration
}

// defaultWitnessData is the witness's data directory when --data is not
// given: not a Trail data directory, as a witness is someone else's.
const defaultWitnessData = "./trail-witness"

func (c *witnessCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	def := defaultWitnessData
	if c.db.dataSet {
		def = c.db.data // trail --data DIR witness
	}
	fs.StringVar(&c.data, "data", def, "the witness's data directory `DIR`: its key (witness.key, mode 0600) and its state (witness.db)")
	fs.StringVar(&c.name, "name", "", "init: the witness's `NAME`, the name of its key (e.g. witness.example.com/w1)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7380", "listen on `HOST:PORT` (port 0 picks a free one)")
	fs.Var(&c.logs, "log", "cosign the log whose checkpoint verifier key is `VKEY` (trail init and trail logs print it); repeat for more logs")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 10*time.Second, "on SIGTERM or SIGINT, how long (`DURATION`) submissions in flight may take to finish")
	return fs
}

func (c *witnessCommand) Usage() string {
	return usage(c.flagSet(), "trail witness init --data DIR --name NAME\n       trail witness [serve] --data DIR [--addr HOST:PORT] --log VKEY [--log VKEY ...]", `
Witness runs a transparency log witness: an independent party that cosigns
a log's checkpoints, each only after checking that it is consistent with
the last checkpoint of that log it cosigned. A log that shows one history
to some and another to others, or that is rolled back and regrown, gets no
cosignature for it, so clients that require cosignatures (a tlog-policy
quorum, as trail serve --witness-policy and trail verify take) notice.

init creates the witness's Ed25519 key (cosignature/v1, C2SP
tlog-cosignature) and its empty state in the data directory, which it
makes if needed; it never replaces a key. It prints the policy line that
names the witness and, alone on the last line, its verifier key.

Without init (or with serve) it serves the C2SP tlog-witness protocol for
the logs of --log, each given by its checkpoint verifier key ("trail init"
and "trail logs" print a log's), whose name is the log's checkpoint origin:

  POST /add-checkpoint   old size, consistency proof, signed checkpoint;
                         200 with the cosignature, 409 with the witness's
                         size (text/x.tlog.size) when the old size is not
                         the last size it cosigned, 422 for a fork or a bad
                         proof, 404 for another log, 403 for a checkpoint
                         not signed by the log's key, 400 for a malformed
                         request

The latest cosigned checkpoint of each log is kept in the data directory's
SQLite database (WAL, synchronous=FULL), written before the answer, so the
witness keeps refusing a fork after a crash or a restart. Back up the key
and the database together. It listens on loopback unless --addr says
otherwise, prints the URL it listens on, a line per submission on stderr,
and stops on SIGTERM or SIGINT.`, `
  trail witness init --data /var/lib/trail-witness --name witness.example.com/w1
  trail witness --data /var/lib/trail-witness --addr 127.0.0.1:7380 --log "$ACME_VKEY" --log "$BILLING_VKEY"
  trail witness serve --data /var/lib/trail-witness --addr 0.0.0.0:7380 --log "$ACME_VKEY"`)
}

func (c *witnessCommand) Run(ctx context.Context, args []string) error {
	fs := c.flagSet()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	sub := "serve"
	if len(pos) > 0 {
		sub, pos = pos[0], pos[1:]
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := func(allowed ...string) error {
		for name := range set {
			if !slices.Contains(allowed, name) {
				return usagef("witness %s does not take --%s", sub, name)
			}
		}
		return nil
	}
	switch sub {
	case "init":
		if err := only("data", "name"); err != nil {
			return err
		}
		return c.init()
	case "serve":
		if err := only("data", "addr", "log", "shutdown-timeout"); err != nil {
			return err
		}
		if c.shutdown < 0 {
			return usagef("--shutdown-timeout %v: must not be negative", c.shutdown)
		}
		return c.serve(ctx)
	}
	return usagef("unknown subcommand %q: init or serve", sub)
}

func (c *witnessCommand) init() error {
	if c.name == "" {
		return usagef("witness init needs --name NAME, the witness's name (e.g. witness.example.com/w1)")
	}
	if !witnessd.ValidName(c.name) {
		return usagef("--name %q: a witness's name has no spaces, no '+' and no control characters (e.g. witness.example.com/w1)", c.name)
	}
	vkey, err := witnessd.Init(c.data, c.name)
	if err != nil {
		return err
	}
	out := c.env.stdout
	fmt.Fprintf(out, "Created the witness %s in %s (its key: %s, mode 0600; keep it secret, and back it up with %s).\n", c.name, c.data, witnessd.KeyFile, witnessd.DBFile)
	fmt.Fprintf(out, "Run it with: trail witness --data %s --addr HOST:PORT --log LOG_VKEY\n", c.data)
	fmt.Fprintf(out, "For a log's tlog-policy file, with the URL at which the log reaches it:\n")
	fmt.Fprintf(out, "  witness %s %s http://HOST:PORT\n", c.name, vkey)
	fmt.Fprintf(out, "verifier key:\n%s\n", vkey)
	return nil
}

func (c *witnessCommand) serve(ctx context.Context) error {
	if len(c.logs) == 0 {
		return usagef("witness needs --log VKEY, the checkpoint verifier key of a log to witness (repeat for more)")
	}
	if _, err := witnessd.ParseLogKeys(c.logs); err != nil {
		return usagef("--log: %v", err)
	}
	var h slog.Handler = slog.NewJSONHandler(c.env.stderr, nil)
	if c.env.stderrTTY {
		h = slog.NewTextHandler(c.env.stderr, nil)
	}
	logger := slog.New(h)
	// The witness core logs a fork it refuses through klog: send that to
	// the same JSON lines.
	klog.SetSlogLogger(logger.With("component", "transparency-dev/witness"))
	w, err := witnessd.Open(ctx, witnessd.Config{Dir: c.data, Logs: c.logs, Logger: logger})
	if err != nil {
		return err
	}
	defer w.Close()
	ln, err := listen("--addr", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           w.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	url := "http://" + ln.Addr().String()
	out := c.env.stdout
	fmt.Fprintf(out, "Witness %s, verifier key:\n  %s\n", w.Name(), w.VerifierKey())
	fmt.Fprintf(out, "Cosigning the logs:\n")
	for _, o := range w.Origins() {
		fmt.Fprintf(out, "  %s\n", o)
	}
	fmt.Fprintf(out, "Policy line: witness %s %s %s\n", w.Name(), w.VerifierKey(), url)
	fmt.Fprintf(out, "Trail witness is listening on %s (data %s)\n", url, c.data)
	if f, ok := out.(interface{ Sync() error }); ok {
		f.Sync()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", c.shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdown)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
