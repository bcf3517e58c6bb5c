package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
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
	return usage(c.flagSet(), "trail logs [--data DIR] [--json]\n       trail logs --server URL --key KEY [--json]", `
Logs lists the logs of the data directory: name, number of events, and the
verifier key that checks the log's checkpoints. (--log is ignored.)

With --server URL and --key KEY (or $TRAIL_SERVER and $TRAIL_KEY) it shows
the one log that the key reaches on that server, as the server describes
it (GET /v1/log): its name, number of events and verifier key, and with
--json its origin too.
Pin a verifier key only when its log's operator gives it to you, not from
a server's answer.`, `
  trail logs
  trail logs --data /var/lib/trail --json
  trail logs --server https://trail.example --key "$TRAIL_KEY"`)
}

func (c *logsCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	cl, err := c.db.client()
	if err != nil {
		return err
	}
	if cl != nil {
		info, err := cl.Log(ctx)
		if err != nil {
			return err
		}
		return c.printRemote(info)
	}
	db, err := c.db.openStore(ctx, trail.Options{ReadOnly: true})
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

// printRemote prints the facts a server gives about a key's log.
func (c *logsCommand) printRemote(info api.LogInfo) error {
	w := bufio.NewWriter(c.env.stdout)
	if c.json {
		b, err := json.Marshal(map[string]any{"name": info.Name, "size": info.TreeSize, "origin": info.Origin, "verifier_key": info.VerifierKey})
		if err != nil {
			return err
		}
		w.Write(append(b, '\n'))
	} else {
		t := &table{header: []string{"NAME", "EVENTS", "VERIFIER KEY"}}
		t.add(info.Name, strconv.FormatInt(info.TreeSize, 10), info.VerifierKey)
		t.write(w, 0)
	}
	return w.Flush()
}
