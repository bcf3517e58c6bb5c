package client

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/verify"
	"github.com/trail-audit/trail/policy"
)

// Receipt returns v as a receipt the app can keep as offline evidence: a
// C2SP tlog-proof (https://c2sp.org/tlog-proof) whose extra data is the
// event's canonical JSON, with its index, its inclusion proof and the
// signed checkpoint v was proved against, cosignatures included.
// CheckReceipt checks it without a server.
func (v Verified) Receipt() []byte {
	return verify.MarshalReceipt(canon.Append(nil, v.Event), v.Event.Seq, v.Proof, v.Signed)
}

// CheckReceipt checks a receipt offline: the checkpoint must be signed by
// verifierKey (pinned by the caller), the event must be a leaf of its tree
// at the receipt's index, and, unless pol is nil, the checkpoint's
// cosignatures must meet the witness policy. A receipt that fails wraps
// ErrNotVerified, saying why; one whose checkpoint is short of the quorum
// also matches ErrNotWitnessed.
func CheckReceipt(receipt []byte, verifierKey string, pol *policy.Policy) (Verified, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Verified{}, fmt.Errorf("verifier key: %w", err)
	}
	r, err := verify.CheckReceipt(receipt, v, nil)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %w", ErrNotVerified, err)
	}
	out := Verified{Event: r.Event, Checkpoint: r.Checkpoint, Signed: r.Note, Proof: r.Proof}
	if pol != nil {
		c := &Client{opts: Options{Policy: pol}}
		if _, err := c.witnessed(v, r.Checkpoint, r.Note); err != nil {
			return out, fmt.Errorf("%w: %w", ErrNotVerified, err)
		}
	}
	return out, nil
}
