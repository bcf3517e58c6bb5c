package trail_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestVerifyAndCopyBesideWriter: verify and copy read a log another DB
// (a running server) goes on appending to. What is appended after they
// read the log's state is neither damage nor in their way: newer
// checkpoints and events past the size they read were reported as a
// truncation and as events stored outside Trail.
func TestVerifyAndCopyBesideWriter(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		l, rl, url := writerAndReader(t, b)
		batch := make([]event.Event, 1000)
		for i := range batch {
			batch[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("u%d", i)}, Action: "user.login"}
		}
		for range 3 {
			if _, err := l.AppendBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}

		stop := make(chan struct{})
		var appended atomic.Int64
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprintf("w%d_%d", g, i)}, Action: "user.login"}); err != nil {
						t.Error(err)
						return
					}
					appended.Add(1)
				}
			})
		}
		defer func() { close(stop); wg.Wait() }()

		for i := range 8 {
			before := appended.Load()
			rep, err := rl.Verify(ctx, trail.VerifyOptions{})
			if err != nil {
				t.Fatalf("verify %d beside a writer: %v", i, err)
			}
			if rep.Size < 3000 {
				t.Fatalf("verify %d: size %d, want at least 3000", i, rep.Size)
			}
			for appended.Load() < before+20 {
				// Let the writer commit between two runs.
			}
		}

		src, err := trail.OpenStore(ctx, url, trail.Options{ReadOnly: true, MasterKey: b.MasterKey})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := trail.Init(ctx, t.TempDir(), trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		for i := range 3 {
			rep, err := trail.Copy(ctx, src, dst, trail.CopyOptions{Logs: []string{"acme"}})
			if err != nil {
				t.Fatalf("copy %d beside a writer: %v", i, err)
			}
			if len(rep.Logs) != 1 || !rep.Logs[0].Done {
				t.Fatalf("copy %d: %+v, want the log copied", i, rep.Logs)
			}
		}
		if appended.Load() == 0 {
			t.Fatal("the writer appended nothing while verify and copy ran")
		}
	})
}
