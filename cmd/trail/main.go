// Command trail appends to, searches, exports and verifies Trail audit logs
// kept in a local data directory.
//
// Run "trail --help" for the commands, and "trail help <command>" for each
// one. Exit status is 0 on success, 1 when something failed (including a
// verification that found the log altered), and 2 when the command line was
// wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/eventid"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt kills trail at once
	}()
	e := osEnv()
	err := (&Main{env: e}).Run(ctx, os.Args[1:])
	stop()
	os.Exit(report(e.stderr, err))
}

// env is what a command may touch of the outside world, so that commands run
// in tests without a terminal or os.Exit.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// Whether each stream is a terminal, and the widths of the stdout and
	// stderr terminals (0 when not a terminal or unknown).
	stdinTTY, stdoutTTY, stderrTTY bool
	width, errWidth                int
	getenv                         func(string) string
	now                            func() time.Time
}

func osEnv() *env {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now}
	e.stdinTTY = term.IsTerminal(int(os.Stdin.Fd()))
	e.stdoutTTY = term.IsTerminal(int(os.Stdout.Fd()))
	e.stderrTTY = term.IsTerminal(int(os.Stderr.Fd()))
	if e.stdoutTTY {
		e.width, _, _ = term.GetSize(int(os.Stdout.Fd()))
	}
	if e.stderrTTY {
		e.errWidth, _, _ = term.GetSize(int(os.Stderr.Fd()))
	}
	return e
}

// command is one subcommand. Run parses args (the arguments after the
// command's name) and does the work; it returns flag.ErrHelp for --help, a
// *usageError when args are wrong, and any other error when the work failed.
// Usage returns the command's help text.
type command interface {
	Run(ctx context.Context, args []string) error
	Usage() string
}

// commands lists the subcommands in the order "trail --help" shows them.
var commands = []struct {
	name, summary string
	new           func(*env, dbFlags) command
}{
	{"init", "create a data directory, or add a log to one", func(e *env, d dbFlags) command { return &initCommand{env: e, db: d} }},
	{"append", "append events: NDJSON on stdin, or one event from flags", func(e *env, d dbFlags) command { return &appendCommand{env: e, db: d} }},
	{"search", "find events, newest first", func(e *env, d dbFlags) command { return &searchCommand{env: e, db: d} }},
	{"get", "show one event and prove that it is in the log", func(e *env, d dbFlags) command { return &getCommand{env: e, db: d} }},
	{"checkpoint", "print the log's latest signed checkpoint", func(e *env, d dbFlags) command { return &checkpointCommand{env: e, db: d} }},
	{"verify", "check the whole log against its signed checkpoints", func(e *env, d dbFlags) command { return &verifyCommand{env: e, db: d} }},
	{"reindex", "rebuild the log's search indexes and counts from its events", func(e *env, d dbFlags) command { return &reindexCommand{env: e, db: d} }},
	{"export", "write matching events as NDJSON or CSV", func(e *env, d dbFlags) command { return &exportCommand{env: e, db: d} }},
	{"copy", "copy whole logs to another store, verifying them (resumable)", func(e *env, d dbFlags) command { return &copyCommand{env: e, db: d} }},
	{"serve", "run the HTTP API", func(e *env, d dbFlags) command { return &serveCommand{env: e, db: d} }},
	{"keys", "create, list and revoke API keys for trail serve", func(e *env, d dbFlags) command { return &keysCommand{env: e, db: d} }},
	{"tail", "follow new events on a server (-f)", func(e *env, d dbFlags) command { return &tailCommand{env: e, db: d} }},
	{"logs", "list the logs of the data directory", func(e *env, d dbFlags) command { return &logsCommand{env: e, db: d} }},
	{"migrate", "bring a store's schema up to this version of trail", func(e *env, d dbFlags) command { return &migrateCommand{env: e, db: d} }},
	{"rekey", "seal a PostgreSQL store's keys under a new master key", func(e *env, d dbFlags) command { return &rekeyCommand{env: e, db: d} }},
	{"witness", "run a tlog-witness that cosigns logs' consistent checkpoints", func(e *env, d dbFlags) command { return &witnessCommand{env: e, db: d} }},
	{"demo", "fill a demo log with sample events, search and verify it", func(e *env, d dbFlags) command { return &demoCommand{env: e, db: d} }},
}

// Main is the trail program: global flags, then a subcommand.
type Main struct {
	env *env
}

// Run runs the command line args (without the program name). Errors from a
// subcommand come back as a *commandError naming it.
func (m *Main) Run(ctx context.Context, args []string) error {
	var global dbFlags
	fs := flag.NewFlagSet("trail", flag.ContinueOnError)
	global.register(fs, dbFlags{
		data: envOr(m.env, "TRAIL_DATA", "./trail-data"), log: envOr(m.env, "TRAIL_LOG", "default"),
		store: envOr(m.env, "TRAIL_STORE", ""), dataEnv: m.env.getenv("TRAIL_DATA") != "",
		server: envOr(m.env, "TRAIL_SERVER", ""), key: envOr(m.env, "TRAIL_KEY", ""),
		masterKeyFile: envOr(m.env, "TRAIL_MASTER_KEY_FILE", ""),
	})
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(m.env.stdout, m.Usage())
			return nil
		}
		return &usageError{msg: err.Error()}
	}
	fs.Visit(func(f *flag.Flag) { global.logGiven = global.logGiven || f.Name == "log" })
	global.stderr = m.env.stderr
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(m.env.stderr, m.Usage())
		return &usageError{}
	}
	name, args := args[0], args[1:]
	if name == "help" {
		return m.help(args, global)
	}
	cmd := m.command(name, global)
	if cmd == nil {
		return &usageError{msg: fmt.Sprintf("unknown command %q", name)}
	}
	out := &checkedWriter{w: m.env.stdout}
	m.env.stdout = out
	err := cmd.Run(ctx, args)
	if err == nil && out.err != nil {
		// The work is done, but what it printed did not arrive.
		err = fmt.Errorf("writing to stdout: %w", out.err)
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(m.env.stdout, cmd.Usage())
		return nil
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		return &commandError{cmd: name, err: err}
	}
	return nil
}

// checkedWriter is a writer that remembers its first error, for a
// command that does not check each of its writes.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// Sync syncs the writer under it, if it can be.
func (c *checkedWriter) Sync() error {
	if f, ok := c.w.(interface{ Sync() error }); ok {
		return f.Sync()
	}
	return nil
}

func (m *Main) command(name string, global dbFlags) command {
	for _, c := range commands {
		if c.name == name {
			return c.new(m.env, global)
		}
	}
	return nil
}

// help runs "trail help [command]".
func (m *Main) help(args []string, global dbFlags) error {
	switch len(args) {
	case 0:
		fmt.Fprint(m.env.stdout, m.Usage())
		return nil
	case 1:
		if args[0] == "help" {
			fmt.Fprint(m.env.stdout, "Usage: trail help [COMMAND]\n\nHelp prints the help of COMMAND, or without one, the list of commands.\n")
			return nil
		}
		cmd := m.command(args[0], global)
		if cmd == nil {
			return &usageError{msg: fmt.Sprintf("unknown command %q", args[0])}
		}
		fmt.Fprint(m.env.stdout, cmd.Usage())
		return nil
	}
	return &commandError{cmd: "help", err: &usageError{msg: "too many arguments"}}
}

// Usage returns the help text of the trail program.
func (m *Main) Usage() string {
	var b strings.Builder
	b.WriteString(`Trail keeps tamper-evident audit logs: every event is a leaf of a Merkle tree
whose signed checkpoints let anyone prove that no event was altered, removed
or inserted afterwards.

Usage:
  trail [--data DIR | --store URL] [--log NAME] <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-11s %s\n", "help", "show the help of a command")
	b.WriteString(`
Global flags (each command takes them too):
  --data DIR   data directory (default ./trail-data, or $TRAIL_DATA)
  --store URL  the store instead, by URL: sqlite:DIR is --data DIR,
               postgres://USER@HOST/DATABASE a PostgreSQL database
               (or $TRAIL_STORE)
  --master-key-file FILE
               the master key that seals a PostgreSQL store's signing
               keys; writing to one needs it (or $TRAIL_MASTER_KEY_FILE)
  --log NAME   log to use (default "default", or $TRAIL_LOG)
  --server URL work with a Trail server instead: append, search, get,
               checkpoint, export, verify, logs and tail (or $TRAIL_SERVER)
  --key KEY    the API key for --server; it picks the log (or $TRAIL_KEY)

Example:
  trail init
  trail append --actor alice --action user.login --target user:alice --ip 192.0.2.7
  trail append < events.ndjson
  trail search --action 'user.*' --since 24h
  trail checkpoint > checkpoint.txt
  trail verify --against checkpoint.txt

Run 'trail help <command>' for the flags and examples of a command.
`)
	return b.String()
}

func envOr(e *env, key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

// usageError is a mistake in how trail was called. It exits with status 2
// and a hint to read the help. An empty msg means the help was printed
// already.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// commandError is an error from the subcommand cmd.
type commandError struct {
	cmd string
	err error
}

func (e *commandError) Error() string { return e.cmd + ": " + e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// report prints err to w and returns the exit status: 0 for nil, 2 for a
// usage error, 1 otherwise. A *trail.VerifyError reads "verification
// FAILED: seq N: problem".
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	prefix, hint := "trail: ", "trail --help"
	var ce *commandError
	if errors.As(err, &ce) {
		prefix, hint = "trail "+ce.cmd+": ", "trail help "+ce.cmd
		err = ce.err
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintf(w, "%s%s\nRun '%s' for usage.\n", prefix, ue.msg, hint)
		}
		return 2
	}
	var ve *trail.VerifyError
	if errors.As(err, &ve) {
		fmt.Fprintf(w, "verification FAILED: %s\n", ve)
		return 1
	}
	fmt.Fprintf(w, "%s%s\n", prefix, err)
	return 1
}

// dbFlags are the flags that pick a store (a data directory) and a log, or
// a server and the API key that picks a log on it.
type dbFlags struct {
	data, log   string
	store       string // --store, or $TRAIL_STORE; "" for none
	server, key string
	// masterKeyFile is --master-key-file, or $TRAIL_MASTER_KEY_FILE: the
	// master key of a postgres store.
	masterKeyFile string
	// logGiven says that --log was on the command line (before the
	// command or after it), rather than taken from $TRAIL_LOG or the
	// default.
	logGiven bool
	// dataSet and storeSet say that --data and --store were on the
	// command line (before the command or after it); dataEnv that
	// $TRAIL_DATA is set.
	dataSet, storeSet, dataEnv bool
	// stderr is where a client of --server says that it retries.
	stderr io.Writer
}

// register adds the flags to fs, with the values of def (the global
// flags) as defaults.
func (d *dbFlags) register(fs *flag.FlagSet, def dbFlags) {
	d.registerStore(fs, def)
	fs.Var(&setFlag{&d.log, &d.logGiven}, "log", "the `NAME` of the log ($TRAIL_LOG); with --server, the key's log, which it checks")
	fs.StringVar(&d.server, "server", def.server, "work with the Trail server at `URL` instead of a data directory\n(append, search, get, checkpoint, export, verify, logs and tail; $TRAIL_SERVER)")
	fs.StringVar(&d.key, "key", def.key, "the API `KEY` for --server; it picks the log ($TRAIL_KEY)")
	// Help shows the defaults, which come from the environment: never
	// the store's password (registerStore), nor the API key.
	if def.key != "" {
		fs.Lookup("key").DefValue = "xxxxx"
	}
	if u, err := url.Parse(def.server); err == nil {
		if _, ok := u.User.Password(); ok {
			fs.Lookup("server").DefValue = u.Redacted()
		}
	}
}

// registerStore adds the flags that pick a store, for the commands that
// work on a whole store (serve, migrate, rekey) rather than on one log of
// a store or a server.
func (d *dbFlags) registerStore(fs *flag.FlagSet, def dbFlags) {
	*d = def
	fs.Var(&setFlag{&d.data, &d.dataSet}, "data", "the data directory `DIR`, holding the database and the signing keys ($TRAIL_DATA)")
	fs.Var(&setFlag{&d.store, &d.storeSet}, "store", "the store, by `URL`, instead of --data: sqlite:DIR is the data directory DIR,\npostgres://USER@HOST/DATABASE a PostgreSQL database ($TRAIL_STORE)")
	fs.StringVar(&d.masterKeyFile, "master-key-file", def.masterKeyFile, "the master key `FILE` that seals a PostgreSQL store's signing keys, needed to write to one\n($TRAIL_MASTER_KEY_FILE; trail init creates it)")
	if def.store != "" {
		shown := "a URL that does not parse"
		if u, err := trail.ParseStoreURL(def.store); err == nil {
			shown = u.Display()
		}
		fs.Lookup("store").DefValue = shown
	}
}

// client returns a client of --server, or nil when there is none.
func (d dbFlags) client() (*client.Client, error) {
	return d.clientWith(client.Options{})
}

// clientWith is client, with opts.
func (d dbFlags) clientWith(opts client.Options) (*client.Client, error) {
	if d.server == "" {
		return nil, nil
	}
	if d.key == "" {
		return nil, usagef("--server needs an API key: --key or $TRAIL_KEY")
	}
	if opts.Retry == nil && d.stderr != nil {
		// A server that does not answer costs minutes of retries: say so.
		opts.Retry = func(err error, wait time.Duration) {
			fmt.Fprintf(d.stderr, "trail: %v; trying again in %v\n", err, wait.Round(10*time.Millisecond))
		}
	}
	c, err := client.New(d.server, d.key, opts)
	if err != nil {
		return nil, usagef("--server: %v", err)
	}
	if d.logGiven {
		// The key picks the log: a --log that names another is a
		// mistake, not a wish to read that one.
		info, err := c.Log(context.Background())
		if err != nil {
			return nil, err
		}
		if info.Name != "" && info.Name != d.log {
			return nil, usagef("--log %s: the key given reaches the log %q of %s, and no other", d.log, info.Name, d.server)
		}
	}
	return c, nil
}

// setFlag is a string flag that records whether the command line set it.
type setFlag struct {
	v   *string
	set *bool
}

func (f *setFlag) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}

func (f *setFlag) Set(s string) error {
	*f.v, *f.set = s, true
	return nil
}

// storeURL returns the store that --store or --data names; the command
// line goes before the environment, and the environment before the
// default, ./trail-data. --data DIR is --store sqlite:DIR: given both, at
// the same level, they must name the same directory. A store URL this
// build cannot open is a usage error.
func (d *dbFlags) storeURL() (trail.StoreURL, error) {
	switch {
	case d.storeSet && d.dataSet:
		return sameStore("--store", d.store, "--data", d.data)
	case d.storeSet:
		return parseStore("--store", d.store)
	case d.dataSet && d.data == "":
		return trail.StoreURL{}, usagef("--data: empty; give the data directory")
	case d.dataSet:
		return trail.StoreURL{Scheme: "sqlite", Dir: d.data}, nil
	case d.store != "" && d.dataEnv:
		return sameStore("$TRAIL_STORE", d.store, "$TRAIL_DATA", d.data)
	case d.store != "":
		return parseStore("$TRAIL_STORE", d.store)
	}
	return trail.StoreURL{Scheme: "sqlite", Dir: d.data}, nil
}

func parseStore(flag, s string) (trail.StoreURL, error) {
	u, err := trail.ParseStoreURL(s)
	if err != nil {
		return u, usagef("%s: %v", flag, err)
	}
	return u, nil
}

// sameStore returns the store of the URL s, given as storeFlag, if the
// data directory dir, given as dataFlag, is the same store.
func sameStore(storeFlag, s, dataFlag, dir string) (trail.StoreURL, error) {
	u, err := parseStore(storeFlag, s)
	if err != nil {
		return u, err
	}
	if u.Scheme != "sqlite" || !samePath(u.Dir, dir) {
		shown := s // as written
		if u.Scheme != "sqlite" {
			shown = u.Display() // without its password
		}
		return u, usagef("%s %s and %s %s name different stores: give one of them", storeFlag, shown, dataFlag, dir)
	}
	return u, nil
}

// samePath reports whether the paths a and b name the same directory, as
// written (not following links).
func samePath(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}

// resolve sets d.data to what messages call the store the flags name (a
// data directory, or a URL without its password), and returns that
// store's URL.
func (d *dbFlags) resolve() (string, error) {
	u, err := d.storeURL()
	if err != nil {
		return "", err
	}
	d.data = u.Display()
	return u.String(), nil
}

// withMasterKey returns opts with the master key of --master-key-file,
// read when the store needs one: a postgres store opened for writing.
// Without the flag, opening such a store fails saying to give it.
func (d *dbFlags) withMasterKey(url string, opts trail.Options) (trail.Options, error) {
	u, err := trail.ParseStoreURL(url)
	if err != nil || u.Scheme == "sqlite" || opts.ReadOnly || opts.MasterKey != nil || d.masterKeyFile == "" {
		return opts, nil
	}
	key, err := trail.LoadMasterKey(d.masterKeyFile)
	if err != nil {
		return opts, fmt.Errorf("--master-key-file: %w", err)
	}
	opts.MasterKey = key
	return opts, nil
}

// openStore opens the store the flags name; see storeURL.
func (d *dbFlags) openStore(ctx context.Context, opts trail.Options) (*trail.DB, error) {
	url, err := d.resolve()
	if err != nil {
		return nil, err
	}
	if opts, err = d.withMasterKey(url, opts); err != nil {
		return nil, err
	}
	return trail.OpenStore(ctx, url, opts)
}

// openOrInit opens the store the flags name, creating it first if there is
// none.
func (d *dbFlags) openOrInit(ctx context.Context, opts trail.Options) (db *trail.DB, created bool, err error) {
	url, err := d.resolve()
	if err != nil {
		return nil, false, err
	}
	if opts, err = d.withMasterKey(url, opts); err != nil {
		return nil, false, err
	}
	db, err = trail.OpenStore(ctx, url, opts)
	if errors.Is(err, trail.ErrNotInitialized) {
		db, err = trail.InitStore(ctx, url, opts)
		created = err == nil
	}
	return db, created, err
}

// open opens the store and the log. Read-only opening needs no signing
// key.
func (d *dbFlags) open(ctx context.Context, readOnly bool) (*trail.DB, *trail.Log, error) {
	return d.openFor(ctx, readOnly, "")
}

// openFor is open, except that with an event id given, the log is the one
// of the store that made the id, if one did.
func (d *dbFlags) openFor(ctx context.Context, readOnly bool, id string) (*trail.DB, *trail.Log, error) {
	if err := checkLogName(d.log); err != nil {
		return nil, nil, err
	}
	db, err := d.openStore(ctx, trail.Options{ReadOnly: readOnly})
	if err != nil {
		return nil, nil, err
	}
	if name := logOfID(ctx, db, id); name != "" {
		d.log = name
	}
	l, err := db.Log(ctx, d.log)
	if err == nil {
		return db, l, nil
	}
	if errors.Is(err, trail.ErrNotFound) {
		names, lerr := db.Logs(ctx)
		if lerr == nil {
			err = fmt.Errorf("%s has no log %q (%s)", d.data, d.log, logsHint(names, d.log))
		}
	}
	db.Close()
	return nil, nil, err
}

// storeOnly returns a usage error for a command that works on a store only
// (init, keys, demo, migrate, rekey) when a server is named (--server or
// $TRAIL_SERVER) and no store is: it would otherwise make or change a
// store in ./trail-data, not the server's, which looks like success.
func (d dbFlags) storeOnly(cmd string) error {
	if d.server == "" || d.dataSet || d.dataEnv || d.store != "" {
		return nil
	}
	return usagef("%s works on a store, not on a server (--server or $TRAIL_SERVER): name the store with --data DIR or --store URL; a server's API keys are made with POST /v1/keys", cmd)
}

// checkOutput returns a usage error unless path, the value of the flag
// that names a file to write, may be written: not a name that reads as a
// flag (a value forgotten: --out --json), and not inside the data
// directory the flags name, whose files hold the log (trail.db, the
// signing keys), through any symbolic link.
func (d *dbFlags) checkOutput(flag, path string) error {
	if strings.HasPrefix(path, "-") && path != "-" {
		return usagef("%s %s: reads as a flag, not a file; to write a file of that name, give ./%s", flag, path, path)
	}
	u, err := d.storeURL()
	if err != nil || u.Scheme != "sqlite" || path == "-" {
		return nil
	}
	dir, err := resolvedPath(u.Dir)
	if err != nil {
		return nil
	}
	target, err := resolvedPath(path)
	if err != nil {
		return nil
	}
	if target == dir || strings.HasPrefix(target, dir+string(filepath.Separator)) {
		return usagef("%s %s: that is inside the data directory %s, whose files hold the log and its keys; write it elsewhere", flag, path, u.Dir)
	}
	return nil
}

// resolvedPath is path made absolute with every symbolic link resolved,
// those of the directories above it where it does not exist.
func resolvedPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	parent, err := resolvedPath(filepath.Dir(abs))
	if err != nil || parent == abs {
		return abs, nil
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// logOfID returns the name of the log of db that made the event id id,
// or "" when none did.
func logOfID(ctx context.Context, db *trail.DB, id string) string {
	if id == "" {
		return ""
	}
	names, _ := db.Logs(ctx)
	for _, name := range names {
		if _, err := eventid.Parse(name, id); err == nil {
			return name
		}
	}
	return ""
}

// checkLogName returns a usage error unless name, given with --log, can
// name a log (trail.ValidLogName).
func checkLogName(name string) error {
	if trail.ValidLogName(name) {
		return nil
	}
	return usagef("--log %q is not a log name: 1 to 64 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", name)
}

func logsHint(names []string, want string) string {
	create := "create it with: trail init --log " + want
	if len(names) == 0 {
		return "it has no logs; " + create
	}
	return "its logs: " + strings.Join(names, ", ") + "; pick one with --log, or " + create
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may follow positional arguments ("trail get ID --json"); after
// "--" everything is positional. --help gives flag.ErrHelp, any other
// mistake a *usageError.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs parses args with fs and rejects positional arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// usage renders a command's help: synopsis, description, flags and
// examples.
func usage(fs *flag.FlagSet, synopsis, description, examples string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", synopsis, strings.TrimSpace(description))
	b.WriteString("\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		b.WriteString("\n        ")
		b.WriteString(strings.ReplaceAll(text, "\n", "\n        "))
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" {
			fmt.Fprintf(&b, " (default %s)", d)
		}
		b.WriteByte('\n')
	})
	fmt.Fprintf(&b, "\nExample:\n%s\n", strings.Trim(examples, "\n"))
	return b.String()
}
