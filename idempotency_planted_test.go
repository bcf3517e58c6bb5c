package trail

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// TestIdempotencyPlanted: a replay answers with a stored record's
// receipts only if they name this request's events. A record planted in
// the database, or changed there, to name other events (or none) makes
// the append fail as damaged, storing nothing, rather than acknowledge
// events never stored with another event's receipts.
func TestIdempotencyPlanted(t *testing.T) {
	ctx := context.Background()
	db, err := Init(ctx, filepath.Join(t.TempDir(), "data"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	login := func(actor string) event.Event {
		return event.Event{Actor: event.Actor{ID: actor}, Action: "user.login"}
	}
	rs, err := l.AppendBatch(ctx, []event.Event{login("alice"), login("bob")})
	if err != nil {
		t.Fatal(err)
	}
	// A genuine record replays.
	id := Idempotency{Scope: "k1", Key: "first", Fingerprint: []byte{1}}
	first, _, err := l.AppendIdempotent(ctx, []event.Event{login("carol")}, id)
	if err != nil {
		t.Fatal(err)
	}
	if again, replayed, err := l.AppendIdempotent(ctx, []event.Event{login("carol")}, id); err != nil || !replayed || again[0] != first[0] {
		t.Fatalf("replay = %v, %v, %v; want the first receipts", again, replayed, err)
	}

	access := db.st.(store.Access)
	for i, receipts := range []string{
		fmt.Sprintf(`[{"id":%q,"seq":%d}]`, rs[1].ID, rs[1].Seq),                 // bob's event, not this request's
		fmt.Sprintf(`[{"id":"01J00000000000000000000000","seq":%d}]`, rs[0].Seq), // alice's seq, another id
		`[{"id":"01J00000000000000000000000","seq":99}]`,                         // no such seq
		`[]`, // no receipt for the request's event
	} {
		key := fmt.Sprintf("planted-%d", i)
		if _, err := access.ImportIdempotency(ctx, l.info.ID, []store.Idempotency{{Scope: "k1", Key: key, Fingerprint: []byte{2}, Receipts: []byte(receipts), CreatedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		size := l.Size()
		got, replayed, err := l.AppendIdempotent(ctx, []event.Event{login("mallory")}, Idempotency{Scope: "k1", Key: key, Fingerprint: []byte{2}})
		if !errors.Is(err, ErrDamaged) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "idempotency record") {
			t.Errorf("replay of planted record %s = %v, %v, %v; want ErrDamaged naming the idempotency record", receipts, got, replayed, err)
		}
		if l.Size() != size {
			t.Errorf("planted record %s: size %d after the refused append, want %d", receipts, l.Size(), size)
		}
	}

	// A copy leaves behind the planted records whose receipts the log
	// contradicts (another id at a seq, none at all). One naming another
	// request's events, as they are, is copied: without the request, a
	// copy cannot tell; a replay through the target refuses it as above.
	// One naming a seq past the log waits for a copy that reaches it.
	to, err := Init(ctx, filepath.Join(t.TempDir(), "copy"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	rep, err := Copy(ctx, db, to, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lr := rep.Logs[0]; lr.Idempotency != 2 || lr.IdempotencyUnreadable != 2 {
		t.Errorf("Copy: %d idempotency records copied, %d left behind as contradicted by the log; want 2 and 2", lr.Idempotency, lr.IdempotencyUnreadable)
	}
}
