package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/merkle"
)

// checkpointCommand prints the log's latest signed checkpoint.
type checkpointCommand struct {
	env  *env
	db   dbFlags
	vkey string
}

func (c *checkpointCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.StringVar(&c.vkey, "verifier-key", "", "print the checkpoint only if it is signed by this verifier `KEY` (or a file holding it)")
	return fs
}

func (c *checkpointCommand) Usage() string {
	return usage(c.flagSet(), "trail checkpoint [--data DIR] [--log NAME] [--verifier-key KEY]\n       trail checkpoint --server URL --key KEY [--verifier-key KEY]", `
Checkpoint prints the log's latest signed checkpoint exactly as stored: a
C2SP tlog-checkpoint (origin, tree size, root hash) signed as a C2SP signed
note with the log's key (https://c2sp.org/tlog-checkpoint). An empty log
stores none: for it, checkpoint signs the empty tree's.

Save one now and then, somewhere the log's operator cannot change: "trail
verify --against FILE" later proves that the log only grew since, with
every event of that checkpoint unchanged.

With --server URL and --key KEY (or $TRAIL_SERVER and $TRAIL_KEY) it
prints the checkpoint of the key's log on that server; any key of the log
may read it. With --verifier-key it checks the signature first, and exits 1
printing nothing if the checkpoint is not signed by that key.`, `
  trail checkpoint > checkpoint-$(date +%F).txt
  trail checkpoint --server https://trail.example --key "$TRAIL_KEY" --verifier-key acme.vkey > checkpoint.txt
  trail verify --against checkpoint-2026-03-01.txt`)
}

func (c *checkpointCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	var pinned note.Verifier
	if c.vkey != "" {
		var err error
		if pinned, err = readVerifier(c.vkey); err != nil {
			return usagef("--verifier-key: %v", err)
		}
	}
	var signed []byte
	cl, err := c.db.client()
	if err != nil {
		return err
	}
	if cl != nil {
		if signed, err = cl.Checkpoint(ctx); err != nil {
			return err
		}
		if _, err := parseSignedCheckpoint(signed); err != nil {
			return fmt.Errorf("the server's answer is not a signed checkpoint: %w", err)
		}
	} else {
		db, l, err := c.db.open(ctx, true)
		if err != nil {
			return err
		}
		signed, err = l.Checkpoint()
		if errors.Is(err, trail.ErrNotFound) && l.Size() == 0 {
			// A read-only open has no signing key, and an empty log
			// stores no checkpoint: open it to append, which signs
			// the empty tree's.
			db.Close()
			if db, l, err = c.db.open(ctx, false); err != nil {
				return fmt.Errorf("log %q is empty, and signing its empty tree's checkpoint needs it opened to append: %w", c.db.log, err)
			}
			signed, err = l.Checkpoint()
		}
		db.Close()
		if err != nil {
			return err
		}
	}
	if pinned != nil {
		if _, _, err := merkle.Open(signed, pinned); err != nil {
			return &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the checkpoint is not signed by the verifier key %s: %v", c.vkey, err)}
		}
	}
	_, err = c.env.stdout.Write(signed)
	return err
}

// errNotCheckpoint is the error of parseSignedCheckpoint.
var errNotCheckpoint = errors.New("not a signed checkpoint (a C2SP tlog-checkpoint signed note, as trail checkpoint prints)")

// parseSignedCheckpoint checks that b has the form of a signed checkpoint,
// a signed note whose text is a tlog-checkpoint, without checking its
// signatures, and returns the checkpoint.
func parseSignedCheckpoint(b []byte) (trail.Checkpoint, error) {
	// With no verifiers, a well-formed note fails only for lack of a
	// known signer.
	_, err := note.Open(b, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return trail.Checkpoint{}, errNotCheckpoint
	}
	n := unverified.Note
	cp, err := merkle.ParseCheckpoint([]byte(n.Text))
	if err != nil || len(n.UnverifiedSigs) == 0 {
		return trail.Checkpoint{}, errNotCheckpoint
	}
	return cp, nil
}
