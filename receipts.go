package trail

import (
	"context"
	"errors"
	"fmt"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/verify"
)

// Receipt returns the receipt of e, an event of the log, proved against
// signed, a signed checkpoint of the log that covers it, with or without
// witness cosignatures: a C2SP tlog-proof (https://c2sp.org/tlog-proof)
// whose extra data is e's canonical JSON, the bytes of its leaf. Anyone
// holding the log's verifier key (and its witness policy) checks it
// offline, without Trail: client.CheckReceipt, trail verify --receipt.
//
// The proof is checked before it is returned, so a stored event or Merkle
// hash altered outside Trail gives a *DamagedError, never a receipt that
// does not prove its event.
func (l *Log) Receipt(ctx context.Context, e *event.Event, signed []byte) ([]byte, error) {
	c, err := l.OpenCheckpoint(signed)
	if err != nil {
		return nil, fmt.Errorf("checkpoint of the receipt: %w", err)
	}
	proof, err := l.ProveEvent(ctx, e, c)
	if err != nil {
		return nil, err
	}
	return verify.MarshalReceipt(canon.Append(nil, e), e.Seq, proof, signed), nil
}

// ReceiptCheckpoint returns the signed checkpoint a receipt of the event
// at seq is best proved against: with the DB's witness policy covering
// the log, the newest checkpoint that meets it if it covers seq (as
// WitnessedAt); without one, the newest cosigned checkpoint stored for the
// log, with whatever cosignatures it carries, if it covers seq and bears
// the log's valid signature (as trail get --proof-file on a data
// directory finds it); else the latest signed checkpoint.
func (l *Log) ReceiptCheckpoint(ctx context.Context, seq int64) ([]byte, error) {
	if l.Witnessed() {
		signed, _, err := l.WitnessedAt(ctx, seq)
		return signed, err
	}
	c, err := l.db.st.Cosigned(ctx, l.info.ID)
	switch {
	case err == nil && c.Size > seq:
		if oc, err := l.OpenCheckpoint(c.Note); err == nil && oc.Size == c.Size {
			return c.Note, nil
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, err
	}
	return l.Checkpoint()
}
