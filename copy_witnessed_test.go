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
