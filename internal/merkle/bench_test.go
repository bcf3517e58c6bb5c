package merkle

import (
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

const benchSize = 1 << 20

// benchTree is a tree of benchSize leaves: its Appender and all its tiles.
var benchTree = sync.OnceValues(func() (*Appender, map[[2]int64][]byte) {
	a, err := NewAppender(0, nil)
	if err != nil {
		panic(err)
	}
	tiles := make(map[[2]int64][]byte)
	for n := range int64(benchSize) {
		a.Append(tlog.RecordHash(leafData(n)))
		if n%1000 == 0 {
			for _, t := range a.Flush() {
				tiles[[2]int64{int64(t.Level), t.Index}] = t.Data
			}
		}
	}
	for _, t := range a.Flush() {
		tiles[[2]int64{int64(t.Level), t.Index}] = t.Data
	}
	return a, tiles
})

func BenchmarkAppend(b *testing.B) {
	a, err := NewAppender(0, nil)
	if err != nil {
		b.Fatal(err)
	}
	leaf := tlog.RecordHash([]byte("leaf"))
	for b.Loop() {
		a.Append(leaf)
	}
}

func BenchmarkAppendFlush256(b *testing.B) {
	a, err := NewAppender(0, nil)
	if err != nil {
		b.Fatal(err)
	}
	leaf := tlog.RecordHash([]byte("leaf"))
	for b.Loop() {
		if a.Append(leaf)%256 == 255 {
			a.Flush()
		}
	}
}

func BenchmarkRoot(b *testing.B) {
	a, _ := benchTree()
	a = a.Clone()
	a.Append(tlog.RecordHash([]byte("one more"))) // 2^20+1: two frontier hashes
	for b.Loop() {
		a.Root()
	}
}

func BenchmarkNewAppender(b *testing.B) {
	a, _ := benchTree()
	a = a.Clone()
	for range 12345 {
		a.Append(tlog.RecordHash([]byte("more")))
	}
	size, rightmost := a.Size(), a.Rightmost()
	for b.Loop() {
		if _, err := NewAppender(size, rightmost); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProveRecord(b *testing.B) {
	_, tiles := benchTree()
	r := TileHashReader(mapReader(tiles))
	rng := rand.New(rand.NewPCG(7, 8))
	for b.Loop() {
		if _, err := tlog.ProveRecord(benchSize, rng.Int64N(benchSize), r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProveTree(b *testing.B) {
	_, tiles := benchTree()
	r := TileHashReader(mapReader(tiles))
	rng := rand.New(rand.NewPCG(9, 10))
	for b.Loop() {
		if _, err := tlog.ProveTree(benchSize, 1+rng.Int64N(benchSize), r); err != nil {
			b.Fatal(err)
		}
	}
}
