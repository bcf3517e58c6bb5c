package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/trail-audit/trail/internal/merkle"
)

// replay grows the log's tree from its leaf hashes and checks it as it
// goes: the root at each checkpoint's size, and each tile the tree
// completes against the stored one.
type replay struct {
	ctx      context.Context
	tiles    TileSource // nil: the log keeps no tiles to check
	app      *merkle.Appender
	points   []point // in ascending size
	next     int     // points[next] is the first not yet reached
	signedTo int64   // size of the last stored checkpoint found to match
	checked  int     // stored checkpoints found to match
}

func newReplay(ctx context.Context, tiles TileSource, points []point) *replay {
	app, _ := merkle.NewAppender(0, nil)
	r := &replay{ctx: ctx, tiles: tiles, app: app, points: points}
	// The empty tree has no leaves to check.
	for r.next < len(points) && points[r.next].size == 0 {
		r.next++
	}
	return r
}

// growAll grows the tree from the leaves of events [0, size) of src, hashed
// a window at a time on opts.Readers goroutines, and checks the last tiles.
func (r *replay) growAll(src Source, size int64, opts Options) error {
	readers := opts.Readers
	if readers <= 0 {
		readers = runtime.GOMAXPROCS(0)
	}
	for w := range leafWindows(r.ctx, src, size, readers) {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err := r.grow(w); err != nil {
			return err
		}
		if opts.Progress != nil {
			opts.Progress(w.to, size)
		}
	}
	return r.checkTiles()
}

// grow appends the leaves of w to the tree. When the hashing of w stopped
// at a bad event, it grows the tree up to that event first: an event out
// of place (missing, or received before the one before it) may be a
// symptom of an earlier one, which a checkpoint or tile then names.
func (r *replay) grow(w *window) error {
	end := w.to
	var fault *Error
	if w.err != nil {
		if !errors.As(w.err, &fault) {
			return w.err
		}
		end = min(max(fault.Seq, w.from), w.to)
	}
	for i, h := range w.leaves[:end-w.from] {
		r.app.Append(h)
		n := w.from + int64(i) + 1
		if r.next < len(r.points) && r.points[r.next].size == n {
			if err := r.checkRoots(n); err != nil {
				return err
			}
		}
		if n%(1<<merkle.TileHeight) == 0 {
			if err := r.checkTiles(); err != nil {
				return err
			}
		}
	}
	if fault != nil {
		if err := r.checkTiles(); err != nil {
			return err
		}
		return fault
	}
	return nil
}

// checkRoots checks the root of the tree, of n leaves, against every
// checkpoint of that size.
func (r *replay) checkRoots(n int64) error {
	for ; r.next < len(r.points) && r.points[r.next].size == n; r.next++ {
		p := r.points[r.next]
		if r.app.Root() != p.root {
			// A tile names the bad event where a root cannot.
			if err := r.checkTiles(); err != nil {
				return err
			}
			return r.rootMismatch(p)
		}
		if !p.saved {
			r.checked++
			r.signedTo = n
		}
	}
	return nil
}

// rootMismatch says what a checkpoint whose root is not the tree's means.
func (r *replay) rootMismatch(p point) error {
	n := p.size
	if p.saved {
		return errorf(-1, "not consistent with the checkpoint verified against: the first %d events differ from the history it signed (the log was rewritten or forked)", n)
	}
	// The checkpoints before it matched, so the change is in the events
	// after the last of them.
	what := fmt.Sprintf("root of the first %d events does not match the signed checkpoint of that size", n)
	if r.signedTo > 0 {
		what += fmt.Sprintf(", while that of the first %d does", r.signedTo)
	}
	if n-r.signedTo == 1 {
		return errorf(r.signedTo, "%s: event %d was altered", what, r.signedTo)
	}
	return errorf(-1, "%s: history was rewritten among events %d to %d", what, r.signedTo, n-1)
}

// checkTiles compares the tiles the tree changed since the last call with
// the stored ones, and names the first event under the first hash that
// differs.
func (r *replay) checkTiles() error {
	flushed := r.app.Flush()
	if r.tiles == nil {
		return nil
	}
	for _, t := range flushed {
		data, err := r.tiles.Tile(r.ctx, t.Level, t.Index)
		if err != nil {
			return fmt.Errorf("read tile %d/%d: %w", t.Level, t.Index, err)
		}
		if len(data) >= len(t.Data) && bytes.Equal(data[:len(t.Data)], t.Data) {
			continue
		}
		first := t.Index << (merkle.TileHeight * (t.Level + 1)) // first seq under the tile
		for i := 0; i < len(t.Data)/32; i++ {
			if len(data) < (i+1)*32 || !bytes.Equal(data[i*32:(i+1)*32], t.Data[i*32:(i+1)*32]) {
				first += int64(i) << (merkle.TileHeight * t.Level)
				break
			}
		}
		return errorf(first, "stored Merkle hashes (tile %d/%d) do not match the events: an event or a stored hash was altered", t.Level, t.Index)
	}
	return nil
}
