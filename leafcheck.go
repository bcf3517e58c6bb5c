package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// leafCheck checks events, met in ascending seq, against their leaves in
// the tree of the log's latest signed checkpoint, so that a stream of
// them (an export) never passes off an altered event as the log's: each
// event's canonical form must hash to its leaf in the stored level-0 tile,
// read once per 256 events, as EntryBundle checks. Where the checkpoint
// ends inside a tile, whose stored hashes a backend may derive from the
// events themselves, the tree's root is computed and compared with the
// checkpoint's before any event of that tile passes. Events past the
// checkpoint are not checked.
type leafCheck struct {
	ctx    context.Context
	l      *Log
	tree   tlog.Tree
	tile   int64 // the level-0 tile whose leaves are in leaves; -1 none
	leaves []byte
}

// newLeafCheck returns a check against the log's latest signed
// checkpoint, or the error that reading it gave (a *DamagedError when it
// does not verify). An empty log has nothing to check.
func (l *Log) newLeafCheck(ctx context.Context) (*leafCheck, error) {
	lc := &leafCheck{ctx: ctx, l: l, tile: -1}
	if l.Size() == 0 {
		return lc, nil
	}
	signed, err := l.Checkpoint()
	if err != nil {
		return nil, err
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil {
		return nil, &DamagedError{Seq: max(l.Size()-1, 0), Problem: "its latest checkpoint does not verify with the log's key", Err: err}
	}
	lc.tree = tlog.Tree{N: c.Size, Hash: c.Hash}
	return lc, nil
}

// leafHashes returns the leaf hashes of evs, hashed on up to GOMAXPROCS
// goroutines: hashing is most of what checking them costs.
func leafHashes(evs []*event.Event) []tlog.Hash {
	out := make([]tlog.Hash, len(evs))
	workers := min(runtime.GOMAXPROCS(0), len(evs)/256+1)
	per := (len(evs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(evs); lo += per {
		wg.Go(func() {
			var buf []byte
			for i := lo; i < min(lo+per, len(evs)); i++ {
				buf = canon.Append(buf[:0], evs[i])
				out[i] = tlog.RecordHash(buf)
			}
		})
	}
	wg.Wait()
	return out
}

// check returns a *DamagedError if e, whose leaf hash is h, does not
// hash to its leaf.
func (lc *leafCheck) check(e *event.Event, h tlog.Hash) error {
	if e.Seq < 0 || e.Seq >= lc.tree.N {
		return nil
	}
	if t := e.Seq / TileWidth; t != lc.tile {
		if err := lc.load(t); err != nil {
			return err
		}
	}
	at := int(e.Seq%TileWidth) * tlog.HashSize
	if !bytes.Equal(h[:], lc.leaves[at:at+tlog.HashSize]) {
		return &DamagedError{Seq: e.Seq, Problem: fmt.Sprintf(
			"it does not hash to its leaf in the tree of the signed checkpoint of size %d (the event or the stored Merkle hashes were altered)", lc.tree.N)}
	}
	return nil
}

// load reads the leaves of level-0 tile t below the checkpoint's size.
func (lc *leafCheck) load(t int64) error {
	lc.tile = -1
	first := t * TileWidth
	n := min(TileWidth, lc.tree.N-first)
	if n == TileWidth {
		// A full tile, read as stored: not through the tile cache, which
		// a whole export would only churn.
		data, ok := lc.l.tiles.get(0, t)
		if !ok {
			var err error
			if data, err = lc.l.db.st.Tile(lc.ctx, lc.l.info.ID, 0, t); errors.Is(err, ErrNotFound) {
				return missingTile(0, t)
			} else if err != nil {
				return damaged(err)
			}
		}
		if len(data) < TileWidth*tlog.HashSize {
			return &DamagedError{Seq: first, Problem: fmt.Sprintf("the stored Merkle hashes of tile 0/%d are %d bytes, not the %d of a full tile", t, len(data), TileWidth*tlog.HashSize)}
		}
		lc.tile, lc.leaves = t, data
		return nil
	}
	// The checkpoint ends inside the tile, whose stored hashes the
	// store may derive from the events.
	data, err := lc.l.HashTile(lc.ctx, 0, t, int(n))
	if err != nil {
		return err
	}
	root, err := tlog.TreeHash(lc.tree.N, lc.l.hashReader(lc.ctx))
	if err != nil {
		return err
	}
	if root != lc.tree.Hash {
		return &DamagedError{Seq: first, Problem: fmt.Sprintf(
			"events %d to %d with the stored Merkle hashes do not give the root of the signed checkpoint of size %d (one of them, or the stored hashes, were altered; trail verify names which)",
			first, lc.tree.N-1, lc.tree.N)}
	}
	lc.tile, lc.leaves = t, data
	return nil
}
