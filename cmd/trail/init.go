package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trail-audit/trail"
)

// initCommand creates a data directory and a log, or adds a log to an
// existing data directory.
type initCommand struct {
	env    *env
	db     dbFlags
	origin string
	json   bool
}

func (c *initCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.StringVar(&c.origin, "origin", "", "checkpoint `ORIGIN` line and key name (default <hostname>/trail/<log>)")
	fs.BoolVar(&c.json, "json", false, "print the result as a JSON object")
	return fs
}

func (c *initCommand) Usage() string {
	return usage(c.flagSet(), "trail init [--data DIR] [--log NAME] [--origin ORIGIN]\n       trail init --store postgres://… --master-key-file FILE [--log NAME] [--origin ORIGIN]", `
Init creates the data directory (mode 0700) with its database, then the log
and the log's signing key (DIR/keys/NAME.key, mode 0600), and prints the
verifier key that checks the log's checkpoints. Give that key to auditors:
"trail verify --verifier-key KEY" pins it.

If DIR already holds a Trail database, init only adds the log, so
"trail init --log billing" creates a second log. It fails if the log exists.

Keep the signing key secret and back it up: a log cannot be continued with a
new key.

With --store postgres://USER@HOST/DATABASE, init creates Trail's schema in
the (empty) database if it has none, then the log. The log's signing key is
kept in the database, sealed with the master key in --master-key-file
FILE, which init creates (mode 0600) if it does not exist. Give that file
to every trail serve on the database, and back it up apart from the
database's backups: without it the signing keys cannot be used.`, `
  trail init
  trail init --data /var/lib/trail --log billing --origin example.com/audit/billing
  trail init --store postgres://trail@db.internal/trail --master-key-file /etc/trail/master.key --log billing`)
}

func (c *initCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if err := c.db.storeOnly("init"); err != nil {
		return err
	}
	if err := checkLogName(c.db.log); err != nil {
		return err
	}
	if c.origin != "" {
		if err := trail.CheckOrigin(c.origin); err != nil {
			return usagef("--origin: %v", err)
		}
	}
	u, err := c.db.storeURL()
	if err != nil {
		return err
	}
	createdKey := false
	if u.Scheme != "sqlite" {
		if c.db.masterKeyFile == "" {
			return usagef("a PostgreSQL store keeps the logs' signing keys sealed with a master key: give --master-key-file FILE (created if it does not exist)")
		}
		if createdKey, err = ensureMasterKey(c.db.masterKeyFile); err != nil {
			return fmt.Errorf("--master-key-file: %w", err)
		}
	}
	db, created, err := c.db.openOrInit(ctx, trail.Options{})
	if err != nil {
		if createdKey {
			// It sealed nothing: left behind, it would pass for the
			// store's key.
			os.Remove(c.db.masterKeyFile)
		}
		return err
	}
	dir := c.db.data
	defer db.Close()
	l, err := db.CreateLog(ctx, c.db.log, c.origin)
	if errors.Is(err, trail.ErrExists) {
		return fmt.Errorf("%s already has a log %q ('trail logs' shows its verifier key)", dir, c.db.log)
	}
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}

	if u.Scheme != "sqlite" {
		return c.printPostgres(l, created, createdKey)
	}
	keyFile := filepath.Join(dir, "keys", l.Name()+".key")
	if c.json {
		return json.NewEncoder(c.env.stdout).Encode(map[string]any{
			"data": dir, "created_data": created, "log": l.Name(), "origin": l.Origin(),
			"key_file": keyFile, "verifier_key": l.VerifierKey(),
		})
	}
	w := c.env.stdout
	if created {
		fmt.Fprintf(w, "Created data directory %s and log %q.\n", dir, l.Name())
	} else {
		fmt.Fprintf(w, "Created log %q in %s.\n", l.Name(), dir)
	}
	fmt.Fprintf(w, "  origin:        %s\n", l.Origin())
	fmt.Fprintf(w, "  signing key:   %s (secret; back it up)\n", keyFile)
	fmt.Fprintf(w, "  verifier key:  %s\n", l.VerifierKey())
	fmt.Fprintf(w, "\nGive the verifier key to auditors; they check the log with\n  trail verify --data %s --log %s --verifier-key %s\n", shellQuote(dir), shellQuote(l.Name()), l.VerifierKey())
	if info, err := os.Stat(dir); err == nil && info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(c.env.stderr, "warning: %s is open to other users (mode %#o); consider: chmod 700 %s\n", dir, info.Mode().Perm(), dir)
	}
	return nil
}

// printPostgres says what init made in a postgres store.
func (c *initCommand) printPostgres(l *trail.Log, createdSchema, createdKey bool) error {
	if c.json {
		return json.NewEncoder(c.env.stdout).Encode(map[string]any{
			"store": c.db.data, "created_schema": createdSchema, "log": l.Name(), "origin": l.Origin(),
			"master_key_file": c.db.masterKeyFile, "created_master_key": createdKey, "verifier_key": l.VerifierKey(),
		})
	}
	w := c.env.stdout
	if createdKey {
		fmt.Fprintf(w, "Created the master key %s (secret: give it to every trail serve on the database, and back it up apart from the database's backups).\n", c.db.masterKeyFile)
	}
	if createdSchema {
		fmt.Fprintf(w, "Created Trail's schema in %s.\n", c.db.data)
	}
	fmt.Fprintf(w, "Created log %q in %s.\n", l.Name(), c.db.data)
	fmt.Fprintf(w, "  origin:        %s\n", l.Origin())
	fmt.Fprintf(w, "  signing key:   in the database, sealed with %s\n", c.db.masterKeyFile)
	fmt.Fprintf(w, "  verifier key:  %s\n", l.VerifierKey())
	fmt.Fprintf(w, "\nGive the verifier key to auditors; they check the log with\n  trail verify --store %s --log %s --verifier-key %s\n", shellQuote(c.db.data), shellQuote(l.Name()), l.VerifierKey())
	return nil
}

// shellQuote returns s as one word of a POSIX shell command line: as it
// is when it holds only characters no shell treats specially, else in
// single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+=,%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ensureMasterKey makes a new master key in the file path unless it
// exists, and says whether it made one.
func ensureMasterKey(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := trail.CreateMasterKey(path); err != nil {
		return false, err
	}
	return true, nil
}
