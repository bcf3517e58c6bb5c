package client

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/verify"
	"github.com/trail-audit/trail/policy"
)

// VerifiedLog is a checkpoint of the log that Verify or a Monitor checked.
type VerifiedLog struct {
	Checkpoint Checkpoint // the checkpoint verified
	Signed     []byte     // the checkpoint as the server sent it: a signed note, with any cosignatures
	// Witnesses is what the client's witness policy (Options.Policy) found
	// in Signed's cosignatures; nil without a policy.
	Witnesses *policy.Result
}

// Verify checks the whole log as served, trusting nothing but verifierKey:
// it takes the latest checkpoint, checks its signature, downloads the
// events, recomputes every leaf and the tree, and checks that the root of
// the first Size events is the checkpoint's. With against (a signed
// checkpoint saved earlier) it also proves that the log only grew since.
// progress, if set, is called with events done and the total. It returns
// the checkpoint verified; a failure wraps ErrNotVerified (or ErrFork).
// With a witness policy (Options.Policy), a checkpoint that does not meet
// it fails with ErrNotWitnessed once the rest is verified; VerifyLog
// reports its cosigners.
func (c *Client) Verify(ctx context.Context, verifierKey string, against []byte, progress func(done, total int64)) (Checkpoint, error) {
	got, err := c.VerifyLog(ctx, verifierKey, against, progress)
	return got.Checkpoint, err
}

// VerifyLog is Verify, returning the signed checkpoint it verified and
// what the witness policy found in its cosignatures. After a failure it
// returns what it had verified by then: the checkpoint once its signature
// checked, and the witnesses with an ErrNotWitnessed.
func (c *Client) VerifyLog(ctx context.Context, verifierKey string, against []byte, progress func(done, total int64)) (VerifiedLog, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return VerifiedLog{}, fmt.Errorf("verifier key: %w", err)
	}
	signed, err := c.Checkpoint(ctx)
	if err != nil {
		return VerifiedLog{}, err
	}
	cp, _, err := merkle.Open(signed, v)
	if err != nil {
		return VerifiedLog{}, fmt.Errorf("%w: checkpoint: %v", ErrNotVerified, err)
	}
	got := VerifiedLog{Checkpoint: cp, Signed: signed}
	// The witnesses are checked before the events are downloaded (a policy
	// of another log fails at once) and reported after them: a checkpoint
	// short of its quorum says so, and whether its events verify.
	var notWitnessed error
	got.Witnesses, err = c.witnessed(v, cp, signed)
	if errors.Is(err, ErrNotWitnessed) {
		notWitnessed = err
	} else if err != nil {
		return got, err
	}
	// The signed checkpoints first: a history that does not extend the
	// saved one is a fork, whatever events the server sends.
	if against != nil {
		old, _, err := merkle.Open(against, v)
		if err != nil {
			return got, fmt.Errorf("checkpoint to verify against: %w", err)
		}
		m := &Monitor{c: c, verifier: v}
		if err := m.consistent(ctx, old, cp); err != nil {
			return got, err
		}
	}
	body, err := c.Export(ctx, api.Query{}, "ndjson")
	if err != nil {
		return got, err
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
		return got, fmt.Errorf("%w: %w", ErrNotVerified, err)
	}
	if err != nil {
		return got, err
	}
	return got, notWitnessed
}
