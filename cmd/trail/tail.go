package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/trail-audit/trail/client"
	"strings"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// tailCommand follows new events of a log on a server.
type tailCommand struct {
	env    *env
	db     dbFlags
	q      queryFlags
	follow bool
	json   bool
}

func (c *tailCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	c.db.register(fs, c.db)
	c.q.registerFilters(fs)
	fs.BoolVar(&c.follow, "f", false, "keep following (the only mode: tail always follows until interrupted)")
	fs.BoolVar(&c.json, "json", false, "print NDJSON, one canonical event per line")
	return fs
}

func (c *tailCommand) Usage() string {
	return usage(c.flagSet(), "trail tail -f --server URL --key KEY [filters]", `
Tail prints the events matching the filters as the server stores them,
oldest first, until interrupted: one table row each on a terminal, NDJSON
with --json. It re-connects by itself after a dropped connection, resuming
after the last event printed. It needs a server (--server and --key, or
$TRAIL_SERVER and $TRAIL_KEY); the filters are those of search, except
--since and --until.`, `
  trail tail -f --server http://127.0.0.1:8080 --key "$TRAIL_KEY" --action 'user.login.*' --outcome failure
  trail tail -f --json --ip 203.0.113.7`)
}

func (c *tailCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	q, err := c.q.query(c.env.now())
	if err != nil {
		return err
	}
	// Each time the stream cannot be opened, or drops, stderr says so:
	// a server that cannot be reached would otherwise look idle.
	cl, err := c.db.clientWith(client.Options{TailRetry: func(err error) {
		fmt.Fprintf(c.env.stderr, "trail tail: %v; trying again\n", err)
	}})
	if err != nil {
		return err
	}
	if cl == nil {
		return usagef("tail follows a server: give --server URL and --key KEY (or $TRAIL_SERVER and $TRAIL_KEY)")
	}
	w := bufio.NewWriter(c.env.stdout)
	var buf []byte
	headed := false
	err = cl.Tail(ctx, q, -1, func(e *event.Event) error {
		if c.json {
			buf = append(canon.Append(buf[:0], e), '\n')
			w.Write(buf)
		} else {
			// The cells of search's table, unaligned: rows arrive one by
			// one. Its header comes with the first.
			t := eventTable([]*event.Event{e})
			if !headed {
				w.WriteString(strings.Join(t.header, "  ") + "\n")
				headed = true
			}
			w.WriteString(strings.TrimRight(strings.Join(t.rows[0], "  "), " ") + "\n")
		}
		return w.Flush()
	})
	if errors.Is(err, context.Canceled) {
		return nil // interrupted: the normal end of a tail
	}
	return queryError(err)
}
