package trail_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// TestCopyCosigned: trail.Copy moves a log's newest cosigned checkpoint
// with its events, so the target serves it witnessed without asking the
// witness again (which is stopped before the target opens).
func TestCopyCosigned(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	p, cosigned := witnessedDir(t, srcDir, 20)

	from, err := trail.Open(ctx, srcDir, trail.Options{ReadOnly: true})
	must(t, err)
	defer from.Close()
	to, err := trail.Init(ctx, dstDir, trail.Options{})
	must(t, err)
	if _, err := trail.Copy(ctx, from, to, trail.CopyOptions{}); err != nil {
		t.Fatalf("Copy = %v", err)
	}
	to.Close()
	to, err = trail.Open(ctx, dstDir, trail.Options{WitnessPolicy: p})
	must(t, err)
	defer to.Close()
	dl, err := to.Log(ctx, "acme")
	must(t, err)
	got, err := dl.WitnessedCheckpoint(ctx)
	if err != nil || !bytes.Equal(got, cosigned) {
		t.Fatalf("the target's witnessed checkpoint = %q, %v; want the source's %q", got, err, cosigned)
	}
	if !p.Check(got).Met {
		t.Fatal("the copied cosigned checkpoint does not meet the policy")
	}
}

// TestReceiptCheckpoint: a receipt of an event is proved against the
// newest cosigned checkpoint stored for its log when that covers it, also
// by a DB opened without the witness policy (trail get --proof-file on a
// data directory), and against the latest signed checkpoint for an event
// past it.
func TestReceiptCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	p, _ := witnessedDir(t, dir, 5)

	db, err := trail.Open(ctx, dir, trail.Options{}) // no policy, as trail get
	must(t, err)
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	must(t, err)
	_, err = l.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.logout"})
	must(t, err)
	cp, err := l.ReceiptCheckpoint(ctx, 4)
	must(t, err)
	if !p.Check(cp).Met || !bytes.Contains(cp, []byte("\n5\n")) {
		t.Errorf("ReceiptCheckpoint(4) = %q, want the cosigned checkpoint of 5 events", cp)
	}
	latest, err := l.Checkpoint()
	must(t, err)
	if cp, err := l.ReceiptCheckpoint(ctx, 5); err != nil || !bytes.Equal(cp, latest) {
		t.Errorf("ReceiptCheckpoint(5) = %q, %v; want the latest signed checkpoint %q", cp, err, latest)
	}
}

// witnessedDir makes a data directory at dir with a log "acme" of n
// events whose checkpoint of n events a real witness cosigned, then stops
// the witness, and returns the policy and that cosigned checkpoint.
func witnessedDir(t *testing.T, dir string, n int) (*policy.Policy, []byte) {
	t.Helper()
	ctx := context.Background()
	vkey := initLog(t, dir, "acme", "")
	w := witnesstest.New(t, "", vkey)
	p := witnessPolicy(t, vkey, w)
	db, err := trail.Open(ctx, dir, trail.Options{WitnessPolicy: p})
	must(t, err)
	defer db.Close()
	l, err := db.Log(ctx, "acme")
	must(t, err)
	for i := range n {
		_, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login", Reason: fmt.Sprint(i)})
		must(t, err)
	}
	size := fmt.Appendf(nil, "\n%d\n", n)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		cosigned, err := l.WitnessedCheckpoint(ctx)
		if err == nil && bytes.Contains(cosigned, size) {
			db.Close()
			w.Stop()
			return p, cosigned
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the checkpoint of %d events was not witnessed: %v", n, err)
		}
	}
}
