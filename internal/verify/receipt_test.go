package verify_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/verify"
)

// receiptFixture is a tree of three events signed as Trail signs its
// checkpoints, and the receipt of the event at seq 1.
func receiptFixture(t testing.TB) (receipt []byte, v note.Verifier) {
	t.Helper()
	skey, vkey, err := merkle.NewKey("example.com/trail/acme")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	var hashes []tlog.Hash
	for i := range 3 {
		at := time.Unix(1796000000, 0).UTC()
		e := event.Event{ID: "01M969746300000002G8NK7BC7", Seq: int64(i), Log: "acme", ReceivedAt: at, Time: at, Actor: event.Actor{ID: "ana"}, Action: "user.login", Outcome: event.Success, Targets: []event.Target{}}
		leaf := canon.Append(nil, &e)
		leaves = append(leaves, leaf)
		stored, err := tlog.StoredHashes(int64(i), leaf, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ix))
			for j, x := range ix {
				out[j] = hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, stored...)
	}
	hr := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for j, x := range ix {
			out[j] = hashes[x]
		}
		return out, nil
	})
	root, err := tlog.TreeHash(3, hr)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: "example.com/trail/acme", Size: 3, Hash: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := tlog.ProveRecord(3, 1, hr)
	if err != nil {
		t.Fatal(err)
	}
	return verify.MarshalReceipt(leaves[1], 1, proof, signed), v
}

func TestCheckReceipt(t *testing.T) {
	receipt, v := receiptFixture(t)
	r, err := verify.CheckReceipt(receipt, v)
	if err != nil || r.Event.Seq != 1 || r.Checkpoint.Size != 3 {
		t.Fatalf("CheckReceipt = %+v, %v", r, err)
	}
	// Every byte changed, one at a time, makes the receipt fail or leaves
	// it meaning the same: never a receipt of another event.
	for i := range receipt {
		bad := bytes.Clone(receipt)
		bad[i] ^= 0x01
		got, err := verify.CheckReceipt(bad, v)
		if err == nil && (got.Event.Seq != 1 || !bytes.Equal(canon.Append(nil, got.Event), canon.Append(nil, r.Event))) {
			t.Fatalf("byte %d changed: CheckReceipt proves another event: %+v", i, got.Event)
		}
		if err != nil && !errors.Is(err, verify.ErrBadReceipt) {
			t.Fatalf("byte %d changed: error %v does not match ErrBadReceipt", i, err)
		}
	}
}

// FuzzCheckReceipt: any input is refused or proves an event the
// checkpoint's tree holds; it never panics.
func FuzzCheckReceipt(f *testing.F) {
	receipt, v := receiptFixture(f)
	f.Add(receipt)
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 1\n\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra e30=\nindex 18446744073709551615\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := verify.CheckReceipt(data, v)
		if err == nil && (r.Event == nil || r.Event.Seq < 0 || r.Event.Seq >= r.Checkpoint.Size) {
			t.Fatalf("accepted a receipt of seq %v in a tree of %d", r.Event, r.Checkpoint.Size)
		}
	})
}
