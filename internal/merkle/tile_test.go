package merkle

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestTileHashReaderProofs builds record and tree proofs over the tiles of a
// tree larger than the proofs' trees, so partial tiles are read wider than
// needed, and checks them against the reference.
func TestTileHashReaderProofs(t *testing.T) {
	const storeSize = 70000 + 37
	ref := newRef(t, storeSize)
	r := TileHashReader(mapReader(ref.tiles(t)))
	rng := rand.New(rand.NewPCG(3, 4))

	sizes := []int64{1, 2, 3, 7, 8, 255, 256, 257, 1000, 65535, 65536, 65537, storeSize}
	for range 40 {
		sizes = append(sizes, 1+rng.Int64N(storeSize))
	}
	for _, size := range sizes {
		root := ref.root(t, size)
		if got, err := tlog.TreeHash(size, r); err != nil || got != root {
			t.Fatalf("TreeHash(%d) over tiles = %v, %v, want %v", size, got, err, root)
		}
		leaves := []int64{0, size - 1}
		for range 20 {
			leaves = append(leaves, rng.Int64N(size))
		}
		for _, n := range leaves {
			p, err := tlog.ProveRecord(size, n, r)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d) = %v", size, n, err)
			}
			if want, _ := tlog.ProveRecord(size, n, ref); !slices.Equal(p, want) {
				t.Fatalf("ProveRecord(%d, %d) over tiles differs from the reference", size, n)
			}
			if err := VerifyInclusion(p, size, root, n, leafData(n)); err != nil {
				t.Fatalf("VerifyInclusion(ProveRecord(%d, %d)) = %v", size, n, err)
			}
			if err := VerifyInclusion(p, size, root, n, leafData(n+1)); err == nil {
				t.Fatalf("VerifyInclusion(ProveRecord(%d, %d)) with another leaf = nil error", size, n)
			}
		}
		olds := []int64{1, size}
		for range 10 {
			olds = append(olds, 1+rng.Int64N(size))
		}
		for _, old := range olds {
			p, err := tlog.ProveTree(size, old, r)
			if err != nil {
				t.Fatalf("ProveTree(%d, %d) = %v", size, old, err)
			}
			if want, _ := tlog.ProveTree(size, old, ref); !slices.Equal(p, want) {
				t.Fatalf("ProveTree(%d, %d) over tiles differs from the reference", size, old)
			}
			oldRoot := ref.root(t, old)
			if err := VerifyConsistency(p, size, root, old, oldRoot); err != nil {
				t.Fatalf("VerifyConsistency(ProveTree(%d, %d)) = %v", size, old, err)
			}
			if old < size {
				oldRoot[0] ^= 1
				if err := VerifyConsistency(p, size, root, old, oldRoot); err == nil {
					t.Fatalf("VerifyConsistency(ProveTree(%d, %d)) with a wrong old root = nil error", size, old)
				}
			}
		}
	}
}

// TestTileHashReaderTampered changes one byte of a stored tile and checks
// that a proof that depends on it no longer verifies.
func TestTileHashReaderTampered(t *testing.T) {
	const size = 70000
	ref := newRef(t, size)
	root := ref.root(t, size)
	tests := []struct {
		name   string
		level  int64 // tile level
		index  int64 // tile index
		hash   int   // hash within the tile
		record int64 // a record whose proof uses that hash
	}{
		// Leaf 1000's sibling is leaf 1001, in tile 0/3 at position 233.
		{"leaf sibling", 0, 3, 1001 - 3*256, 1000},
		// The proof of leaf 1000 holds the level-8 hash of leaves 512..767,
		// stored as hash 2 of tile 1/0.
		{"stored level 8 hash", 1, 0, 2, 1000},
		// The proof of leaf 900 holds the level-7 hash of leaves 768..895,
		// which the reader computes from the first half of tile 0/3.
		{"computed level 7 hash", 0, 3, 5, 900},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tiles := ref.tiles(t)
			r := TileHashReader(mapReader(tiles))
			p, err := tlog.ProveRecord(size, tt.record, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(p, size, root, tt.record, leafData(tt.record)); err != nil {
				t.Fatalf("before tampering: VerifyInclusion(%d) = %v", tt.record, err)
			}

			tiles[[2]int64{tt.level, tt.index}][tt.hash*tlog.HashSize+7] ^= 0x40
			p, err = tlog.ProveRecord(size, tt.record, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(p, size, root, tt.record, leafData(tt.record)); err == nil {
				t.Errorf("after tampering with tile %d/%d: VerifyInclusion(%d) = nil error", tt.level, tt.index, tt.record)
			}
			q, err := tlog.ProveTree(size, tt.record+1, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(q, size, root, tt.record+1, ref.root(t, tt.record+1)); err == nil {
				t.Errorf("after tampering with tile %d/%d: VerifyConsistency(%d) = nil error", tt.level, tt.index, tt.record+1)
			}
		})
	}
}

func TestTileHashReaderFetchesEachTileOnce(t *testing.T) {
	ref := newRef(t, 70000)
	tiles := ref.tiles(t)
	fetches := make(map[[2]int64]int)
	r := TileHashReader(func(level int, index int64) ([]byte, error) {
		fetches[[2]int64{int64(level), index}]++
		return mapReader(tiles)(level, index)
	})

	// Every hash of tile 0/0 and of every level it covers, and a few from
	// tiles 1/0 and 2/0.
	var indexes []int64
	for level := range TileHeight {
		for n := range int64(tileWidth >> level) {
			indexes = append(indexes, tlog.StoredHashIndex(level, n))
		}
	}
	indexes = append(indexes, tlog.StoredHashIndex(8, 0), tlog.StoredHashIndex(9, 3), tlog.StoredHashIndex(16, 0))
	rng := rand.New(rand.NewPCG(5, 6))
	rng.Shuffle(len(indexes), func(i, j int) { indexes[i], indexes[j] = indexes[j], indexes[i] })

	hashes, err := r.ReadHashes(indexes)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.ReadHashes(indexes)
	if !slices.Equal(hashes, want) {
		t.Error("ReadHashes over tiles differs from the reference")
	}
	wantFetches := map[[2]int64]int{{0, 0}: 1, {1, 0}: 1, {2, 0}: 1}
	if !maps.Equal(fetches, wantFetches) {
		t.Errorf("one ReadHashes call fetched tiles %v, want %v", fetches, wantFetches)
	}
}

func TestTileHashReaderErrors(t *testing.T) {
	ref := newRef(t, 1000)
	tiles := ref.tiles(t)
	full := tiles[[2]int64{0, 1}]
	errStore := errors.New("store is down")
	tests := []struct {
		name  string
		data  []byte
		err   error
		index int64
		short int64 // ShortTileError.FirstSeq wanted, or -1 for another error
	}{
		{"read error", nil, errStore, tlog.StoredHashIndex(0, 300), -1},
		{"empty tile", []byte{}, nil, tlog.StoredHashIndex(0, 256), 256},
		{"too narrow for leaf", full[:44*tlog.HashSize], nil, tlog.StoredHashIndex(0, 300), 300},
		{"too narrow for level 3", full[:44*tlog.HashSize], nil, tlog.StoredHashIndex(3, 37), 300},
		{"not whole hashes", full[:100], nil, tlog.StoredHashIndex(0, 256), -1},
		{"wider than a tile", append(append([]byte(nil), full...), full[:tlog.HashSize]...), nil, tlog.StoredHashIndex(0, 256), -1},
		{"negative index", full, nil, -5, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := TileHashReader(func(level int, index int64) ([]byte, error) {
				if level == 0 && index == 1 {
					return tt.data, tt.err
				}
				return mapReader(tiles)(level, index)
			})
			_, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, 5), tt.index})
			if err == nil {
				t.Fatalf("ReadHashes(%d) = nil error, want error", tt.index)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("ReadHashes(%d) = %v, want it to wrap %v", tt.index, err, tt.err)
			}
			var se *ShortTileError
			switch short := errors.As(err, &se); {
			case tt.short < 0 && short:
				t.Errorf("ReadHashes(%d) = %v, want an error other than a *ShortTileError", tt.index, err)
			case tt.short >= 0 && !short:
				t.Errorf("ReadHashes(%d) = %v, want a *ShortTileError", tt.index, err)
			case short && se.FirstSeq() != tt.short:
				t.Errorf("ReadHashes(%d) = %v: FirstSeq() = %d, want %d", tt.index, err, se.FirstSeq(), tt.short)
			}
		})
	}

	// A tile wide enough for the requested hash is fine.
	r := TileHashReader(func(level int, index int64) ([]byte, error) {
		return full[:45*tlog.HashSize], nil
	})
	got, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, 256+44), tlog.StoredHashIndex(2, 64+10)})
	want, _ := ref.ReadHashes([]int64{tlog.StoredHashIndex(0, 256+44), tlog.StoredHashIndex(2, 64+10)})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ReadHashes from a tile of exactly the needed width = %v, %v, want %v", got, err, want)
	}
}
