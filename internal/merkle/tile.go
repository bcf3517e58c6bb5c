// Package merkle holds the pure parts of Trail's log: the RFC 6962 Merkle
// tree of each log, stored as hash tiles, and the checkpoints that sign its
// root. It does no I/O: the storage layer reads and writes the tiles this
// package produces and consumes.
//
// The tree math, proofs and signatures come from golang.org/x/mod/sumdb/tlog
// and golang.org/x/mod/sumdb/note. Tiles follow the tlog-tiles layout with
// height 8, and checkpoints are tlog-checkpoint signed notes:
//
//   - https://www.rfc-editor.org/rfc/rfc6962#section-2.1
//   - https://c2sp.org/tlog-tiles
//   - https://c2sp.org/tlog-checkpoint
//   - https://c2sp.org/signed-note
package merkle

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of every tile: a full tile holds 2^8 = 256 hashes.
const TileHeight = 8

// tileWidth is the number of hashes in a full tile.
const tileWidth = 1 << TileHeight

// Tile is a tile's position and its data.
//
// The tile at Level L and Index N holds the hashes of tree level 8*L with
// indexes N*256 to N*256+W-1, concatenated, where W = len(Data)/32. A
// level-0 tile holds leaf hashes. A tile with W < 256 is partial and is
// replaced by wider versions as the tree grows.
type Tile struct {
	Level int
	Index int64
	Data  []byte
}

// TilePos is the position and width, in hashes, of a tile.
type TilePos struct {
	Level int
	Index int64
	Width int
}

// RightmostTiles lists, for a tree of the given size, the position and width
// of the rightmost tile at each level, in level order. These are the tiles a
// store must read to resume an [Appender]. An empty or negative size has no
// tiles.
func RightmostTiles(size int64) []TilePos {
	var tiles []TilePos
	for level := 0; level*TileHeight < 64; level++ {
		count := size >> (level * TileHeight) // hashes stored at tree level 8*level
		if count <= 0 {
			break
		}
		n := (count - 1) >> TileHeight
		tiles = append(tiles, TilePos{Level: level, Index: n, Width: int(count - n<<TileHeight)})
	}
	return tiles
}

// ShortTileError is the error of a tile too narrow for a hash that was
// read from it: a tile stored or computed narrower than the tree it is
// read for, which lacks the hashes of the events from FirstSeq on.
type ShortTileError struct {
	Level int
	Index int64
	Width int // hashes the tile holds
	Err   error
}

func (e *ShortTileError) Error() string {
	return fmt.Sprintf("merkle: tile %d/%d is too narrow: %v", e.Level, e.Index, e.Err)
}

func (e *ShortTileError) Unwrap() error { return e.Err }

// FirstSeq returns the first event under the hashes the tile lacks.
func (e *ShortTileError) FirstSeq() int64 { return FirstUncovered(e.Level, e.Index, e.Width) }

// FirstUncovered returns the first event under the hashes that tile
// (level, index) lacks when it holds width of them.
func FirstUncovered(level int, index int64, width int) int64 {
	return (index<<TileHeight + int64(width)) << (TileHeight * level)
}

// TileHashReader returns a [tlog.HashReader] that reads the stored hashes of
// a tree from its tiles, so that [tlog.ProveRecord], [tlog.ProveTree] and
// [tlog.TreeHash] can run over a store.
//
// readTile(level, index) must return the stored data of that tile. The data
// may be wider than needed, for example a tile of a larger tree; data that is
// too narrow for a requested hash makes ReadHashes fail with a
// *ShortTileError, and data that is not a whole number of hashes (at most
// 256) with another error. Each distinct tile is fetched at most
// once per ReadHashes call. An error from readTile is wrapped with %w, so a
// store's "not found" error stays visible to the caller.
//
// The reader does not authenticate the tiles: a proof built from tampered
// tiles does not verify against the true root, which is what callers check
// with [VerifyInclusion] and [VerifyConsistency].
func TileHashReader(readTile func(level int, index int64) ([]byte, error)) tlog.HashReader {
	return tileReader(readTile)
}

type tileReader func(level int, index int64) ([]byte, error)

func (r tileReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	type pos struct {
		level int
		index int64
	}
	fetched := make(map[pos][]byte)
	hashes := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("merkle: invalid stored hash index %d", x)
		}
		t := tlog.TileForIndex(TileHeight, x)
		p := pos{t.L, t.N}
		data, ok := fetched[p]
		if !ok {
			var err error
			data, err = r(t.L, t.N)
			if err != nil {
				return nil, fmt.Errorf("merkle: reading tile %d/%d: %w", t.L, t.N, err)
			}
			if len(data)%tlog.HashSize != 0 || len(data) > tileWidth*tlog.HashSize {
				return nil, fmt.Errorf("merkle: tile %d/%d has %d bytes", t.L, t.N, len(data))
			}
			fetched[p] = data
		}
		t.W = len(data) / tlog.HashSize
		h, err := tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, &ShortTileError{Level: t.L, Index: t.N, Width: t.W, Err: err}
		}
		hashes[i] = h
	}
	return hashes, nil
}

// VerifyInclusion checks that proof shows that the tree of the given size and
// root holds leafData as its leaf with index seq. The leaf hash is
// tlog.RecordHash(leafData), the RFC 6962 leaf hash.
func VerifyInclusion(proof tlog.RecordProof, size int64, root tlog.Hash, seq int64, leafData []byte) error {
	return tlog.CheckRecord(proof, size, root, seq, tlog.RecordHash(leafData))
}

// VerifyConsistency checks that proof shows that the tree of the given size
// and root extends the tree of oldSize and oldRoot. Both sizes must be at
// least 1 and oldSize at most size, as in [tlog.CheckTree].
func VerifyConsistency(proof tlog.TreeProof, size int64, root tlog.Hash, oldSize int64, oldRoot tlog.Hash) error {
	return tlog.CheckTree(proof, size, root, oldSize, oldRoot)
}
