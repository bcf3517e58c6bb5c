package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
)

// keysCommand creates, lists and revokes the API keys of trail serve.
type keysCommand struct {
	env    *env
	db     dbFlags
	scopes multiFlag
	name   string
	json   bool
	// createLog lets create make a new log in a data directory that
	// holds others.
	createLog bool
}

func (c *keysCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.Var(&c.scopes, "scope", "create: comma-separated `SCOPES`: append, read, admin (admin implies the others); may be repeated")
	fs.StringVar(&c.name, "name", "", "create: a `LABEL` for the key, shown by list")
	fs.BoolVar(&c.createLog, "create-log", false, "create: make the log --log names if the data directory does not hold it yet")
	fs.BoolVar(&c.json, "json", false, "list: print NDJSON, one key per line")
	return fs
}

func (c *keysCommand) Usage() string {
	return usage(c.flagSet(), "trail keys create --log NAME [--create-log] --scope SCOPES [--name LABEL]\n       trail keys list [--log NAME] [--json]\n       trail keys revoke ID", `
Keys manages the API keys that trail serve accepts. A key belongs to one log
and can only touch that log; its scopes say what it may do there: append
events, read them (search, get, export, tail, proofs), or admin (both).
Any key of a log may read the log's public facts: its latest checkpoint,
origin, verifier key and size.

create makes a key for the log --log names and prints the key alone on the
last line of stdout. It is shown only this once: Trail stores only its
SHA-256 hash. In a new data directory it creates the directory and the
log; in one that holds logs already, a name that is not one of them is
refused (a typo would make a new, empty log with its own signing key)
unless --create-log says to create it.

list shows the keys of the data directory (never the secrets): every key,
or with --log the keys of that log. revoke makes a key fail from now on,
ending its open streams within 2 seconds; it takes the key's ID, or the key
itself (a leaked one, say).

Each of them is recorded in the key's log (for list, in each log listed):
trail.key.create, trail.key.revoke and trail.key.list events whose actor is
you, the operating system's user, as "cli:<login>", and whose target is the
key (its id and name, and its scopes in the metadata; never the secret).`, `
  trail keys create --log billing --create-log --scope append --name billing-service
  KEY=$(trail keys create --log billing --scope read | tail -n 1)
  trail keys list --log billing
  trail keys revoke 3f2a9c0d1e4b5a69`)
}

func (c *keysCommand) Run(ctx context.Context, args []string) error {
	fs := c.flagSet()
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := c.db.storeOnly("keys"); err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("missing subcommand: create, list or revoke")
	}
	sub, pos := pos[0], pos[1:]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := func(allowed ...string) error {
		for name := range set {
			// The store's flags go with every subcommand: creating and
			// revoking keys in a PostgreSQL store need its master key.
			if name != "data" && name != "store" && name != "master-key-file" && !slices.Contains(allowed, name) {
				return usagef("keys %s does not take --%s", sub, name)
			}
		}
		return nil
	}
	switch sub {
	case "create":
		if err := only("log", "scope", "name", "create-log"); err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		return c.create(ctx)
	case "list":
		if err := only("json", "log"); err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		// Only a --log on the command line filters: $TRAIL_LOG and
		// the default pick a log for the other commands, but an admin
		// listing keys wants to see them all.
		filter := ""
		if set["log"] || c.db.logGiven {
			if err := checkLogName(c.db.log); err != nil {
				return err
			}
			filter = c.db.log
		}
		return c.list(ctx, filter)
	case "revoke":
		if err := only(); err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("keys revoke takes one key ID")
		}
		return c.revoke(ctx, pos[0])
	}
	return usagef("unknown subcommand %q: want create, list or revoke", sub)
}

func (c *keysCommand) create(ctx context.Context) error {
	if err := checkLogName(c.db.log); err != nil {
		return err
	}
	if len(c.scopes) == 0 {
		return usagef("--scope is required: append, read or admin")
	}
	var scopes []trail.Scope
	for _, s := range strings.Split(c.scopes.String(), ",") {
		sc, err := trail.ParseScope(strings.TrimSpace(s))
		if err != nil {
			return usagef("--scope: %v", err)
		}
		scopes = append(scopes, sc)
	}
	db, _, err := c.db.openOrInit(ctx, trail.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	names, err := db.Logs(ctx)
	if err != nil {
		return err
	}
	if !c.createLog && len(names) > 0 && !slices.Contains(names, c.db.log) {
		return usagef("%s has no log %q; its logs: %s. Pick one with --log, or add --create-log to create log %q with its own signing key",
			c.db.data, c.db.log, strings.Join(names, ", "), c.db.log)
	}
	secret, ki, err := db.CreateKey(ctx, cliCaller(), c.db.log, c.name, scopes...)
	if err != nil {
		return err
	}
	// A log made for the key: its verifier key, as trail init prints it.
	vkey := ""
	if !slices.Contains(names, c.db.log) {
		l, err := db.Log(ctx, c.db.log)
		if err != nil {
			return err
		}
		vkey = l.VerifierKey()
	}
	if vkey != "" {
		fmt.Fprintf(c.env.stdout, "Created log %q. Its verifier key, which checks its checkpoints (give it to auditors; trail logs shows it again):\n  %s\n", c.db.log, vkey)
	}
	fmt.Fprintf(c.env.stdout, "Created key %s for log %q with scopes %s.\n", ki.ID, ki.Log, joinScopes(ki.Scopes))
	fmt.Fprintln(c.env.stdout, "It is shown only now; Trail keeps only its hash. The key:")
	if _, err := fmt.Fprintln(c.env.stdout, secret); err != nil {
		// Nobody got the key: it must not stay valid.
		defer db.Close()
		if rerr := db.RevokeKey(context.WithoutCancel(ctx), cliCaller(), ki.ID); rerr != nil {
			return fmt.Errorf("the new key could not be written to stdout (%v), nor revoked (%v): revoke it with trail keys revoke %s", err, rerr, ki.ID)
		}
		return fmt.Errorf("the new key could not be written to stdout (%v), so it was revoked at once: create another", err)
	}
	return db.Close()
}

func joinScopes(ss []trail.Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// list prints the keys of the log named log, or of every log if log is
// empty. Each log whose keys are listed records it (trail.key.list), so
// the data directory is opened for writing.
func (c *keysCommand) list(ctx context.Context, log string) error {
	db, err := c.db.openStore(ctx, trail.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	names, err := db.Logs(ctx)
	if err != nil {
		return err
	}
	if log != "" {
		if !slices.Contains(names, log) {
			return fmt.Errorf("%s has no log %q (%s)", c.db.data, log, logsHint(names, log))
		}
		names = []string{log}
	}
	var keys []trail.KeyInfo
	by := cliCaller()
	for _, name := range names {
		ks, err := db.ListKeys(ctx, by, name)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	slices.SortStableFunc(keys, func(a, b trail.KeyInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	w := bufio.NewWriter(c.env.stdout)
	if c.json {
		for _, k := range keys {
			b, err := json.Marshal(k.Wire())
			if err != nil {
				return err
			}
			w.Write(append(b, '\n'))
		}
		return w.Flush()
	}
	if len(keys) == 0 && log != "" {
		fmt.Fprintf(c.env.stderr, "log %q of %s has no API keys; create one with: trail keys create --log %s --scope read\n", log, c.db.data, log)
		return nil
	}
	if len(keys) == 0 {
		fmt.Fprintf(c.env.stderr, "%s has no API keys; create one with: trail keys create --log NAME --scope read\n", c.db.data)
		return nil
	}
	t := &table{header: []string{"ID", "LOG", "SCOPES", "NAME", "CREATED", "REVOKED"}}
	for _, k := range keys {
		revoked := ""
		if !k.RevokedAt.IsZero() {
			revoked = k.RevokedAt.Format(time.RFC3339)
		}
		t.add(k.ID, k.Log, joinScopes(k.Scopes), k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
	}
	t.write(w, 0)
	return w.Flush()
}

func (c *keysCommand) revoke(ctx context.Context, id string) error {
	if rest, ok := strings.CutPrefix(id, trail.KeyPrefix); ok {
		// The key itself, given for its id: revoked by that id, and never
		// repeated in the output.
		if kid, _, ok := strings.Cut(rest, "_"); ok {
			id = kid
		}
	}
	db, err := c.db.openStore(ctx, trail.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	// Revoking a revoked key records the attempt (and a revocation whose
	// record failed): the output says it was revoked already.
	var before time.Time
	if k, err := db.Key(ctx, id); err == nil {
		before = k.RevokedAt
	}
	if err := db.RevokeKey(ctx, cliCaller(), id); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if !before.IsZero() {
		fmt.Fprintf(c.env.stdout, "Key %s was already revoked, at %s; this revocation is recorded too.\n", id, before.Local().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(c.env.stdout, "Revoked key %s.\n", id)
	return nil
}

// cliCaller is who runs this command, as the events that record key
// administration (trail.key.*) name them: the operating system's user, as
// the user "cli:<login>".
func cliCaller() trail.Caller {
	login := ""
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	if login == "" {
		login = os.Getenv("USER")
	}
	if login == "" {
		login = "uid-" + strconv.Itoa(os.Getuid())
	}
	return trail.Caller{Actor: event.Actor{ID: "cli:" + event.Sanitize(login, 200), Type: event.ActorUser}}
}
