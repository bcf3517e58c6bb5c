package merkle

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// Appender grows a tree in memory.
//
// It holds only the right edge of the tree: the frontier (the roots of the
// complete subtrees that make up the tree, at most 64 hashes) and the
// rightmost tile at each tile level. Appending costs O(log n) hashing however
// large the tree is.
//
// An Appender is not safe for concurrent use.
type Appender struct {
	size int64

	// frontier[i] is the hash of the complete subtree at tree level i with
	// index size>>i - 1. It is set only where bit i of size is 1.
	frontier [64]tlog.Hash

	// edge[L] is the rightmost tile at tile level L, and dirty[L] says
	// whether it changed since the last Flush.
	edge  []Tile
	dirty []bool

	// done holds the tiles that were completed and then left behind since
	// the last Flush.
	done []Tile
}

// NewAppender resumes a tree of the given size.
//
// rightmost must hold, for each tile level, the rightmost tile of a tree of
// that size, in any order: the positions and widths that [RightmostTiles]
// lists, with their stored data. For size 0 it must be empty. NewAppender
// returns an error if a tile is missing, extra, out of place or of the wrong
// width, or if a full tile does not hash to the last hash of the tile above
// it. It keeps copies of the tiles' data.
func NewAppender(size int64, rightmost []Tile) (*Appender, error) {
	if size < 0 {
		return nil, fmt.Errorf("merkle: negative tree size %d", size)
	}
	want := RightmostTiles(size)
	if len(rightmost) != len(want) {
		return nil, fmt.Errorf("merkle: tree of size %d has %d tile levels, got %d tiles", size, len(want), len(rightmost))
	}
	a := &Appender{
		size:  size,
		edge:  make([]Tile, len(want)),
		dirty: make([]bool, len(want)),
	}
	for _, t := range rightmost {
		if t.Level < 0 || t.Level >= len(want) {
			return nil, fmt.Errorf("merkle: tree of size %d has no tile level %d", size, t.Level)
		}
		if a.edge[t.Level].Data != nil {
			return nil, fmt.Errorf("merkle: two tiles at level %d", t.Level)
		}
		w := want[t.Level]
		if t.Index != w.Index || len(t.Data) != w.Width*tlog.HashSize {
			return nil, fmt.Errorf("merkle: got tile %d/%d with %d bytes, want tile %d/%d with %d hashes",
				t.Level, t.Index, len(t.Data), w.Level, w.Index, w.Width)
		}
		a.edge[t.Level] = cloneTile(t)
	}

	// A full tile's subtree hash is the last hash of the tile above it.
	for level := 0; level+1 < len(a.edge); level++ {
		t := a.edge[level]
		if len(t.Data) < tileWidth*tlog.HashSize {
			continue
		}
		tt := tlog.Tile{H: TileHeight, L: level, N: t.Index, W: tileWidth}
		top := TileHeight*level + TileHeight - 1
		left, err1 := tlog.HashFromTile(tt, t.Data, tlog.StoredHashIndex(top, 2*t.Index))
		right, err2 := tlog.HashFromTile(tt, t.Data, tlog.StoredHashIndex(top, 2*t.Index+1))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("merkle: tile %d/%d: %v", level, t.Index, err)
		}
		above := a.edge[level+1].Data
		if h := tlog.NodeHash(left, right); !bytes.Equal(above[len(above)-tlog.HashSize:], h[:]) {
			return nil, fmt.Errorf("merkle: tile %d/%d does not match the tile above it", level, t.Index)
		}
	}

	// Read the frontier out of the tiles.
	r := TileHashReader(func(level int, index int64) ([]byte, error) {
		if level < len(a.edge) && a.edge[level].Index == index {
			return a.edge[level].Data, nil
		}
		return nil, errors.New("not a rightmost tile")
	})
	var levels []int
	var indexes []int64
	for i := range 63 {
		if size>>i&1 == 1 {
			levels = append(levels, i)
			indexes = append(indexes, tlog.StoredHashIndex(i, size>>i-1))
		}
	}
	hashes, err := r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	for k, i := range levels {
		a.frontier[i] = hashes[k]
	}
	return a, nil
}

// Size returns the number of leaves in the tree.
func (a *Appender) Size() int64 {
	return a.size
}

// Append adds a leaf with the given record hash, tlog.RecordHash of the leaf
// data, and returns its index.
func (a *Appender) Append(leaf tlog.Hash) int64 {
	n := a.size
	// hashes[k] is the new hash at tree level k, index n>>k.
	hashes, err := tlog.StoredHashesForRecordHash(n, leaf, tlog.HashReaderFunc(a.readFrontier))
	if err != nil {
		panic("merkle: appender frontier is inconsistent: " + err.Error())
	}
	for level := 0; level*TileHeight < len(hashes); level++ {
		a.push(level, n>>(level*TileHeight), hashes[level*TileHeight])
	}

	// The tree of size n+1 ends with a complete subtree at level m, the
	// highest new hash, and has no complete subtrees to its right.
	m := len(hashes) - 1
	clear(a.frontier[:m])
	a.frontier[m] = hashes[m]
	a.size = n + 1
	return n
}

// push stores h as the hash with index i at tree level TileHeight*level.
func (a *Appender) push(level int, i int64, h tlog.Hash) {
	n := i >> TileHeight
	switch {
	case level == len(a.edge):
		a.edge = append(a.edge, newTile(level, n))
		a.dirty = append(a.dirty, false)
	case i%tileWidth == 0:
		if a.dirty[level] {
			a.done = append(a.done, a.edge[level])
		}
		a.edge[level] = newTile(level, n)
	}
	a.edge[level].Data = append(a.edge[level].Data, h[:]...)
	a.dirty[level] = true
}

// readFrontier is a tlog.HashReader that reads the frontier hashes.
func (a *Appender) readFrontier(indexes []int64) ([]tlog.Hash, error) {
	hashes := make([]tlog.Hash, len(indexes))
	for k, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= 63 || a.size>>level&1 == 0 || n != a.size>>level-1 {
			return nil, fmt.Errorf("merkle: stored hash %d is not on the frontier of a tree of size %d", x, a.size)
		}
		hashes[k] = a.frontier[level]
	}
	return hashes, nil
}

// Root returns the root hash of the tree. For the empty tree it is the
// RFC 6962 empty tree hash, SHA-256 of the empty string, as tlog.TreeHash
// returns.
func (a *Appender) Root() tlog.Hash {
	h, err := tlog.TreeHash(a.size, tlog.HashReaderFunc(a.readFrontier))
	if err != nil {
		panic("merkle: appender frontier is inconsistent: " + err.Error())
	}
	return h
}

// Flush returns every tile whose data changed since the previous Flush, or
// since NewAppender: the tiles completed in the meantime (full, 256 hashes)
// and the current partial or just-completed rightmost tile of each level
// that got new hashes. These are the tiles tlog.NewTiles(8, old, new) lists,
// sorted by level and then index. The caller may keep the returned data.
func (a *Appender) Flush() []Tile {
	tiles := a.done
	a.done = nil
	for level, t := range a.edge {
		if a.dirty[level] {
			tiles = append(tiles, Tile{Level: t.Level, Index: t.Index, Data: bytes.Clone(t.Data)})
			a.dirty[level] = false
		}
	}
	slices.SortFunc(tiles, func(x, y Tile) int {
		return cmp.Or(cmp.Compare(x.Level, y.Level), cmp.Compare(x.Index, y.Index))
	})
	return tiles
}

// Rightmost returns a copy of the rightmost tile at each level, in level
// order: what NewAppender takes to resume the tree.
func (a *Appender) Rightmost() []Tile {
	tiles := make([]Tile, len(a.edge))
	for i, t := range a.edge {
		tiles[i] = Tile{Level: t.Level, Index: t.Index, Data: bytes.Clone(t.Data)}
	}
	return tiles
}

// RightmostAt returns a copy of the data of the rightmost tile at level if
// its index is index, else nil.
func (a *Appender) RightmostAt(level int, index int64) []byte {
	if level < 0 || level >= len(a.edge) || a.edge[level].Index != index || len(a.edge[level].Data) == 0 {
		return nil
	}
	return bytes.Clone(a.edge[level].Data)
}

// Clone returns an independent copy of a, including the tiles that a's next
// Flush would return. A caller can append to a clone and keep a to roll back
// to if committing the clone's tiles fails.
func (a *Appender) Clone() *Appender {
	b := *a
	b.edge = make([]Tile, len(a.edge))
	for i, t := range a.edge {
		b.edge[i] = cloneTile(t)
	}
	b.dirty = slices.Clone(a.dirty)
	b.done = make([]Tile, len(a.done))
	for i, t := range a.done {
		b.done[i] = cloneTile(t)
	}
	return &b
}

// newTile returns an empty tile with room for a full tile's data.
func newTile(level int, index int64) Tile {
	return Tile{Level: level, Index: index, Data: make([]byte, 0, tileWidth*tlog.HashSize)}
}

// cloneTile returns a copy of t with room for a full tile's data.
func cloneTile(t Tile) Tile {
	c := newTile(t.Level, t.Index)
	c.Data = append(c.Data, t.Data...)
	return c
}
