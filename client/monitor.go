package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/merkle"
)

// ErrFork means the log's history changed: the server's latest checkpoint
// is validly signed but does not extend the one seen before. Someone
// rewrote, removed or reordered events. It is never a transient failure.
var ErrFork = errors.New("FORK: the log's signed history is not consistent with the checkpoint seen before")

// Monitor follows a log's checkpoints and proves that each new one extends
// the last one it saw, which it keeps in a file so that the proof holds
// across restarts.
type Monitor struct {
	c        *Client
	verifier note.Verifier
	path     string
}

// NewMonitor returns a monitor of c's log that checks signatures with the
// pinned verifierKey and remembers the last checkpoint in statePath.
func (c *Client) NewMonitor(verifierKey, statePath string) (*Monitor, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return &Monitor{c: c, verifier: v, path: statePath}, nil
}

// Check fetches the latest checkpoint, verifies its signature, proves it
// consistent with the saved one (if any), saves it, and returns it. A log
// that shrank or forked gives an error wrapping ErrFork, and the saved
// checkpoint is kept as evidence. With a witness policy (Options.Policy), a
// checkpoint that does not meet it gives an error matching ErrNotWitnessed
// (after the fork check: a fork is reported as one) and is not saved.
func (m *Monitor) Check(ctx context.Context) (Checkpoint, error) {
	got, err := m.Latest(ctx)
	return got.Checkpoint, err
}

// Latest is Check, returning the signed checkpoint and what the witness
// policy found in its cosignatures too.
func (m *Monitor) Latest(ctx context.Context) (VerifiedLog, error) {
	signed, err := m.c.Checkpoint(ctx)
	if err != nil {
		return VerifiedLog{}, err
	}
	latest, _, err := merkle.Open(signed, m.verifier)
	if err != nil {
		return VerifiedLog{}, fmt.Errorf("%w: checkpoint: %v", ErrNotVerified, err)
	}
	got := VerifiedLog{Checkpoint: latest, Signed: signed}
	prevSigned, err := os.ReadFile(m.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return got, err
	default:
		prev, _, err := merkle.Open(prevSigned, m.verifier)
		if err != nil {
			return got, fmt.Errorf("saved checkpoint %s: %w", m.path, err)
		}
		if err := m.consistent(ctx, prev, latest); err != nil {
			return got, err
		}
	}
	got.Witnesses, err = m.c.witnessed(m.verifier, latest, signed)
	if err != nil {
		return got, err
	}
	return got, durable.Replace(m.path, signed)
}

func (m *Monitor) consistent(ctx context.Context, prev, latest Checkpoint) error {
	switch {
	case latest.Size < prev.Size:
		return fmt.Errorf("%w: the log shrank from %d to %d events", ErrFork, prev.Size, latest.Size)
	case latest.Size == prev.Size:
		if latest.Hash != prev.Hash {
			return fmt.Errorf("%w: two different trees of %d events", ErrFork, prev.Size)
		}
		return nil
	case prev.Size == 0:
		return nil
	}
	proof, err := m.c.ProveConsistency(ctx, prev.Size, latest.Size)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, latest.Size, latest.Hash, prev.Size, prev.Hash); err != nil {
		return fmt.Errorf("%w: from %d to %d events: %v", ErrFork, prev.Size, latest.Size, err)
	}
	return nil
}
