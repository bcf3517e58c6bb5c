package trail_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/policy"
)

// receiptLog returns a log of n events and its events.
func receiptLog(t *testing.T, n int) (*trail.Log, []*event.Event) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, filepath.Join(t.TempDir(), "data"), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for i := range n {
		r, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("u_%d", i)}, Action: "user.login"})
		if err != nil {
			t.Fatal(err)
		}
		e, err := l.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	return l, evs
}

// TestReceipts makes the receipt of every event of a log and checks it
// as an app would, offline: as a C2SP tlog-proof read with
// transparency-dev/formats and checked with tlog alone, and with
// client.CheckReceipt, which refuses every alteration.
func TestReceipts(t *testing.T) {
	ctx := context.Background()
	l, evs := receiptLog(t, 11)
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		receipt, err := l.Receipt(ctx, e, signed)
		if err != nil {
			t.Fatalf("Receipt(seq %d): %v", e.Seq, err)
		}
		// Independently: the tlog-proof's parts prove the event's leaf.
		var p proof.TLogProof
		if err := p.Unmarshal(receipt); err != nil {
			t.Fatalf("seq %d: not a tlog-proof: %v\n%s", e.Seq, err, receipt)
		}
		if p.Index != uint64(e.Seq) || !bytes.Equal(p.ExtraData, canon.Append(nil, e)) || !bytes.Equal(p.Checkpoint, signed) {
			t.Fatalf("seq %d: tlog-proof index %d, extra %q, checkpoint %q", e.Seq, p.Index, p.ExtraData, p.Checkpoint)
		}
		size, root := openTree(t, p.Checkpoint, l.VerifierKey(), l.Origin())
		rp := make(tlog.RecordProof, len(p.Hashes))
		for i, h := range p.Hashes {
			rp[i] = h
		}
		if err := tlog.CheckRecord(rp, size, root, e.Seq, tlog.RecordHash(p.ExtraData)); err != nil {
			t.Fatalf("seq %d: tlog.CheckRecord: %v", e.Seq, err)
		}
		got, err := client.CheckReceipt(receipt, l.VerifierKey(), nil)
		if err != nil {
			t.Fatalf("seq %d: CheckReceipt: %v", e.Seq, err)
		}
		// Blank lines added after it (echo, an editor) change nothing.
		if _, err := client.CheckReceipt(append(bytes.Clone(receipt), "\n\n"...), l.VerifierKey(), nil); err != nil {
			t.Fatalf("seq %d: CheckReceipt of the receipt and two blank lines: %v", e.Seq, err)
		}
		if got.Event.ID != e.ID || got.Checkpoint.Size != int64(len(evs)) {
			t.Fatalf("seq %d: CheckReceipt gave event %s in %d events", e.Seq, got.Event.ID, got.Checkpoint.Size)
		}
	}

	receipt, err := l.Receipt(ctx, evs[3], signed)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := note.GenerateKey(rand.Reader, l.Origin())
	if err != nil {
		t.Fatal(err)
	}
	var p proof.TLogProof
	if err := p.Unmarshal(receipt); err != nil {
		t.Fatal(err)
	}
	altered := func(f func(p *proof.TLogProof)) []byte {
		q := p
		q.Hashes = append([][32]byte(nil), p.Hashes...)
		f(&q)
		return q.Marshal()
	}
	for _, c := range []struct {
		name, want string
		receipt    []byte
		key        string
	}{
		{"another key", "checkpoint", receipt, otherKey},
		{"not a proof", "not a tlog-proof", []byte("hello\n"), l.VerifierKey()},
		{"empty", "not a tlog-proof", nil, l.VerifierKey()},
		{"no event", "carries no event", altered(func(q *proof.TLogProof) { q.ExtraData = nil }), l.VerifierKey()},
		{"event edited", "does not reach", altered(func(q *proof.TLogProof) {
			q.ExtraData = bytes.Replace(q.ExtraData, []byte("u_3"), []byte("u_4"), 1)
		}), l.VerifierKey()},
		{"event not canonical", "canonical", altered(func(q *proof.TLogProof) {
			q.ExtraData = append([]byte(" "), q.ExtraData...)
		}), l.VerifierKey()},
		{"another index", "seq is 3", altered(func(q *proof.TLogProof) { q.Index = 4 }), l.VerifierKey()},
		{"index past the tree", "not below", altered(func(q *proof.TLogProof) { q.Index = 1 << 63 }), l.VerifierKey()},
		{"hash altered", "does not reach", altered(func(q *proof.TLogProof) { q.Hashes[0][0] ^= 1 }), l.VerifierKey()},
		{"hash missing", "does not reach", altered(func(q *proof.TLogProof) { q.Hashes = q.Hashes[1:] }), l.VerifierKey()},
		{"checkpoint edited", "checkpoint", altered(func(q *proof.TLogProof) {
			q.Checkpoint = bytes.Replace(q.Checkpoint, []byte("\n11\n"), []byte("\n12\n"), 1)
		}), l.VerifierKey()},
	} {
		_, err := client.CheckReceipt(c.receipt, c.key, nil)
		if !errors.Is(err, client.ErrNotVerified) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckReceipt = %v, want ErrNotVerified saying %q", c.name, err, c.want)
		}
	}
}

// TestReceiptPolicy checks receipts against a witness policy: a
// checkpoint cosigned by the quorum passes, one short of it fails with
// ErrNotWitnessed, and a cosignature over another checkpoint counts for
// nothing.
func TestReceiptPolicy(t *testing.T) {
	ctx := context.Background()
	l, evs := receiptLog(t, 5)
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	type witness struct {
		vkey   string
		signer note.Signer
	}
	newWitness := func(name string) witness {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		cv, err := fnote.VKeyToCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		return witness{cv, s}
	}
	cosign := func(signed []byte, ws ...witness) []byte {
		text, _, _ := strings.Cut(string(signed), "\n\n")
		out := append([]byte(nil), signed...)
		for _, w := range ws {
			n, err := note.Sign(&note.Note{Text: text + "\n"}, w.signer)
			if err != nil {
				t.Fatal(err)
			}
			_, sig, _ := strings.Cut(string(n), "\n\n")
			out = append(out, sig...)
		}
		return out
	}
	w1, w2 := newWitness("w1.example"), newWitness("w2.example")
	pol, err := policy.Parse(fmt.Appendf(nil, "log %s\nwitness w1 %s\nwitness w2 %s\ngroup both all w1 w2\nquorum both\n",
		l.VerifierKey(), w1.vkey, w2.vkey))
	if err != nil {
		t.Fatal(err)
	}

	full, err := l.Receipt(ctx, evs[2], cosign(signed, w1, w2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CheckReceipt(full, l.VerifierKey(), pol); err != nil {
		t.Fatalf("receipt cosigned by both: %v", err)
	}

	short, err := l.Receipt(ctx, evs[2], cosign(signed, w1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CheckReceipt(short, l.VerifierKey(), pol)
	if !errors.Is(err, client.ErrNotWitnessed) || !strings.Contains(err.Error(), "w2") {
		t.Fatalf("receipt cosigned by w1 alone: %v, want ErrNotWitnessed naming w2", err)
	}
	if _, err := client.CheckReceipt(short, l.VerifierKey(), nil); err != nil {
		t.Fatalf("the same receipt without a policy: %v", err)
	}

	// w2's cosignature of the checkpoint of size 5, moved onto another
	// checkpoint of the same log, is no cosignature of it.
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u_9"}, Action: "user.login"}); err != nil {
		t.Fatal(err)
	}
	newer, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	_, sigs, _ := strings.Cut(string(cosign(signed, w2)), "\n\n")
	w2Line := sigs[strings.LastIndex(strings.TrimSuffix(sigs, "\n"), "\n")+1:]
	moved := append(cosign(newer, w1), w2Line...)
	r, err := l.Receipt(ctx, evs[2], moved)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CheckReceipt(r, l.VerifierKey(), pol); !errors.Is(err, client.ErrNotWitnessed) {
		t.Fatalf("receipt with a cosignature of another checkpoint: %v, want ErrNotWitnessed", err)
	}

	// Damage: a receipt of an event that is not the stored one.
	forged := *evs[2]
	forged.Action = "user.logout"
	if _, err := l.Receipt(ctx, &forged, signed); !errors.Is(err, trail.ErrDamaged) {
		t.Fatalf("Receipt of an altered event = %v, want ErrDamaged", err)
	}
}
