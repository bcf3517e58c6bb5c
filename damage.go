package trail

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// ErrDamaged: the database holds data Trail did not write there, or lost
// some it did: it was changed outside Trail or damaged. Reads and appends
// that meet the damage return a *DamagedError, which matches it; Verify
// says what else is wrong.
var ErrDamaged = store.ErrDamaged

// LogDamagedError reports damage to a log as a whole, not to one of its
// events: the verifier key stored for it cannot be read, or its signing
// key does not match it. The log is neither served nor appended to. It
// matches ErrDamaged.
type LogDamagedError struct {
	Log string
	// Problem says what is wrong, without paths or key material: what an
	// API client or /readyz is told.
	Problem string
	// Err is the detail, for the operator: Error() includes it.
	Err error
}

func (e *LogDamagedError) Error() string {
	if e.Err != nil {
		return e.Err.Error() + "; run trail verify"
	}
	return e.Public()
}

// Public is the error's message without its detail.
func (e *LogDamagedError) Public() string {
	return fmt.Sprintf("log %s is damaged: %s; the database or the key was changed outside Trail: run trail verify", e.Log, e.Problem)
}

// Unwrap returns the detail.
func (e *LogDamagedError) Unwrap() error { return e.Err }

// Is makes a LogDamagedError match ErrDamaged.
func (e *LogDamagedError) Is(target error) bool { return target == ErrDamaged }

// keyMismatch is the error of a signing key that does not match the
// verifier key stored for its log; where says where the key is.
func keyMismatch(log logRef, where string) error {
	return &LogDamagedError{Log: log.Name, Problem: "its signing key does not match the verifier key stored for it",
		Err: fmt.Errorf("log %q: signing key %s does not match the log's verifier key %s", log.Name, where, log.VerifierKey)}
}

// DamagedError reports a stored event that cannot be served as it was
// appended: its record cannot be decoded, it is missing, it does not hash
// to its leaf in the log's signed tree, or it is stored past the end of
// the log. Reads fail with it rather than answer "not found" or leave the
// event out, and appends fail with it (wrapped with ErrUnavailable) while
// an event is stored where they would go. It matches ErrDamaged.
type DamagedError struct {
	// Seq is the event's seq: for a search, the first damaged event it
	// met.
	Seq int64
	// Problem says what is wrong, e.g. "its record cannot be decoded".
	Problem string
	// Err is the underlying error, if any: details for an operator's log,
	// not part of Error().
	Err error
}

func (e *DamagedError) Error() string {
	msg := fmt.Sprintf("stored event at seq %d is damaged", e.Seq)
	if e.Problem != "" {
		msg += ": " + e.Problem
	}
	return msg + "; run trail verify"
}

// Unwrap returns the underlying error.
func (e *DamagedError) Unwrap() error { return e.Err }

// Is makes a DamagedError match ErrDamaged.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// shortTile turns the error of a proof, tree hash or tile read from the
// stored Merkle hashes of a tree the log holds into a *DamagedError where
// a tile lacks hashes: those of events the log holds are stored, or
// computed from the events, unless the events or the hashes were removed
// or damaged. It returns other errors as they are.
func shortTile(err error) error {
	var se *merkle.ShortTileError
	if !errors.As(err, &se) {
		return err
	}
	return &DamagedError{Seq: se.FirstSeq(), Problem: fmt.Sprintf(
		"the stored Merkle hashes (tile %d/%d) end before it: it, or its hashes, are missing or damaged", se.Level, se.Index), Err: err}
}

// damaged turns the store's report of a damaged event into a
// *DamagedError, and returns other errors as they are.
func damaged(err error) error {
	var se *store.DamagedError
	if !errors.As(err, &se) {
		return err
	}
	return &DamagedError{Seq: se.Seq, Problem: se.Problem, Err: se.Err}
}

// appendDamaged returns what the appends of a commit that failed with err
// get when the store found damage where they would go: the *DamagedError,
// wrapped with ErrUnavailable, as nothing was stored. It returns nil for
// any other err.
func appendDamaged(err error) error {
	if de := damaged(err); de != err {
		return fmt.Errorf("%w: %w", ErrUnavailable, de)
	}
	if de := (*DamagedError)(nil); errors.As(err, &de) {
		return fmt.Errorf("%w: %w", ErrUnavailable, de) // the log's state (Log.checkTip)
	}
	return nil
}

// ProveEvent returns the inclusion proof of e, an event of this log, in the
// tree of checkpoint c (from OpenCheckpoint, or opened by the caller with a
// key of their own), and checks it: an event that does not hash to its
// leaf in that tree, because it or the stored Merkle hashes were altered,
// gives a *DamagedError. Serving one event with its proof should use it
// rather than ProveInclusion, so that damage is reported, not served.
func (l *Log) ProveEvent(ctx context.Context, e *event.Event, c Checkpoint) (tlog.RecordProof, error) {
	l.followPast(ctx, c.Size)
	if c.Size > l.Size() || e.Seq < 0 || e.Seq >= c.Size {
		return l.ProveInclusion(ctx, e.Seq, c.Size) // the error it gives
	}
	proof, err := l.ProveInclusion(ctx, e.Seq, c.Size)
	if errors.Is(err, ErrNotFound) { // below the log's size: they were stored
		return nil, &DamagedError{Seq: e.Seq, Problem: "the stored Merkle hashes that prove it are missing"}
	}
	if err != nil {
		return nil, err
	}
	if tlog.CheckRecord(proof, c.Size, c.Hash, e.Seq, tlog.RecordHash(canon.Append(nil, e))) != nil {
		return nil, &DamagedError{Seq: e.Seq, Problem: fmt.Sprintf(
			"it does not hash to its leaf in the tree of the signed checkpoint of size %d (the event or the stored Merkle hashes were altered)", c.Size)}
	}
	return proof, nil
}

// checkLeaf returns a *DamagedError if e, as stored, does not hash to its
// leaf in the tree of the log's latest checkpoint, and nil if it does or
// the log has no checkpoint that covers it.
func (l *Log) checkLeaf(ctx context.Context, e *event.Event) error {
	signed, err := l.Checkpoint()
	if err != nil {
		return nil
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil || e.Seq >= c.Size {
		return nil
	}
	_, err = l.ProveEvent(ctx, e, c)
	return err
}
