package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/trail-audit/trail"
)

// reindexCommand rebuilds a log's derived data from its events.
type reindexCommand struct {
	env *env
	db  dbFlags
}

func (c *reindexCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	c.db.register(fs, c.db)
	return fs
}

func (c *reindexCommand) Usage() string {
	return usage(c.flagSet(), "trail reindex [--log NAME] [flags]", `
Reindex rebuilds the log's search indexes (action, outcome, actor, ip,
target, free text) and counts (the overview's, by hour and by day; per
action) from its events: it drops them and has the indexer derive them
again, showing its progress on a terminal. Run it when
"trail verify --index" finds that they differ from the events. The events,
Merkle tree and checkpoints are not touched.

In a data directory the free-text index is shared by all the logs and can
only be emptied whole, so the other logs' entries in it are written again
too. Searches stay complete meanwhile, only slower: they read what is not
indexed yet from the events. An append to the log meanwhile may take a
while: a commit that finds the indexer more than 100,000 events behind
indexes a chunk first.

A data directory must be its own: a running trail serve keeps its
indexer's progress in memory, which a rebuild from another process would
leave wrong. So reindex takes the lock file trail serve holds (serve.lock)
and refuses, naming the server's process, while one runs; stop the server,
reindex, and start it again. No server can start while it runs. trail
append, search and the other commands keep working beside it.

On PostgreSQL (--store postgres://…) the rebuild is one transaction, beside
the running nodes: their appends go on, searches read the old indexes until
it commits, and their indexers take up what was appended meanwhile.`, `
  trail reindex
  trail reindex --log acme && trail verify --log acme --index`)
}

func (c *reindexCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if c.db.server != "" {
		return usagef("reindex works on a data directory (--data), not a --server")
	}
	if err := checkLogName(c.db.log); err != nil {
		return err
	}
	db, err := c.db.openStore(ctx, trail.Options{Lock: true})
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := db.Log(ctx, c.db.log)
	if errors.Is(err, trail.ErrNotFound) {
		if names, lerr := db.Logs(ctx); lerr == nil {
			err = fmt.Errorf("%s has no log %q (%s)", c.db.data, c.db.log, logsHint(names, c.db.log))
		}
	}
	if err != nil {
		return err
	}
	bar := newProgress(c.env, "reindex")
	err = l.Reindex(ctx, trail.ReindexOptions{
		Progress: func(done, total int64) { bar.update(done, total, "events") },
	})
	bar.clear()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "Rebuilt the indexes and counts of log %q from its %s events.\n", l.Name(), commas(l.Size()))
	if names, err := db.Logs(ctx); err == nil && len(names) > 1 && !isPostgres(&c.db) {
		fmt.Fprintf(c.env.stdout, "The other logs' entries in the shared free-text index were written again too.\n")
	}
	return db.Close()
}

// isPostgres reports whether d picks a PostgreSQL store.
func isPostgres(d *dbFlags) bool {
	u, err := d.storeURL()
	return err == nil && u.Scheme != "sqlite"
}
