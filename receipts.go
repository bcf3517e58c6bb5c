package trail

import (
	"context"
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
