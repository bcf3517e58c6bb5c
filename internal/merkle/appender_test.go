package merkle

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// checkFlush checks that got holds exactly the tiles that tlog.NewTiles lists
// for growing the tree from oldSize to newSize, with the reference's data.
func checkFlush(t *testing.T, got []Tile, ref *refTree, oldSize, newSize int64) {
	t.Helper()
	want := tlog.NewTiles(TileHeight, oldSize, newSize)
	if len(got) != len(want) {
		t.Fatalf("Flush from %d to %d = %d tiles, want %d", oldSize, newSize, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Level != w.L || g.Index != w.N {
			t.Fatalf("Flush from %d to %d: tile %d is %d/%d, want %d/%d", oldSize, newSize, i, g.Level, g.Index, w.L, w.N)
		}
		if !bytes.Equal(g.Data, ref.tileData(t, w)) {
			t.Fatalf("Flush from %d to %d: tile %s has wrong data (%d bytes)", oldSize, newSize, w.Path(), len(g.Data))
		}
	}
}

func checkRightmost(t *testing.T, got []Tile, ref *refTree, size int64) {
	t.Helper()
	want := ref.rightmost(t, size)
	if len(got) != len(want) {
		t.Fatalf("Rightmost() at size %d = %d tiles, want %d", size, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Level != w.Level || g.Index != w.Index || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("Rightmost() at size %d: tile %d is %d/%d (%d bytes), want %d/%d (%d bytes)",
				size, i, g.Level, g.Index, len(g.Data), w.Level, w.Index, len(w.Data))
		}
	}
}

func TestEmptyRoot(t *testing.T) {
	a, err := NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Root(), tlog.Hash(sha256.Sum256(nil)); got != want {
		t.Errorf("empty Root() = %v, want SHA-256 of the empty string %v", got, want)
	}
	if got := a.Flush(); len(got) != 0 {
		t.Errorf("empty Flush() = %d tiles, want 0", len(got))
	}
	if got := a.Rightmost(); len(got) != 0 {
		t.Errorf("empty Rightmost() = %d tiles, want 0", len(got))
	}
}

// TestAppenderMatchesReference grows one tree to 70000 leaves, checking the
// root at every size, and flushes (and sometimes resumes from Rightmost) at
// random and at chosen sizes around tile boundaries.
func TestAppenderMatchesReference(t *testing.T) {
	const maxSize = 70000
	rng := rand.New(rand.NewPCG(1, 2))
	forced := map[int64]bool{1: true, 2: true, 255: true, 256: true, 257: true, 511: true, 512: true,
		1100: true, 5000: true, 65533: true, 65535: true, 65536: true, 65537: true, 65539: true, maxSize: true}

	ref := &refTree{}
	a, err := NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var flushed int64
	resumes := 0
	for ref.size < maxSize {
		n := ref.size
		ref.add(t)
		if got := a.Append(tlog.RecordHash(leafData(n))); got != n {
			t.Fatalf("Append at size %d = %d, want %d", n, got, n)
		}
		size := ref.size
		if got := a.Size(); got != size {
			t.Fatalf("Size() = %d, want %d", got, size)
		}
		if got, want := a.Root(), ref.root(t, size); got != want {
			t.Fatalf("Root() at size %d = %v, want %v", size, got, want)
		}
		// No random flushes between 1100 and 5000, so that one flush
		// returns many completed tiles.
		random := (size < 1100 || size > 5000) && rng.IntN(300) == 0
		if !forced[size] && !random {
			continue
		}
		checkFlush(t, a.Flush(), ref, flushed, size)
		flushed = size
		checkRightmost(t, a.Rightmost(), ref, size)
		if rng.IntN(2) == 0 {
			a, err = NewAppender(size, a.Rightmost())
			if err != nil {
				t.Fatalf("NewAppender(%d, Rightmost()) = %v", size, err)
			}
			resumes++
		}
	}
	if resumes < 50 {
		t.Errorf("only %d resumes; the test exercises too little", resumes)
	}
}

// TestNewAppenderResumes resumes trees of many sizes from the reference's
// rightmost tiles, given in reverse order, and grows them past the next tile
// boundary.
func TestNewAppenderResumes(t *testing.T) {
	const more = 257
	var sizes []int64
	for s := range int64(1101) {
		sizes = append(sizes, s)
	}
	sizes = append(sizes, 65533, 65534, 65535, 65536, 65537, 65538, 65539, 70000)
	ref := newRef(t, 70000+more)

	for _, size := range sizes {
		tiles := ref.rightmost(t, size)
		slices.Reverse(tiles)
		a, err := NewAppender(size, tiles)
		if err != nil {
			t.Fatalf("NewAppender(%d) = %v", size, err)
		}
		if got, want := a.Root(), ref.root(t, size); got != want {
			t.Fatalf("NewAppender(%d).Root() = %v, want %v", size, got, want)
		}
		if got := a.Flush(); len(got) != 0 {
			t.Fatalf("NewAppender(%d).Flush() = %d tiles, want 0", size, len(got))
		}
		for n := size; n < size+more; n++ {
			a.Append(tlog.RecordHash(leafData(n)))
			if got, want := a.Root(), ref.root(t, n+1); got != want {
				t.Fatalf("resumed at %d: Root() at size %d = %v, want %v", size, n+1, got, want)
			}
		}
		checkFlush(t, a.Flush(), ref, size, size+more)
	}
}

func TestNewAppenderRejects(t *testing.T) {
	ref := newRef(t, 65536+300)

	// At size 512 the level-0 tile 1 is full and its hash is the second
	// hash of the level-1 tile 0.
	good := ref.rightmost(t, 512)
	if _, err := NewAppender(512, good); err != nil {
		t.Fatalf("NewAppender(512, good tiles) = %v", err)
	}
	tampered := ref.rightmost(t, 512)
	tampered[0].Data[100] ^= 1

	big := ref.rightmost(t, 65536+300) // three levels
	if _, err := NewAppender(65536+300, big); err != nil {
		t.Fatalf("NewAppender(65836, good tiles) = %v", err)
	}
	tamperedAbove := ref.rightmost(t, 65536)
	tamperedAbove[1].Data[len(tamperedAbove[1].Data)-1] ^= 1

	short := ref.rightmost(t, 600)
	short[0].Data = short[0].Data[:len(short[0].Data)-tlog.HashSize]
	long := ref.rightmost(t, 600)
	long[0].Data = append(long[0].Data, make([]byte, tlog.HashSize)...)
	ragged := ref.rightmost(t, 600)
	ragged[0].Data = ragged[0].Data[:len(ragged[0].Data)-1]
	wrongIndex := ref.rightmost(t, 600)
	wrongIndex[0].Index--
	wrongLevel := ref.rightmost(t, 600)
	wrongLevel[1].Level = 2
	negativeLevel := ref.rightmost(t, 600)
	negativeLevel[1].Level = -1

	tests := []struct {
		name  string
		size  int64
		tiles []Tile
	}{
		{"negative size", -1, nil},
		{"no tiles", 512, nil},
		{"tiles for empty tree", 0, good},
		{"missing level", 512, good[:1]},
		{"extra level", 512, append(ref.rightmost(t, 512), big[2])},
		{"duplicate level", 512, []Tile{good[0], good[0]}},
		{"wrong size", 511, good},
		{"tiles of smaller tree", 600, ref.rightmost(t, 599)},
		{"tile too short", 600, short},
		{"tile too long", 600, long},
		{"tile not whole hashes", 600, ragged},
		{"wrong index", 600, wrongIndex},
		{"wrong level", 600, wrongLevel},
		{"negative level", 600, negativeLevel},
		{"full tile not matching above", 512, tampered},
		{"tile above not matching full tile", 65536, tamperedAbove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAppender(tt.size, tt.tiles); err == nil {
				t.Errorf("NewAppender(%d, %d tiles) = nil error, want error", tt.size, len(tt.tiles))
			}
		})
	}
}

// TestClone grows a tree and a clone of it with different leaves, and checks
// that each matches its own reference, including the tiles completed before
// the clone and not yet flushed.
func TestClone(t *testing.T) {
	refA := newRef(t, 700)
	a, err := NewAppender(700, refA.rightmost(t, 700))
	if err != nil {
		t.Fatal(err)
	}
	for refA.size < 800 { // completes level-0 tile 2 at 768
		a.Append(tlog.RecordHash(leafData(refA.size)))
		refA.add(t)
	}
	b := a.Clone()
	refB := refA.clone()
	for refA.size < 1100 {
		a.Append(tlog.RecordHash(leafData(refA.size)))
		refA.add(t)
		other := []byte("other " + string(leafData(refB.size)))
		b.Append(tlog.RecordHash(other))
		refB.addData(t, other)
	}
	if a.Root() == b.Root() {
		t.Fatal("a and its clone have the same root after different appends")
	}
	if got, want := a.Root(), refA.root(t, 1100); got != want {
		t.Errorf("a.Root() = %v, want %v", got, want)
	}
	if got, want := b.Root(), refB.root(t, 1100); got != want {
		t.Errorf("clone Root() = %v, want %v", got, want)
	}
	// The caller may keep and change what Flush returns.
	flushed := a.Flush()
	checkFlush(t, flushed, refA, 700, 1100)
	for _, tile := range flushed {
		clear(tile.Data)
	}
	checkFlush(t, b.Flush(), refB, 700, 1100)
	checkRightmost(t, a.Rightmost(), refA, 1100)
	checkRightmost(t, b.Rightmost(), refB, 1100)
}

// TestReturnedDataIsCopied changes the data that Flush and Rightmost return
// and checks that the Appender's tiles are unchanged.
func TestReturnedDataIsCopied(t *testing.T) {
	ref := newRef(t, 1000)
	a, err := NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range int64(900) {
		a.Append(tlog.RecordHash(leafData(n)))
	}
	for _, tile := range a.Flush() {
		clear(tile.Data)
	}
	for _, tile := range a.Rightmost() {
		clear(tile.Data)
	}
	for n := int64(900); n < 1000; n++ {
		a.Append(tlog.RecordHash(leafData(n)))
	}
	checkFlush(t, a.Flush(), ref, 900, 1000)
	checkRightmost(t, a.Rightmost(), ref, 1000)
}

func TestRightmostTiles(t *testing.T) {
	for size := int64(-1); size < 2000; size++ {
		// The last tile that NewTiles lists at each level is the rightmost.
		var want []TilePos
		for _, tt := range tlog.NewTiles(TileHeight, 0, max(size, 0)) {
			p := TilePos{Level: tt.L, Index: tt.N, Width: tt.W}
			if len(want) > 0 && want[len(want)-1].Level == tt.L {
				want[len(want)-1] = p
			} else {
				want = append(want, p)
			}
		}
		if got := RightmostTiles(size); !slices.Equal(got, want) {
			t.Errorf("RightmostTiles(%d) = %v, want %v", size, got, want)
		}
	}

	// For large trees, the rightmost tile of a level is the one holding the
	// level's last hash.
	for _, size := range []int64{1 << 40, 1<<48 + 5, 1<<56 - 1, 1<<56 + 1<<40 + 3, 1<<60 - 1} {
		var want []TilePos
		for level := 0; level < 8 && size>>(TileHeight*level) > 0; level++ {
			last := size>>(TileHeight*level) - 1
			tt := tlog.TileForIndex(TileHeight, tlog.StoredHashIndex(TileHeight*level, last))
			want = append(want, TilePos{Level: tt.L, Index: tt.N, Width: tt.W})
		}
		if got := RightmostTiles(size); !slices.Equal(got, want) {
			t.Errorf("RightmostTiles(%d) = %v, want %v", size, got, want)
		}
	}
}

// TestRightmostAt checks that RightmostAt returns a copy of the rightmost
// tile at a level only for that tile's index.
func TestRightmostAt(t *testing.T) {
	a, err := NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range int64(600) {
		a.Append(tlog.RecordHash(leafData(n)))
	}
	for _, want := range a.Rightmost() {
		got := a.RightmostAt(want.Level, want.Index)
		if !bytes.Equal(got, want.Data) {
			t.Errorf("RightmostAt(%d, %d) = %d bytes, want the rightmost tile's %d", want.Level, want.Index, len(got), len(want.Data))
		}
		if len(got) > 0 {
			got[0] ^= 1
			if bytes.Equal(a.RightmostAt(want.Level, want.Index), got) {
				t.Errorf("RightmostAt(%d, %d) returned the appender's own data", want.Level, want.Index)
			}
		}
		if a.RightmostAt(want.Level, want.Index-1) != nil {
			t.Errorf("RightmostAt(%d, %d), left of the rightmost tile, = data, want nil", want.Level, want.Index-1)
		}
	}
	if a.RightmostAt(5, 0) != nil || a.RightmostAt(-1, 0) != nil {
		t.Error("RightmostAt of a level the tree does not reach = data, want nil")
	}
}
