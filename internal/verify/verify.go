// Package verify checks a whole Trail log from what it holds: every event's
// canonical form and leaf hash, the Merkle tree they make, the stored tiles
// of that tree where the log keeps them, and every signed checkpoint, whose
// signature, size and root it checks; and, given a checkpoint saved
// earlier, that the log only grew since. It names the first event that does
// not hold.
//
// The same checks run on a data directory (Log.Verify in the root package)
// and on a log served over HTTP (client.Verify), each through a [Source].
// The package reads only through its Source: it imports no store, so a
// client links no database. Tree math and signatures come from
// golang.org/x/mod/sumdb/tlog and note, by way of internal/merkle.
//
//   - https://www.rfc-editor.org/rfc/rfc6962#section-2.1
//   - https://c2sp.org/tlog-tiles
//   - https://c2sp.org/tlog-checkpoint
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
)

// Checkpoint is a signed checkpoint as a Source holds it.
type Checkpoint struct {
	Size int64  // the size it is kept under, which its signed body must repeat
	Note []byte // the signed note
}

// Source is a log as Check reads it.
type Source interface {
	// Checkpoints yields the log's signed checkpoints in ascending size.
	// A read error ends the sequence.
	Checkpoints(ctx context.Context) iter.Seq2[Checkpoint, error]
	// Walk calls fn with each event with from <= seq < to that the log
	// holds, in ascending seq order, and stops at fn's first error, which
	// it returns. The event is valid only during the call. An error that
	// is itself a finding (where events should be, the log holds data that
	// is not an event) matches ErrUnreadable; any other error is a failure
	// to read, which Check returns as it is.
	//
	// Check calls Walk from several goroutines at once for disjoint ranges,
	// unless Options.Readers is 1: then it calls Walk for consecutive
	// ranges in ascending order, one after the other, starting at 0.
	Walk(ctx context.Context, from, to int64, fn func(*event.Event) error) error
}

// TileSource is a Source that also keeps the log's Merkle tiles (the
// tlog-tiles layout, height 8). Check compares every tile with the tree it
// rebuilds from the events, and proves Options.Against from them.
type TileSource interface {
	Source
	// Tile returns the data of the tile at level and index (it may be
	// wider than the tree needs), or nil and no error if none is kept.
	Tile(ctx context.Context, level int, index int64) ([]byte, error)
}

// ErrUnreadable marks an error of Source.Walk that is a finding rather than
// a failure to read: the log holds data that cannot be decoded where events
// should be. Check reports it at the first event it has not read.
var ErrUnreadable = errors.New("events cannot be read")

// Unreadable returns err marked as ErrUnreadable, with err's message, and
// unwrapping to err.
func Unreadable(err error) error {
	return unreadable{err}
}

type unreadable struct{ err error }

func (u unreadable) Error() string        { return u.err.Error() }
func (u unreadable) Unwrap() error        { return u.err }
func (u unreadable) Is(target error) bool { return target == ErrUnreadable }

// Options tune Check.
type Options struct {
	// Verifier checks checkpoint signatures. Required.
	Verifier note.Verifier
	// Against is a signed checkpoint saved earlier; Check proves the log
	// is consistent with it (the log only grew since).
	Against []byte
	// Progress, if set, is called now and then with the number of events
	// checked so far and the total.
	Progress func(done, total int64)
	// Log, if set, is the name of the log verified: each event must name
	// it (its log field), so that events moved between logs, or logs
	// renamed, are told though every hash matches.
	Log string
	// Readers is how many ranges of events Check reads at once; 0 means
	// one per CPU. With 1, Source.Walk is called for consecutive ranges in
	// order, which a Source reading one stream needs.
	Readers int
}

// Report summarises a successful check.
type Report struct {
	Size        int64     // events checked
	Root        tlog.Hash // root of the whole log
	Checkpoints int       // checkpoints of the Source whose signature and root were checked
	Against     *merkle.Checkpoint
}

// Error says what Check found wrong. Seq is the first bad event, or -1 when
// the fault is not tied to one event.
type Error struct {
	Seq     int64
	Problem string
}

func (e *Error) Error() string {
	if e.Seq >= 0 {
		return fmt.Sprintf("seq %d: %s", e.Seq, e.Problem)
	}
	return e.Problem
}

// errorf returns an *Error at seq.
func errorf(seq int64, format string, args ...any) error {
	return &Error{Seq: seq, Problem: fmt.Sprintf(format, args...)}
}

// Check verifies the first size events of src, and all its checkpoints:
//
//  1. each checkpoint's signature, and the size it claims (checkpoints);
//  2. the leaf hash of each event, from its canonical form, in parallel,
//     with the events all there, in order, received_at never decreasing
//     (leaves);
//  3. the tree grown from those leaves: its root at each checkpoint's size
//     and at Against's, and, for a TileSource, every stored tile (replay);
//  4. that a signed checkpoint covers the last event;
//  5. for a TileSource, a consistency proof of Against from its tiles.
//
// It returns an *Error for the first thing that does not hold, naming the
// first bad event where it can, and other errors when it cannot read src.
func Check(ctx context.Context, src Source, size int64, opts Options) (Report, error) {
	if opts.Verifier == nil {
		return Report{}, errors.New("verify: no verifier")
	}
	points, err := checkCheckpoints(ctx, src, size, opts.Verifier)
	if err != nil {
		return Report{}, err
	}
	// Events past the last checkpoint are reported after the replay, so
	// that a rewrite of earlier events is reported first.
	var covered int64
	for _, p := range points {
		covered = max(covered, p.size)
	}
	var against *merkle.Checkpoint
	if opts.Against != nil {
		c, err := openAgainst(opts.Against, opts.Verifier, size)
		if err != nil {
			return Report{}, err
		}
		against = &c
		points = append(points, point{size: c.Size, root: c.Hash, saved: true})
	}
	// A stored checkpoint of the same size as Against comes first.
	slices.SortStableFunc(points, func(a, b point) int { return cmp.Compare(a.size, b.size) })

	tiles, _ := src.(TileSource)
	r := newReplay(ctx, tiles, points)
	if opts.Log != "" {
		src = namedSource{src, opts.Log}
	}
	if err := r.growAll(src, size, opts); err != nil {
		return Report{}, err
	}
	if covered != size {
		return Report{}, errorf(covered, "no signed checkpoint covers events %d to %d: they were added outside Trail, or the checkpoints that did were removed", covered, size-1)
	}
	root := r.app.Root()
	if against != nil && tiles != nil {
		if err := proveAgainst(ctx, tiles, *against, size, root); err != nil {
			return Report{}, err
		}
	}
	return Report{Size: size, Root: root, Checkpoints: r.checked, Against: against}, nil
}

// namedSource is a Source whose events must name the log name.
type namedSource struct {
	Source
	name string
}

func (s namedSource) Walk(ctx context.Context, from, to int64, fn func(*event.Event) error) error {
	return s.Source.Walk(ctx, from, to, func(e *event.Event) error {
		if e.Log != s.name {
			return errorf(e.Seq, "the event names log %q, not %q: the logs' names were changed outside Trail, or events moved between logs", e.Log, s.name)
		}
		return fn(e)
	})
}

// proveAgainst checks a consistency proof, built from the stored tiles,
// that the tree of size events with the given root extends against.
func proveAgainst(ctx context.Context, tiles TileSource, against merkle.Checkpoint, size int64, root tlog.Hash) error {
	if against.Size == 0 {
		return nil // every tree extends the empty one
	}
	hr := merkle.TileHashReader(func(level int, index int64) ([]byte, error) {
		return tiles.Tile(ctx, level, index)
	})
	proof, err := tlog.ProveTree(size, against.Size, hr)
	if err == nil {
		err = tlog.CheckTree(proof, size, root, against.Size, against.Hash)
	}
	if err != nil {
		return errorf(-1, "not consistent with the checkpoint of size %d verified against: %v", against.Size, err)
	}
	return nil
}
