package trail_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
)

// TestCopyCosigned: trail.Copy moves a log's newest cosigned checkpoint
// with its events, so the target serves it witnessed without asking the
// witness again (which is stopped before the target opens).
func TestCopyCosigned(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	db, err := trail.Init(ctx, srcDir, trail.Options{})
	must(t, err)
	l, err := db.CreateLog(ctx, "acme", "")
	must(t, err)
	vkey := l.VerifierKey()
	db.Close()
	w := witnesstest.New(t, "", vkey)
	p := witnessPolicy(t, vkey, w)
	from, err := trail.Open(ctx, srcDir, trail.Options{WitnessPolicy: p})
	must(t, err)
	l, err = from.Log(ctx, "acme")
	must(t, err)
	for i := range 20 {
		_, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login", Reason: string(rune('a' + i))})
		must(t, err)
	}
	var cosigned []byte
	for start := time.Now(); ; {
		cosigned, err = l.WitnessedCheckpoint(ctx)
		if err == nil && bytes.Contains(cosigned, []byte("\n20\n")) {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the source's checkpoint of 20 events was not witnessed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	from.Close()
	w.Stop()

	from, err = trail.Open(ctx, srcDir, trail.Options{ReadOnly: true})
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
	db, err := trail.Init(ctx, dir, trail.Options{})
	must(t, err)
	l, err := db.CreateLog(ctx, "acme", "")
	must(t, err)
	vkey := l.VerifierKey()
	db.Close()
	w := witnesstest.New(t, "", vkey)
	p := witnessPolicy(t, vkey, w)
	db, err = trail.Open(ctx, dir, trail.Options{WitnessPolicy: p})
	must(t, err)
	l, err = db.Log(ctx, "acme")
	must(t, err)
	for range 5 {
		_, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login"})
		must(t, err)
	}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if c, err := l.WitnessedCheckpoint(ctx); err == nil && bytes.Contains(c, []byte("\n5\n")) {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("the checkpoint of 5 events was not witnessed")
		}
	}
	db.Close()
	w.Stop()

	db, err = trail.Open(ctx, dir, trail.Options{}) // no policy, as trail get
	must(t, err)
	defer db.Close()
	l, err = db.Log(ctx, "acme")
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
