package verify

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
)

// A receipt is offline evidence that an event is in a log: a C2SP
// tlog-proof (https://c2sp.org/tlog-proof) whose extra data is the
// event's canonical JSON, the very bytes of its leaf, with the index of
// the leaf, its inclusion proof, and the signed checkpoint (with any
// witness cosignatures) of the tree the proof reaches. Whoever holds the
// log's verifier key, and the witness policy, checks it without Trail.

// Errors of CheckReceipt, matched with errors.Is.
var (
	// ErrBadReceipt: the receipt is malformed, or does not prove its event.
	ErrBadReceipt = errors.New("receipt does not prove its event")
)

// MarshalReceipt returns the receipt of the event whose canonical JSON is
// leaf, at seq, proved by hashes to the tree of the signed checkpoint.
func MarshalReceipt(leaf []byte, seq int64, hashes tlog.RecordProof, checkpoint []byte) []byte {
	p := proof.TLogProof{Index: uint64(seq), Checkpoint: checkpoint, ExtraData: leaf}
	for _, h := range hashes {
		p.Hashes = append(p.Hashes, h)
	}
	return p.Marshal()
}

// Receipt is a receipt CheckReceipt found good.
type Receipt struct {
	Event      *event.Event
	Checkpoint merkle.Checkpoint
	// Note is the signed checkpoint, cosignatures included.
	Note []byte
	// Proof leads from the event's leaf to Checkpoint's root.
	Proof tlog.RecordProof
}

// CheckReceipt checks a receipt against the log's verifier v: the
// checkpoint is signed by v's key, the event is a canonical stored event
// at the receipt's index, and the inclusion proof takes its leaf to the
// checkpoint's root. Anything else is an error matching ErrBadReceipt that
// says what is wrong. Its cosignatures are the caller's to check against a
// witness policy (policy.Policy.Check). It never panics.
func CheckReceipt(data []byte, v note.Verifier) (Receipt, error) {
	bad := func(format string, args ...any) (Receipt, error) {
		return Receipt{}, fmt.Errorf("%w: %s", ErrBadReceipt, fmt.Sprintf(format, args...))
	}
	// A signed note never ends in a blank line: blank lines after it
	// were added on the way (a shell's echo, a text editor).
	for bytes.HasSuffix(data, []byte("\n\n")) {
		data = data[:len(data)-1]
	}
	var p proof.TLogProof
	if err := p.Unmarshal(data); err != nil {
		return bad("not a tlog-proof: %v", err)
	}
	if p.ExtraData == nil {
		return bad("it carries no event (the tlog-proof has no extra line)")
	}
	cp, _, err := merkle.Open(p.Checkpoint, v)
	if err != nil {
		return bad("checkpoint: %v", err)
	}
	if p.Index >= uint64(cp.Size) {
		return bad("index %d is not below the checkpoint's size %d", p.Index, cp.Size)
	}
	seq := int64(p.Index)
	e, err := event.DecodeStored(p.ExtraData)
	if err != nil {
		return bad("event: %v", err)
	}
	if e.Seq != seq {
		return bad("the event's seq is %d, the receipt's index %d", e.Seq, seq)
	}
	// The leaf is the event's canonical form: bytes that decode to the
	// same event but differ are not its leaf.
	if c := canon.Append(nil, &e); string(c) != string(p.ExtraData) {
		return bad("the event is not in canonical form")
	}
	hashes := make(tlog.RecordProof, len(p.Hashes))
	for i, h := range p.Hashes {
		hashes[i] = h
	}
	if err := merkle.VerifyInclusion(hashes, cp.Size, cp.Hash, seq, p.ExtraData); err != nil {
		return bad("the inclusion proof of seq %d does not reach the checkpoint's root: %v", seq, err)
	}
	return Receipt{Event: &e, Checkpoint: cp, Note: p.Checkpoint, Proof: hashes}, nil
}
