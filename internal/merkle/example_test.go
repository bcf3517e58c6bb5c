package merkle_test

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/merkle"
)

// This example grows a tree, stores its tiles in a map, resumes it from its
// rightmost tiles and proves that it holds a record.
func ExampleAppender() {
	store := make(map[[2]int64][]byte)
	save := func(tiles []merkle.Tile) {
		for _, t := range tiles {
			store[[2]int64{int64(t.Level), t.Index}] = t.Data
		}
	}

	a, _ := merkle.NewAppender(0, nil)
	for i := range 1000 {
		a.Append(tlog.RecordHash(fmt.Appendf(nil, "record %d", i)))
	}
	save(a.Flush())

	// Resume from what a store would read back.
	var rightmost []merkle.Tile
	for _, p := range merkle.RightmostTiles(a.Size()) {
		rightmost = append(rightmost, merkle.Tile{Level: p.Level, Index: p.Index, Data: store[[2]int64{int64(p.Level), p.Index}]})
	}
	b, err := merkle.NewAppender(a.Size(), rightmost)
	if err != nil {
		panic(err)
	}
	b.Append(tlog.RecordHash([]byte("record 1000")))
	save(b.Flush())
	size, root := b.Size(), b.Root()

	r := merkle.TileHashReader(func(level int, index int64) ([]byte, error) {
		data, ok := store[[2]int64{int64(level), index}]
		if !ok {
			return nil, fmt.Errorf("no tile %d/%d", level, index)
		}
		return data, nil
	})
	proof, err := tlog.ProveRecord(size, 123, r)
	if err != nil {
		panic(err)
	}
	fmt.Println("size:", size)
	fmt.Println("proof hashes:", len(proof))
	fmt.Println("record 123:", merkle.VerifyInclusion(proof, size, root, 123, []byte("record 123")))
	fmt.Println("forged 123:", merkle.VerifyInclusion(proof, size, root, 123, []byte("forged")) != nil)
	// Output:
	// size: 1001
	// proof hashes: 10
	// record 123: <nil>
	// forged 123: true
}

func ExampleSign() {
	skey, vkey, err := merkle.NewKey("trail.example/audit")
	if err != nil {
		panic(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)

	a, _ := merkle.NewAppender(0, nil)
	a.Append(tlog.RecordHash([]byte("first event"))) // a one-leaf tree's root is its leaf hash
	c := merkle.Checkpoint{Origin: "trail.example/audit", Size: a.Size(), Hash: a.Root()}
	signed, err := merkle.Sign(c, signer)
	if err != nil {
		panic(err)
	}

	opened, _, err := merkle.Open(signed, verifier)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s", opened.Marshal())
	// Output:
	// trail.example/audit
	// 1
	// hZ922O5HIPwgNcUroXbZZURsdDWPWbUjLBCFQOuBHaY=
}
