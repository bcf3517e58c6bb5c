package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// keysCommand creates, lists and revokes the API keys of trail serve.
type keysCommand struct {
	env    *env
	db     dbFlags
	scopes string
	name   string
	json   bool
}

func (c *keysCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.StringVar(&c.scopes, "scope", "", "create: comma-separated `SCOPES`: append, read, admin (admin implies the others)")
	fs.StringVar(&c.name, "name", "", "create: a `LABEL` for the key, shown by list")
	fs.BoolVar(&c.json, "json", false, "list: print NDJSON, one key per line")
	return fs
}

func (c *keysCommand) Usage() string {
	return usage(c.flagSet(), "trail keys create --log NAME --scope SCOPES [--name LABEL]\n       trail keys list [--json]\n       trail keys revoke ID", `
Keys manages the API keys that trail serve accepts. A key belongs to one log
and can only touch that log; its scopes say what it may do there: append
events, read them (search, get, checkpoints, proofs), or admin (both).

create makes a key, creating the data directory and the log if they do not
exist yet, and prints
the key alone on the last line of stdout. It is shown only this once: Trail
stores only its SHA-256 hash. list shows every key of the data directory
(never the secrets), revoke makes a key fail from now on.`, `
  trail keys create --log billing --scope append --name billing-service
  KEY=$(trail keys create --log billing --scope read | tail -n 1)
  trail keys list
  trail keys revoke 3f2a9c0d1e4b5a69`)
}

func (c *keysCommand) Run(ctx context.Context, args []string) error {
	fs := c.flagSet()
	pos, err := parseFlags(fs, args)
	if err != nil {
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
			if name != "data" && !slices.Contains(allowed, name) {
				return usagef("keys %s does not take --%s", sub, name)
			}
		}
		return nil
	}
	switch sub {
	case "create":
		if err := only("log", "scope", "name"); err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		return c.create(ctx)
	case "list":
		if err := only("json"); err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		return c.list(ctx)
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
	if !trail.ValidLogName(c.db.log) {
		return usagef("--log %q: a log name is 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", c.db.log)
	}
	if c.scopes == "" {
		return usagef("--scope is required: append, read or admin")
	}
	var scopes []trail.Scope
	for _, s := range strings.Split(c.scopes, ",") {
		sc, err := trail.ParseScope(strings.TrimSpace(s))
		if err != nil {
			return usagef("--scope: %v", err)
		}
		scopes = append(scopes, sc)
	}
	db, err := openOrInit(ctx, c.db.data)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, ki, err := db.CreateKey(ctx, c.db.log, c.name, scopes...)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "Created key %s for log %q with scopes %s.\n", ki.ID, ki.Log, joinScopes(ki.Scopes))
	fmt.Fprintln(c.env.stdout, "It is shown only now; Trail keeps only its hash. The key:")
	fmt.Fprintln(c.env.stdout, secret)
	return nil
}

func joinScopes(ss []trail.Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

func (c *keysCommand) list(ctx context.Context) error {
	db, err := trail.Open(ctx, c.db.data, trail.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := db.Keys(ctx)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.env.stdout)
	if c.json {
		for _, k := range keys {
			b, err := json.Marshal(k)
			if err != nil {
				return err
			}
			w.Write(append(b, '\n'))
		}
		return w.Flush()
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
	db, err := trail.Open(ctx, c.db.data, trail.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.RevokeKey(ctx, id); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "Revoked key %s.\n", id)
	return nil
}

// openOrInit opens the data directory for writing, creating it first if it
// holds no Trail database.
func openOrInit(ctx context.Context, dir string) (*trail.DB, error) {
	return openOrInitWith(ctx, dir, trail.Options{})
}

func openOrInitWith(ctx context.Context, dir string, opts trail.Options) (*trail.DB, error) {
	if _, err := os.Stat(filepath.Join(dir, trail.DatabaseFile)); errors.Is(err, fs.ErrNotExist) {
		return trail.Init(ctx, dir, opts)
	}
	return trail.Open(ctx, dir, opts)
}
