package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

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
	return usage(c.flagSet(), "trail init [--data DIR] [--log NAME] [--origin ORIGIN]", `
Init creates the data directory (mode 0700) with its database, then the log
and the log's signing key (DIR/keys/NAME.key, mode 0600), and prints the
verifier key that checks the log's checkpoints. Give that key to auditors:
"trail verify --verifier-key KEY" pins it.

If DIR already holds a Trail database, init only adds the log, so
"trail init --log billing" creates a second log. It fails if the log exists.

Keep the signing key secret and back it up: a log cannot be continued with a
new key.`, `
  trail init
  trail init --data /var/lib/trail --log billing --origin example.com/audit/billing`)
}

func (c *initCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if !trail.ValidLogName(c.db.log) {
		return usagef("--log %q: a log name is 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", c.db.log)
	}
	db, created, err := c.db.openOrInit(ctx, trail.Options{})
	if err != nil {
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
	fmt.Fprintf(w, "\nGive the verifier key to auditors; they check the log with\n  trail verify --verifier-key %s\n", l.VerifierKey())
	if info, err := os.Stat(dir); err == nil && info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(c.env.stderr, "warning: %s is open to other users (mode %#o); consider: chmod 700 %s\n", dir, info.Mode().Perm(), dir)
	}
	return nil
}
