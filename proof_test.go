package trail_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// openTree checks a signed checkpoint the way an independent verifier
// would, with note.Open and the log's verifier key, and returns the size and
// root hash its body states.
func openTree(t *testing.T, signed []byte, verifierKey, origin string) (int64, tlog.Hash) {
	t.Helper()
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(checkpoint) = %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != origin {
		t.Fatalf("checkpoint body %q does not start with origin %q, size and hash", n.Text, origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size line %q: %v", lines[1], err)
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		t.Fatalf("checkpoint hash line %q: %v", lines[2], err)
	}
	return size, tlog.Hash(h)
}

// TestProofs checks every inclusion proof of a small log, and consistency
// proofs between all its checkpoints, with tlog alone against roots read
// from the signed checkpoints.
func TestProofs(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := trail.Init(ctx, dir, trail.Options{Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.CreateLog(ctx, "audit", "example.com/trail/audit")
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(300, 2)
	var sizes []int64
	for _, n := range []int{1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 68} {
		if _, err := l.AppendBatch(ctx, evs[:n]); err != nil {
			t.Fatal(err)
		}
		evs = evs[n:]
		sizes = append(sizes, l.Size())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Prove from a read-only reopening, so that proofs come from what the
	// database holds.
	db, err = trail.Open(ctx, dir, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if l, err = db.Log(ctx, "audit"); err != nil {
		t.Fatal(err)
	}

	// Leaves as an auditor computes them from the API's JSON.
	size := l.Size()
	leaves := make([]tlog.Hash, size)
	for seq := range size {
		e, err := l.GetSeq(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		d, err := event.DecodeStored(j)
		if err != nil {
			t.Fatalf("DecodeStored(JSON of event %d) = %v", seq, err)
		}
		leaves[seq] = tlog.RecordHash(canon.Append(nil, &d))
		if want := tlog.RecordHash(canon.Append(nil, e)); leaves[seq] != want {
			t.Fatalf("event %d: leaf from its JSON %v, from the event %v", seq, leaves[seq], want)
		}
	}

	roots := map[int64]tlog.Hash{}
	for _, n := range sizes {
		signed, err := l.CheckpointAt(ctx, n)
		if err != nil {
			t.Fatalf("CheckpointAt(%d) = %v", n, err)
		}
		got, root := openTree(t, signed, l.VerifierKey(), l.Origin())
		if got != n {
			t.Fatalf("CheckpointAt(%d) signs size %d", n, got)
		}
		roots[n] = root
	}

	for _, n := range sizes {
		for seq := range n {
			proof, err := l.ProveInclusion(ctx, seq, n)
			if err != nil {
				t.Fatalf("ProveInclusion(%d, %d) = %v", seq, n, err)
			}
			if err := tlog.CheckRecord(proof, n, roots[n], seq, leaves[seq]); err != nil {
				t.Errorf("tlog.CheckRecord(ProveInclusion(%d, %d)) = %v", seq, n, err)
			}
			if n > 1 {
				other := (seq + 1) % n
				if err := tlog.CheckRecord(proof, n, roots[n], seq, leaves[other]); err == nil {
					t.Errorf("tlog.CheckRecord(ProveInclusion(%d, %d)) accepts the leaf of event %d", seq, n, other)
				}
				if err := tlog.CheckRecord(proof, n, roots[n], other, leaves[seq]); err == nil {
					t.Errorf("tlog.CheckRecord(ProveInclusion(%d, %d)) accepts seq %d", seq, n, other)
				}
			}
		}
	}
	for i, old := range sizes {
		for _, n := range sizes[i:] {
			proof, err := l.ProveConsistency(ctx, old, n)
			if err != nil {
				t.Fatalf("ProveConsistency(%d, %d) = %v", old, n, err)
			}
			if err := tlog.CheckTree(proof, n, roots[n], old, roots[old]); err != nil {
				t.Errorf("tlog.CheckTree(ProveConsistency(%d, %d)) = %v", old, n, err)
			}
			if n != old {
				forged := roots[old]
				forged[0] ^= 1
				if err := tlog.CheckTree(proof, n, roots[n], old, forged); err == nil {
					t.Errorf("tlog.CheckTree(ProveConsistency(%d, %d)) accepts another root of size %d", old, n, old)
				}
			}
		}
	}

	for _, c := range []struct {
		name string
		err  error
	}{
		{"ProveInclusion(0, size+1)", func() error { _, err := l.ProveInclusion(ctx, 0, size+1); return err }()},
		{"ProveInclusion(5, 5)", func() error { _, err := l.ProveInclusion(ctx, 5, 5); return err }()},
		{"ProveInclusion(-1, 5)", func() error { _, err := l.ProveInclusion(ctx, -1, 5); return err }()},
		{"ProveInclusion(0, 0)", func() error { _, err := l.ProveInclusion(ctx, 0, 0); return err }()},
		{"ProveConsistency(0, 5)", func() error { _, err := l.ProveConsistency(ctx, 0, 5); return err }()},
		{"ProveConsistency(6, 5)", func() error { _, err := l.ProveConsistency(ctx, 6, 5); return err }()},
		{"ProveConsistency(5, size+1)", func() error { _, err := l.ProveConsistency(ctx, 5, size+1); return err }()},
	} {
		if !errors.Is(c.err, trail.ErrNotFound) {
			t.Errorf("%s = %v, want an error wrapping ErrNotFound", c.name, c.err)
		}
	}
}
