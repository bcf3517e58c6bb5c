package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/trail-audit/trail"
)

// rekeyCommand seals a postgres store's secrets under a new master key.
type rekeyCommand struct {
	env     *env
	db      dbFlags
	newFile string
	json    bool
}

func (c *rekeyCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("rekey", flag.ContinueOnError)
	c.db.registerStore(fs, c.db)
	fs.StringVar(&c.newFile, "new-master-key-file", "", "the new master key `FILE`; created if it does not exist")
	fs.BoolVar(&c.json, "json", false, `print {"store", "resealed", "new_master_key_file", "created"} as JSON`)
	return fs
}

func (c *rekeyCommand) Usage() string {
	return usage(c.flagSet(), "trail rekey --store URL --master-key-file OLD --new-master-key-file NEW [--json]", `
Rekey seals every secret of a PostgreSQL store (each log's signing key, the
viewer's session secret, the signed-out sessions) again under a new master
key, in one transaction: all of them or, if a signing key opens with
neither key, none. The signing keys themselves do not change, so
checkpoints and verifier keys stay valid. What opens with NEW already is
left as it is: if a server still running with OLD sealed viewer secrets
under it meanwhile, run the same rekey again once every server runs with
NEW.

NEW is created (mode 0600) if it does not exist. Then restart every trail
serve with --master-key-file NEW: servers still running keep the keys they
have loaded, but one started with OLD can no longer open them. Keep NEW
backed up apart from the database's backups, and destroy OLD once every
server runs with NEW (a database backup taken before the rekey still opens
with OLD).`, `
  trail rekey --store postgres://trail@db.internal/trail --master-key-file /etc/trail/master.key --new-master-key-file /etc/trail/master.key.new`)
}

func (c *rekeyCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if err := c.db.storeOnly("rekey"); err != nil {
		return err
	}
	url, err := c.db.resolve()
	if err != nil {
		return err
	}
	if u, err := trail.ParseStoreURL(url); err == nil && u.Scheme == "sqlite" {
		return usagef("%s is a data directory, which keeps its signing keys as files under no master key: rekey is for a PostgreSQL store (--store postgres://…)", u.Dir)
	}
	if c.db.masterKeyFile == "" {
		return usagef("rekey needs the old master key: --master-key-file OLD (or $TRAIL_MASTER_KEY_FILE)")
	}
	if c.newFile == "" {
		return usagef("rekey needs --new-master-key-file NEW")
	}
	oldKey, err := trail.LoadMasterKey(c.db.masterKeyFile)
	if err != nil {
		return fmt.Errorf("--master-key-file: %w", err)
	}
	created, err := ensureMasterKey(c.newFile)
	if err != nil {
		return fmt.Errorf("--new-master-key-file: %w", err)
	}
	newKey, err := trail.LoadMasterKey(c.newFile)
	if err != nil {
		return fmt.Errorf("--new-master-key-file: %w", err)
	}
	n, err := trail.RotateMasterKey(ctx, url, oldKey, newKey)
	if err != nil {
		if created {
			// Nothing was sealed under it: a key file left behind would
			// pass for one that had.
			os.Remove(c.newFile)
		}
		return err
	}
	if c.json {
		return json.NewEncoder(c.env.stdout).Encode(map[string]any{"store": c.db.data, "resealed": n, "new_master_key_file": c.newFile, "created": created})
	}
	if created {
		fmt.Fprintf(c.env.stdout, "Created the new master key %s (back it up apart from the database's backups).\n", c.newFile)
	}
	noun := "secrets"
	if n == 1 {
		noun = "secret"
	}
	fmt.Fprintf(c.env.stdout, "Sealed %d %s of %s under the new master key.\nRestart every trail serve with --master-key-file %s.\n", n, noun, c.db.data, c.newFile)
	return nil
}
