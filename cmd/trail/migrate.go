package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/trail-audit/trail"
)

// migrateCommand brings a store's schema up to this build's.
type migrateCommand struct {
	env  *env
	db   dbFlags
	json bool
}

func (c *migrateCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c.db.registerStore(fs, c.db)
	fs.BoolVar(&c.json, "json", false, `print {"store", "from", "to"} as JSON`)
	return fs
}

func (c *migrateCommand) Usage() string {
	return usage(c.flagSet(), "trail migrate --store URL [--json]", `
Migrate applies to the store the schema migrations it lacks: on an empty
PostgreSQL database it creates Trail's tables. The migrations are numbered
and embedded in the binary; each runs in a transaction of its own under a
lock, so running migrate while servers start, or starting several servers
with "trail serve --migrate" at once, applies each one once. A store whose
schema is newer than this trail is refused untouched: upgrade trail.

Migrate needs no master key. Back up the database first (pg_dump).

A sqlite data directory upgrades its schema whenever trail opens it; migrate
only opens it.`, `
  trail migrate --store postgres://trail@db.internal/trail
  TRAIL_STORE=postgres://trail@db.internal/trail trail migrate`)
}

func (c *migrateCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if err := c.db.storeOnly("migrate"); err != nil {
		return err
	}
	url, err := c.db.resolve()
	if err != nil {
		return err
	}
	m, err := trail.MigrateStore(ctx, url, nil)
	if err != nil {
		return err
	}
	if c.json {
		return json.NewEncoder(c.env.stdout).Encode(map[string]any{"store": c.db.data, "from": m.From, "to": m.To})
	}
	switch {
	case m.From == 0 && m.To == 0:
		fmt.Fprintf(c.env.stdout, "%s is at this trail's schema.\n", c.db.data)
	case m.From == m.To:
		fmt.Fprintf(c.env.stdout, "%s is at schema %d, this trail's: nothing to do.\n", c.db.data, m.To)
	case m.From == 0:
		fmt.Fprintf(c.env.stdout, "Created Trail's schema (version %d) in %s.\n", m.To, c.db.data)
	default:
		fmt.Fprintf(c.env.stdout, "Migrated %s from schema %d to %d.\n", c.db.data, m.From, m.To)
	}
	return nil
}
