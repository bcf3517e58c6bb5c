package client

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/policy"
)

// ErrNotWitnessed means the log's checkpoint does not carry the
// cosignatures its witness policy (Options.Policy) asks for: too few of the
// policy's witnesses cosigned it. The error is a *WitnessError, which says
// who cosigned and who is missing. A checkpoint the witnesses have not
// cosigned yet may be cosigned later; a checkpoint of a forked or
// rolled-back history never is.
var ErrNotWitnessed = errors.New("checkpoint not witnessed")

// WitnessError is the error of a checkpoint that does not meet the witness
// policy. It matches ErrNotWitnessed.
type WitnessError struct {
	Size   int64         // the checkpoint's tree size
	Result policy.Result // what the policy found in its cosignatures
}

func (e *WitnessError) Error() string {
	return fmt.Sprintf("checkpoint of %d events not witnessed: %d of %d witnesses cosigned, %s",
		e.Size, len(e.Result.Cosigners), len(e.Result.Cosigners)+len(e.Result.Missing), e.Result)
}

// Is makes a WitnessError match ErrNotWitnessed.
func (e *WitnessError) Is(target error) bool { return target == ErrNotWitnessed }

// witnessed checks the signed checkpoint cp (already verified with the
// log's key v) against the client's witness policy. It returns nil, nil
// without a policy; otherwise the result, and a *WitnessError when the
// quorum is not met. A policy whose log lines do not name v's key is an
// error: it is another log's policy.
func (c *Client) witnessed(v note.Verifier, cp Checkpoint, signed []byte) (*policy.Result, error) {
	return checkWitnessed(c.opts.Policy, v, cp, signed)
}

// checkWitnessed is witnessed with the policy p (nil for none).
func checkWitnessed(p *policy.Policy, v note.Verifier, cp Checkpoint, signed []byte) (*policy.Result, error) {
	if p == nil {
		return nil, nil
	}
	if len(p.Logs) > 0 {
		ours := false
		for _, l := range p.Logs {
			ours = ours || l.Verifier.Name() == v.Name() && l.Verifier.KeyHash() == v.KeyHash()
		}
		if !ours {
			return nil, fmt.Errorf("witness policy: its log lines do not name this log's key (%s)", v.Name())
		}
	}
	r := p.Check(signed)
	if !r.Met {
		return &r, &WitnessError{Size: cp.Size, Result: r}
	}
	return &r, nil
}
