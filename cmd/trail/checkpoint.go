package main

import (
	"context"
	"flag"
)

// checkpointCommand prints the log's latest signed checkpoint.
type checkpointCommand struct {
	env *env
	db  dbFlags
}

func (c *checkpointCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	c.db.register(fs, c.db)
	return fs
}

func (c *checkpointCommand) Usage() string {
	return usage(c.flagSet(), "trail checkpoint [--data DIR] [--log NAME]", `
Checkpoint prints the log's latest signed checkpoint exactly as stored: a
C2SP tlog-checkpoint (origin, tree size, root hash) signed as a C2SP signed
note with the log's key (https://c2sp.org/tlog-checkpoint).

Save one now and then, somewhere the log's operator cannot change: "trail
verify --against FILE" later proves that the log only grew since, with
every event of that checkpoint unchanged.`, `
  trail checkpoint > checkpoint-$(date +%F).txt
  trail verify --against checkpoint-2026-03-01.txt`)
}

func (c *checkpointCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	db, l, err := c.db.open(ctx, true)
	if err != nil {
		return err
	}
	defer db.Close()
	signed, err := l.Checkpoint()
	if err != nil {
		return err
	}
	_, err = c.env.stdout.Write(signed)
	return err
}
