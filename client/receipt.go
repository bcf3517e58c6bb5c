package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
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
	r, err := verify.CheckReceipt(receipt, v)
	if err != nil {
		return Verified{}, receiptError{err}
	}
	out := Verified{Event: r.Event, Checkpoint: r.Checkpoint, Signed: r.Note, Proof: r.Proof}
	out.Witnesses, err = checkWitnessed(pol, v, r.Checkpoint, r.Note)
	if err != nil {
		return out, receiptError{err}
	}
	return out, nil
}

// receiptError is why CheckReceipt refused a receipt. It matches
// ErrNotVerified, and says what is wrong with the receipt (not with a
// server's answer: a receipt is checked offline).
type receiptError struct{ err error }

func (e receiptError) Error() string        { return "receipt: " + e.err.Error() }
func (e receiptError) Unwrap() error        { return e.err }
func (e receiptError) Is(target error) bool { return target == ErrNotVerified }

// ErrReceiptsPending means the events were stored, but no checkpoint that
// meets the log's witness policy covered them before the server stopped
// waiting (its witnesses are down or slow): the receipts came without
// proofs. Fetch them later with Receipt.
var ErrReceiptsPending = errors.New("events stored; receipts pending: not witnessed in time")

// AppendWithReceipts is Append, asking for receipts (?receipts=wait): the
// server answers once a checkpoint that meets the log's witness policy
// covers the events, and each receipt's Proof is the event's receipt,
// which the app keeps as offline evidence and CheckReceipt checks. If the
// events were stored but not witnessed in time, it returns their receipts
// without proofs and ErrReceiptsPending.
func (c *Client) AppendWithReceipts(ctx context.Context, events ...event.Event) ([]api.Receipt, error) {
	out, err := c.append(ctx, url.Values{"receipts": {"wait"}}, "", events)
	if err != nil {
		return nil, err
	}
	if out.ProofsPending {
		return out.Events, ErrReceiptsPending
	}
	for _, r := range out.Events {
		if r.Proof == "" {
			return out.Events, fmt.Errorf("trail server: no receipt for the event at seq %d", r.Seq)
		}
	}
	return out.Events, nil
}

// Receipt fetches the receipt of the event with the given id
// (GET /v1/events/{id}/receipt), waiting up to wait (at most 30 s)
// for a checkpoint that meets the log's witness policy to cover it. It
// does not check it; CheckReceipt does, with the log's pinned key.
func (c *Client) Receipt(ctx context.Context, id string, wait time.Duration) ([]byte, error) {
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
	}
	var b []byte
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(id)+"/receipt", q, nil, nil, &b); err != nil {
		return nil, err
	}
	return b, nil
}
