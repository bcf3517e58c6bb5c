package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/policy"
)

// receiptResult is what verify --receipt prints with --json.
type receiptResult struct {
	Verified bool            `json:"verified"`
	Event    json.RawMessage `json:"event,omitempty"` // canonical JSON
	Seq      *int64          `json:"seq,omitempty"`
	Origin   string          `json:"origin,omitempty"`
	TreeSize int64           `json:"tree_size,omitempty"`
	Root     string          `json:"root,omitempty"`
	// Witnesses is what --witness-policy found in the checkpoint's
	// cosignatures.
	Witnesses *witnessesResult `json:"witnesses,omitempty"`
	Problem   string           `json:"problem,omitempty"`
}

// runReceipt checks the receipt of --receipt offline against the pinned
// verifier key v and, unless pol is nil, the witness policy.
func (c *verifyCommand) runReceipt(v note.Verifier, pol *policy.Policy) error {
	switch {
	case v == nil:
		return usagef("--receipt needs the log's verifier key, pinned: --verifier-key KEY (from its operator)")
	case c.db.server != "" || c.against != "" || c.index:
		return usagef("--receipt checks a receipt on its own: leave out --server, --against and --index")
	}
	var data []byte
	var err error
	if c.receipt == "-" {
		data, err = readLimited(c.env.stdin, maxReceiptFile)
	} else {
		data, err = readFlagFile(c.receipt, maxReceiptFile)
	}
	if err != nil {
		return fmt.Errorf("--receipt: %w", err)
	}
	vkey, err := verifierKeyText(c.vkey)
	if err != nil {
		return usagef("--verifier-key: %v", err)
	}
	got, err := client.CheckReceipt(data, vkey, pol)
	var res receiptResult
	if got.Event != nil {
		seq := got.Event.Seq
		res.Event, res.Seq = canon.Append(nil, got.Event), &seq
		res.Origin, res.TreeSize = got.Checkpoint.Origin, got.Checkpoint.Size
		res.Root = base64.StdEncoding.EncodeToString(got.Checkpoint.Hash[:])
		if pol != nil {
			r := pol.Check(got.Signed)
			res.Witnesses = newWitnessesResult(&r)
		}
	}
	switch {
	case errors.Is(err, client.ErrNotVerified):
		res.Problem = err.Error()
	case err != nil:
		return err
	default:
		res.Verified = true
	}
	if c.json {
		if err := json.NewEncoder(c.env.stdout).Encode(res); err != nil {
			return err
		}
	} else if res.Event != nil {
		w := c.env.stdout
		if res.Verified {
			fmt.Fprintf(w, "Receipt verified: the event at seq %d is in the log %q, in the tree of its signed checkpoint of %s events.\n", *res.Seq, res.Origin, commas(res.TreeSize))
		} else {
			fmt.Fprintf(w, "Receipt of the event at seq %d, in the log %q, checkpoint of %s events:\n", *res.Seq, res.Origin, commas(res.TreeSize))
		}
		fmt.Fprintf(w, "  root: %s\n", res.Root)
		var pretty bytes.Buffer
		json.Indent(&pretty, res.Event, "  ", "  ")
		fmt.Fprintf(w, "  event: %s\n", escapeInvisible(pretty.String()))
		if res.Witnesses != nil {
			if err := res.Witnesses.print(w); err != nil {
				return err
			}
		}
	}
	if !res.Verified {
		return &trail.VerifyError{Seq: -1, Problem: res.Problem}
	}
	return nil
}
