package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/verify"
)

// VerifyOptions tune Log.Verify.
type VerifyOptions struct {
	// Verifier checks checkpoint signatures. Default: the log's own
	// verifier key as recorded in the database. An auditor should pin the
	// key they were given instead of trusting the database's copy.
	Verifier note.Verifier
	// Against is a signed checkpoint saved earlier; Verify proves the log
	// is consistent with it (the log only grew since).
	Against []byte
	// Progress, if set, is called now and then with the number of events
	// checked so far and the total.
	Progress func(done, total int64)
}

// VerifyReport summarises a successful verification.
type VerifyReport struct {
	Size        int64     // events checked
	Root        tlog.Hash // root of the whole log
	Checkpoints int       // checkpoints whose signature and root were checked
	Against     *Checkpoint
}

// VerifyError says what verification found wrong. Seq is the first bad
// event, or -1 when the fault is not tied to one event.
type VerifyError struct {
	Seq     int64
	Problem string
}

func (e *VerifyError) Error() string {
	if e.Seq >= 0 {
		return fmt.Sprintf("seq %d: %s", e.Seq, e.Problem)
	}
	return e.Problem
}

// Verify recomputes the log from its stored events: each event's canonical
// form and leaf hash, every stored Merkle tile, and the root at every stored
// checkpoint, whose signature it checks too. With opts.Against it also
// proves consistency with an earlier checkpoint. Last, it looks for events
// stored past the end of the log. It returns a *VerifyError for the first
// thing that does not hold, and other errors when it cannot read the store.
func (l *Log) Verify(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	if l.db.closing.Load() {
		return VerifyReport{}, ErrClosed
	}
	v := opts.Verifier
	if v == nil {
		v = l.verifier
	}
	st, err := l.db.st.State(ctx, l.info.ID)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("read log state: %w", err)
	}
	keys := &seenKeyRecords{}
	// The log is verified as it was when st was read: a server may go on
	// appending meanwhile, and its newer checkpoints and events are not
	// damage (see pastState).
	var newer []verify.Checkpoint
	rep, err := verify.Check(ctx, storeSource{st: l.db.st, log: l.info.ID, seen: keys.see, upTo: st.Size, newer: &newer}, st.Size, verify.Options{
		Verifier: v,
		Against:  opts.Against,
		Progress: opts.Progress,
		Log:      l.info.Name,
	})
	if len(newer) > 0 {
		// Checked first, as Check checks checkpoints before events.
		if nerr := l.verifyNewer(ctx, newer, st.Size, v); nerr != nil {
			err = nerr
		}
	}
	if err == nil {
		err = l.verifyEnd(ctx, st.Size)
	}
	if err == nil {
		err = l.verifyLogRow(ctx, st, v)
	}
	if err == nil {
		err = l.verifyKeys(ctx, keys)
	}
	if ve := (*verify.Error)(nil); errors.As(err, &ve) {
		return VerifyReport{}, &VerifyError{Seq: ve.Seq, Problem: ve.Problem}
	}
	if err != nil {
		return VerifyReport{}, err
	}
	return VerifyReport{Size: rep.Size, Root: rep.Root, Checkpoints: rep.Checkpoints, Against: rep.Against}, nil
}

// verifyLogRow checks what the store keeps about the log beside its
// events and checkpoints: its origin is its key's name, which every
// checkpoint is signed under, and its last receipt time is that of its
// last event, which the next append's receipt time may not go below.
// Either changed outside Trail stops appends, or stamps later events
// with a time that never was.
func (l *Log) verifyLogRow(ctx context.Context, st store.State, v note.Verifier) error {
	if l.info.Origin != v.Name() {
		return &VerifyError{Seq: 0, Problem: fmt.Sprintf("the log's stored origin %q is not the name of its key, %q: it was changed outside Trail, and appends fail until it is restored", l.info.Origin, v.Name())}
	}
	if st.Size == 0 {
		return nil
	}
	last, err := l.db.st.Get(ctx, l.info.ID, st.Size-1)
	if err != nil {
		return fmt.Errorf("read the last event: %w", err)
	}
	if !last.ReceivedAt.Equal(st.LastReceivedAt) {
		return &VerifyError{Seq: st.Size - 1, Problem: fmt.Sprintf("the log's stored last receipt time, %s, is not its last event's, %s: it was changed outside Trail, and the next events would be stamped from it",
			st.LastReceivedAt.Format(time.RFC3339Nano), last.ReceivedAt.Format(time.RFC3339Nano))}
	}
	return nil
}

// verifyNewer checks the checkpoints stored for more than the size
// events the log held when verification began. They are commits since,
// left for the next verification, if the log, read again, holds them;
// else they are checked as Check would have (verify.CheckStored), which
// finds the log truncated below them, or them forged.
func (l *Log) verifyNewer(ctx context.Context, newer []verify.Checkpoint, size int64, v note.Verifier) error {
	st, err := l.db.st.State(ctx, l.info.ID)
	if err != nil {
		return fmt.Errorf("read log state: %w", err)
	}
	var short []verify.Checkpoint
	for _, c := range newer {
		if c.Size > st.Size {
			short = append(short, c)
		}
	}
	return verify.CheckStored(short, size, v)
}

// verifyEnd reports an event stored past the end of the log, which had
// size events: added outside Trail, it would clash with the next append
// (which refuses to commit while it is there) and be read in its place.
func (l *Log) verifyEnd(ctx context.Context, size int64) error {
	p, err := l.db.pastEnd(ctx, l.info.ID, size)
	switch {
	case err != nil:
		return fmt.Errorf("read events past the end of the log: %w", err)
	case p == nil:
		return nil
	case p.problem != "":
		// Its record says what is wrong with it: it cannot be decoded,
		// or holds another seq.
		return &VerifyError{Seq: p.seq, Problem: fmt.Sprintf("an event is stored past the end of the log (%d events), outside Trail, and %s; appends fail until it is removed", p.size, p.problem)}
	}
	return &VerifyError{Seq: p.seq, Problem: fmt.Sprintf("an event is stored past the end of the log (%d events), outside Trail; appends fail until it is removed", p.size)}
}

// stray is an event stored past the end of a log of size events: at seq,
// and if its record is damaged, what is wrong with it.
type stray struct {
	seq, size int64
	problem   string
}

// pastEnd returns the first event stored at or past size in the log, or
// nil if there is none, where size is the log's size as read a moment
// ago. A server may have appended since: an event found is a stray only
// if the log's size, read again, still does not cover it; otherwise the
// search goes on past the new size.
func (db *DB) pastEnd(ctx context.Context, log, size int64) (*stray, error) {
	// A real stray stops appends (a commit refuses to store over it), so
	// the log stops growing and the loop ends on it; a log that keeps
	// growing past it every time has none.
	for range 1000 {
		var found *stray
		for e, err := range db.st.Scan(ctx, log, size, math.MaxInt64) {
			var de *store.DamagedError
			switch {
			case errors.As(err, &de):
				found = &stray{seq: max(de.Seq, size), size: size, problem: de.Problem}
			case err != nil:
				return nil, err
			default:
				found = &stray{seq: e.Seq, size: size}
			}
			break
		}
		if found == nil {
			return nil, nil
		}
		st, err := db.st.State(ctx, log)
		if err != nil {
			return nil, err
		}
		if st.Size <= size {
			return found, nil
		}
		size = st.Size
	}
	return nil, nil
}

// storeSource is a log in the store, as verify.Check reads it.
type storeSource struct {
	st  store.Log
	log int64
	// seen, if set, is called with each event walked; from several
	// goroutines at once, and with events valid only during the call.
	seen func(*event.Event)
	// upTo, if newer is set, is the size of the log verified: checkpoints
	// stored for larger sizes are left out, and put in *newer.
	upTo  int64
	newer *[]verify.Checkpoint
}

var _ verify.TileSource = storeSource{}

func (s storeSource) Checkpoints(ctx context.Context) iter.Seq2[verify.Checkpoint, error] {
	return func(yield func(verify.Checkpoint, error) bool) {
		for c, err := range s.st.Checkpoints(ctx, s.log) {
			if err == nil && s.newer != nil && c.Size > s.upTo {
				*s.newer = append(*s.newer, verify.Checkpoint{Size: c.Size, Note: bytes.Clone(c.Note)})
				continue
			}
			if !yield(verify.Checkpoint{Size: c.Size, Note: c.Note}, err) || err != nil {
				return
			}
		}
	}
}

// Walk reads the events with the store's Walk, which may be called from
// several goroutines at once. Damaged stored events are a finding.
func (s storeSource) Walk(ctx context.Context, from, to int64, fn func(*event.Event) error) error {
	if s.seen != nil {
		inner := fn
		fn = func(e *event.Event) error {
			s.seen(e)
			return inner(e)
		}
	}
	err := s.st.Walk(ctx, s.log, from, to, fn)
	if errors.Is(err, store.ErrDamaged) {
		return verify.Unreadable(err)
	}
	return err
}

func (s storeSource) Tile(ctx context.Context, level int, index int64) ([]byte, error) {
	data, err := s.st.Tile(ctx, s.log, level, index)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return data, err
}
