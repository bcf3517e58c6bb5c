package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"

	"github.com/trail-audit/trail"
)

// logsCommand lists the logs of a data directory.
type logsCommand struct {
	env  *env
	db   dbFlags
	json bool
}

func (c *logsCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.BoolVar(&c.json, "json", false, `print NDJSON: {"name", "size", "origin", "verifier_key"}`)
	return fs
}

func (c *logsCommand) Usage() string {
	return usage(c.flagSet(), "trail logs [--data DIR] [--json]", `
Logs lists the logs of the data directory: name, number of events, and the
verifier key that checks the log's checkpoints. (--log is ignored.)`, `
  trail logs
  trail logs --data /var/lib/trail --json`)
}

func (c *logsCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	db, err := trail.Open(ctx, c.db.data, trail.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	names, err := db.Logs(ctx)
	if err != nil {
		return err
	}
	if len(names) == 0 && !c.json {
		fmt.Fprintf(c.env.stderr, "%s has no logs; create one with: trail init --log NAME\n", c.db.data)
		return nil
	}
	w := bufio.NewWriter(c.env.stdout)
	t := &table{header: []string{"NAME", "EVENTS", "VERIFIER KEY"}}
	for _, name := range names {
		l, err := db.Log(ctx, name)
		if err != nil {
			return err
		}
		if c.json {
			b, err := json.Marshal(map[string]any{"name": name, "size": l.Size(), "origin": l.Origin(), "verifier_key": l.VerifierKey()})
			if err != nil {
				return err
			}
			w.Write(append(b, '\n'))
		} else {
			t.add(name, strconv.FormatInt(l.Size(), 10), l.VerifierKey())
		}
	}
	if !c.json {
		t.write(w, 0)
	}
	return w.Flush()
}
