package trail_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// TestAppendAfterClose: an append made after Close, or racing with it,
// returns at once: ErrClosed, or its receipt if it was committed before
// the writer stopped. None waits for a writer that is gone, and every
// receipt given is in the log when it is opened again.
func TestAppendAfterClose(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		dir := t.TempDir()
		db, err := trail.Init(ctx, dir, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := db.CreateLog(ctx, "audit", "")
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			acked []string
		)
		for i := range 50 {
			wg.Go(func() {
				// No deadline of the caller's own: a hang is the bug.
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				start := time.Now()
				rs, err := l.AppendBatch(actx, []event.Event{{Actor: event.Actor{ID: "u"}, Action: "user.login"}})
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, rs[0].ID)
					mu.Unlock()
				case !errors.Is(err, trail.ErrClosed):
					t.Errorf("round %d, append %d: %v, want a receipt or ErrClosed", round, i, err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("round %d, append %d took %v", round, i, d)
				}
			})
		}
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// After Close, every append is refused.
		for range 20 {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := l.Append(actx, event.Event{Actor: event.Actor{ID: "late"}, Action: "user.login"})
			cancel()
			if !errors.Is(err, trail.ErrClosed) {
				t.Fatalf("round %d: append after Close = %v, want ErrClosed", round, err)
			}
		}
		wg.Wait()

		db, err = trail.Open(ctx, dir, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err = db.Log(ctx, "audit")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range acked {
			if _, err := l.Get(ctx, id); err != nil {
				t.Errorf("round %d: acknowledged event %s: %v", round, id, err)
			}
		}
		db.Close()
	}
}

// auditLog returns a new data directory's DB, closed when t ends, and
// its log "audit".
func auditLog(t *testing.T) (*trail.DB, *trail.Log) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "audit", "")
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

// TestAppendCancelledBefore: an append whose context is done before it is
// made stores nothing.
func TestAppendCancelledBefore(t *testing.T) {
	ctx := context.Background()
	_, l := auditLog(t)
	done, cancel := context.WithCancel(ctx)
	cancel()
	for range 50 {
		if _, err := l.Append(done, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("append with a cancelled context = %v, want context.Canceled", err)
		}
	}
	if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u"}, Action: "user.login"}); err != nil {
		t.Fatal(err)
	}
	if l.Size() != 1 {
		t.Errorf("log holds %d events after 50 cancelled appends and one made, want 1", l.Size())
	}
}

// TestIdempotencyChecked: an idempotency key, scope or fingerprint the
// store could not keep is refused before the request is queued, naming
// what is wrong, and appends queued beside it are not failed with it.
func TestIdempotencyChecked(t *testing.T) {
	ctx := context.Background()
	db, l := auditLog(t)
	fp := []byte{1}
	for _, c := range []struct {
		id   trail.Idempotency
		want string
	}{
		{trail.Idempotency{Scope: "s", Key: "", Fingerprint: fp}, "key is empty"},
		{trail.Idempotency{Scope: "s", Key: strings.Repeat("k", 256), Fingerprint: fp}, "key is 256 bytes"},
		{trail.Idempotency{Scope: strings.Repeat("s", 256), Key: "k", Fingerprint: fp}, "scope is 256 bytes"},
		{trail.Idempotency{Scope: "s", Key: "k"}, "fingerprint is empty"},
		{trail.Idempotency{Scope: "s", Key: "k", Fingerprint: []byte{}}, "fingerprint is empty"},
		{trail.Idempotency{Scope: "s", Key: "k", Fingerprint: make([]byte, 65)}, "fingerprint is 65 bytes"},
	} {
		var wg sync.WaitGroup
		var others error
		for range 8 {
			wg.Go(func() {
				if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "other"}, Action: "user.login"}); err != nil {
					others = err
				}
			})
		}
		_, _, err := l.AppendIdempotent(ctx, []event.Event{{Actor: event.Actor{ID: "u"}, Action: "user.login"}}, c.id)
		wg.Wait()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AppendIdempotent(%d-byte key, %d-byte scope, %d-byte fingerprint) = %v, want an error saying %q",
				len(c.id.Key), len(c.id.Scope), len(c.id.Fingerprint), err, c.want)
		}
		if others != nil {
			t.Errorf("appends beside it: %v", others)
		}
	}
	if err := db.Ready(ctx); err != nil {
		t.Errorf("Ready after refused idempotency = %v", err)
	}
	id := trail.Idempotency{Scope: strings.Repeat("s", 255), Key: strings.Repeat("k", 255), Fingerprint: make([]byte, 64)}
	if _, _, err := l.AppendIdempotent(ctx, []event.Event{{Actor: event.Actor{ID: "u"}, Action: "user.login"}}, id); err != nil {
		t.Errorf("AppendIdempotent at the limits: %v", err)
	}
}

// Reads of a closed DB say so: ErrClosed, not the store's own error.
func TestReadsAfterClose(t *testing.T) {
	ctx := context.Background()
	db, l := auditLog(t)
	rs, err := l.AppendBatch(ctx, []event.Event{{Actor: event.Actor{ID: "u"}, Action: "user.login"}, {Actor: event.Actor{ID: "v"}, Action: "user.login"}})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	checks := map[string]error{}
	_, checks["Get"] = l.Get(ctx, rs[0].ID)
	_, checks["GetSeq"] = l.GetSeq(ctx, 0)
	_, checks["Search"] = l.Search(ctx, api.Query{})
	_, checks["ProveInclusion"] = l.ProveInclusion(ctx, 0, 2)
	_, checks["ProveConsistency"] = l.ProveConsistency(ctx, 1, 2)
	_, checks["TreeHash"] = l.TreeHash(ctx, 2)
	_, checks["Verify"] = l.Verify(ctx, trail.VerifyOptions{})
	_, checks["Stats"] = l.Stats(ctx, api.StatsQuery{})
	_, checks["Logs"] = db.Logs(ctx)
	_, checks["CreateLog"] = db.CreateLog(ctx, "other", "")
	_, checks["Keys"] = db.Keys(ctx)
	for name, err := range checks {
		if !errors.Is(err, trail.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
