package merkle

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// refTree is the reference the tests compare against: tlog's own algorithm,
// with every stored hash kept in a slice.
type refTree struct {
	hashes []tlog.Hash
	size   int64
}

func (r *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(r.hashes)) {
			return nil, fmt.Errorf("reference has no stored hash %d", x)
		}
		out[i] = r.hashes[x]
	}
	return out, nil
}

// add appends the leaf leafData(r.size).
func (r *refTree) add(t testing.TB) {
	t.Helper()
	r.addData(t, leafData(r.size))
}

func (r *refTree) addData(t testing.TB, data []byte) {
	t.Helper()
	hs, err := tlog.StoredHashes(r.size, data, r)
	if err != nil {
		t.Fatal(err)
	}
	r.hashes = append(r.hashes, hs...)
	r.size++
}

func (r *refTree) clone() *refTree {
	return &refTree{hashes: append([]tlog.Hash(nil), r.hashes...), size: r.size}
}

func (r *refTree) root(t testing.TB, size int64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(size, r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (r *refTree) tileData(t testing.TB, tt tlog.Tile) []byte {
	t.Helper()
	data, err := tlog.ReadTileData(tt, r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// rightmost returns the rightmost tiles of the reference at size.
func (r *refTree) rightmost(t testing.TB, size int64) []Tile {
	t.Helper()
	var tiles []Tile
	for _, p := range RightmostTiles(size) {
		data := r.tileData(t, tlog.Tile{H: TileHeight, L: p.Level, N: p.Index, W: p.Width})
		tiles = append(tiles, Tile{Level: p.Level, Index: p.Index, Data: data})
	}
	return tiles
}

// tiles returns every tile of the reference at its current size, keyed by
// level and index.
func (r *refTree) tiles(t testing.TB) map[[2]int64][]byte {
	t.Helper()
	m := make(map[[2]int64][]byte)
	for _, tt := range tlog.NewTiles(TileHeight, 0, r.size) {
		m[[2]int64{int64(tt.L), tt.N}] = r.tileData(t, tt)
	}
	return m
}

func newRef(t testing.TB, size int64) *refTree {
	t.Helper()
	r := &refTree{}
	for r.size < size {
		r.add(t)
	}
	return r
}

func leafData(i int64) []byte {
	return fmt.Appendf(nil, "leaf %d", i)
}

// mapReader reads tiles from a map as a store would.
func mapReader(m map[[2]int64][]byte) func(int, int64) ([]byte, error) {
	return func(level int, index int64) ([]byte, error) {
		data, ok := m[[2]int64{int64(level), index}]
		if !ok {
			return nil, errTileNotFound
		}
		return data, nil
	}
}

var errTileNotFound = fmt.Errorf("tile not found")
