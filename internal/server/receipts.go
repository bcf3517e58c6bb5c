package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// Receipts: an append that asks for them (?receipts=wait, or the header
// Trail-Receipts: wait) is answered once a checkpoint that meets the
// log's witness policy covers its events (the latest signed checkpoint
// for a log no policy covers), with each event's receipt: a C2SP
// tlog-proof carrying the event, its inclusion proof and that checkpoint
// with its cosignatures (trail.Log.Receipt), which the app keeps as
// offline evidence. GET /v1/events/{id}/receipt gives the receipt of any
// event.

// defaultReceiptWait is how long an append that asks for receipts waits
// for its events to be witnessed, when Options.ReceiptWait is not set.
const defaultReceiptWait = 30 * time.Second

// maxReceiptWait bounds ?wait= of GET /v1/events/{id}/receipt, well
// within the write timeout of trail serve (60 s).
const maxReceiptWait = 30 * time.Second

// wantsReceipts reports whether an append asks for receipts, and whether
// it asks for them in a way Trail knows.
func wantsReceipts(r *http.Request) (bool, error) {
	// The one parameter of an append: a misspelt one (receipt=wait)
	// would otherwise go without receipts unnoticed.
	if err := onlyParams(r, "receipts"); err != nil {
		return false, err
	}
	v := r.URL.Query().Get("receipts")
	h := r.Header.Get("Trail-Receipts")
	switch {
	case v == "" && h == "":
		return false, nil
	case v != "" && v != "wait":
		return false, badParam("receipts", `the one value is "wait"`)
	case h != "" && !strings.EqualFold(h, "wait"):
		return false, badHeader("Trail-Receipts", `the one value is "wait"`)
	}
	return true, nil
}

// receiptCheckpoint waits until a checkpoint of l that meets its witness
// policy covers the event at seq, for at most wait, and returns it; ok
// is false when none came in time. For a log no policy covers it is the
// latest signed checkpoint, which covers every acknowledged event.
func receiptCheckpoint(ctx context.Context, l *trail.Log, seq int64, wait time.Duration) (signed []byte, ok bool, err error) {
	if !l.Witnessed() {
		signed, err := l.Checkpoint()
		return signed, err == nil, err
	}
	deadline := time.Now().Add(wait)
	pause := 5 * time.Millisecond
	for {
		signed, met, err := l.WitnessedAt(ctx, seq)
		if err != nil || met {
			return signed, met, err
		}
		if time.Now().Add(pause).After(deadline) {
			return nil, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// addReceipts sets the receipt of each event of rs, proved against a
// checkpoint that meets the log's witness policy, once one covers them
// all (receiptCheckpoint). It reports false, setting none, if none came
// within the server's ReceiptWait.
func (s *server) addReceipts(ctx context.Context, l *trail.Log, rs []api.Receipt) (bool, error) {
	last := int64(-1)
	for _, r := range rs {
		last = max(last, r.Seq)
	}
	if last < 0 {
		return true, nil
	}
	signed, ok, err := receiptCheckpoint(ctx, l, last, s.opts.ReceiptWait)
	if err != nil || !ok {
		return false, err
	}
	for i := range rs {
		e, err := l.GetSeq(ctx, rs[i].Seq)
		if err != nil {
			return false, err
		}
		receipt, err := l.Receipt(ctx, e, signed)
		if err != nil {
			return false, err
		}
		rs[i].Proof = string(receipt)
	}
	return true, nil
}

// getReceipt serves GET /v1/events/{id}/receipt: the event's receipt as
// text, against the newest checkpoint that meets the log's witness policy
// and covers it. With ?wait=DURATION (at most 30 s) it waits that
// long for one; else, or when none came, it answers 409 not_witnessed.
// It is a read of the event, audited as GET /v1/events/{id} is.
func (s *server) getReceipt(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r, "wait"); err != nil {
		return err
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxReceiptWait {
			return badParam("wait", "a duration from 0s to 30s, such as 10s")
		}
		wait = d
	}
	ctx := r.Context()
	e, err := l.Get(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.auditRead(r, key, l, trail.ActionGet, []event.Target{{Type: "event", ID: e.ID}}); err != nil {
		return err
	}
	signed, ok, err := receiptCheckpoint(ctx, l, e.Seq, wait)
	if err != nil {
		return err
	}
	if !ok {
		w.Header().Set("Retry-After", "1")
		return &apiError{status: http.StatusConflict, code: "not_witnessed",
			msg: "no checkpoint that meets the log's witness policy covers this event yet; retry later, or ask with ?wait=30s"}
	}
	receipt, err := l.Receipt(ctx, e, signed)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(receipt)
	return nil
}
