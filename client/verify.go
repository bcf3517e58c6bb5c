package client

import (
	"bufio"
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
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
	app, _ := merkle.NewAppender(0, nil)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var buf []byte
	for app.Size() < cp.Size && sc.Scan() {
		e, err := event.DecodeStored(sc.Bytes())
		if err != nil {
			if xerr := ExportError(sc.Bytes()); xerr != nil {
				return cp, fmt.Errorf("%w: event %d: %w", ErrNotVerified, app.Size(), xerr)
			}
			return cp, fmt.Errorf("%w: event %d: %v", ErrNotVerified, app.Size(), err)
		}
		if e.Seq != app.Size() {
			return cp, fmt.Errorf("%w: event %d missing (got seq %d)", ErrNotVerified, app.Size(), e.Seq)
		}
		buf = canon.Append(buf[:0], &e)
		app.Append(tlog.RecordHash(buf))
		if progress != nil && app.Size()%(1<<16) == 0 {
			progress(app.Size(), cp.Size)
		}
	}
	if err := sc.Err(); err != nil {
		return cp, err
	}
	if app.Size() < cp.Size {
		return cp, fmt.Errorf("%w: the server sent %d events, the checkpoint covers %d", ErrNotVerified, app.Size(), cp.Size)
	}
	if app.Root() != cp.Hash {
		return cp, fmt.Errorf("%w: the %d events served do not hash to the signed checkpoint's root", ErrNotVerified, cp.Size)
	}
	if progress != nil {
		progress(cp.Size, cp.Size)
	}
	return cp, nil
}
