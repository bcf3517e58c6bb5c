package client

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/verify"
)

// Verify checks the whole log as served, trusting nothing but verifierKey:
// it takes the latest checkpoint, checks its signature, downloads the
// events, recomputes every leaf and the tree, and checks that the root of
// the first Size events is the checkpoint's. With against (a signed
// checkpoint saved earlier) it also proves that the log only grew since.
// progress, if set, is called with events done and the total. It returns
// the checkpoint verified; a failure wraps ErrNotVerified (or ErrFork).
func (c *Client) Verify(ctx context.Context, verifierKey string, against []byte, progress func(done, total int64)) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	signed, err := c.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, _, err := merkle.Open(signed, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %v", ErrNotVerified, err)
	}
	// The signed checkpoints first: a history that does not extend the
	// saved one is a fork, whatever events the server sends.
	if against != nil {
		old, _, err := merkle.Open(against, v)
		if err != nil {
			return cp, fmt.Errorf("checkpoint to verify against: %w", err)
		}
		m := &Monitor{c: c, verifier: v}
		if err := m.consistent(ctx, old, cp); err != nil {
			return cp, err
		}
	}
	body, err := c.Export(ctx, api.Query{}, "ndjson")
	if err != nil {
		return cp, err
	}
	defer body.Close()
	src := verify.ExportSource(verify.Checkpoint{Size: cp.Size, Note: signed}, verify.NewExportReader(body, ExportError))
	_, err = verify.Check(ctx, src, cp.Size, verify.Options{
		Verifier: v,
		Against:  against,
		Progress: progress,
		Readers:  1,
	})
	if ve := (*verify.Error)(nil); errors.As(err, &ve) {
		return cp, fmt.Errorf("%w: %w", ErrNotVerified, err)
	}
	return cp, err
}
