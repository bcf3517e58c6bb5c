package trail

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// BenchmarkCopySingleEventCommits copies a log of 100,000 commits of one
// event each, the worst case for Copy, between two data directories, and
// reports events copied per second. The source is written straight to
// its store, many commits per transaction, since appending them one
// fsync each would take minutes.
func BenchmarkCopySingleEventCommits(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	src := filepath.Join(b.TempDir(), "src")
	db, err := Init(ctx, src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := db.CreateLog(ctx, "bench", "bench.example/trail")
	if err != nil {
		b.Fatal(err)
	}
	app, _ := merkle.NewAppender(0, nil)
	evs := storetest.Events(n, 1)
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batches []store.Batch
	var buf []byte
	for i := range evs {
		e := &evs[i]
		if err := e.Prepare(recv, event.DefaultLimits()); err != nil {
			b.Fatal(err)
		}
		recv = recv.Add(time.Millisecond)
		if e.Time.IsZero() {
			e.Time = recv
		}
		e.Seq, e.Log, e.ReceivedAt = int64(i), "bench", recv
		e.ID = eventid.Make(e.Log, e.Seq, recv)
		buf = canon.Append(buf[:0], e)
		app.Append(tlog.RecordHash(buf))
		note, err := merkle.Sign(merkle.Checkpoint{Origin: l.Origin(), Size: app.Size(), Hash: app.Root()}, l.signer)
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, store.Batch{Log: l.info.ID, Events: []*event.Event{e}, Checkpoint: store.Checkpoint{Size: app.Size(), Note: note, SignedAt: recv}})
		if len(batches) == 5000 || i == n-1 {
			batches[len(batches)-1].Tiles = app.Flush()
			if err := db.st.Commit(ctx, batches); err != nil {
				b.Fatal(err)
			}
			batches = batches[:0]
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}

	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		from, err := Open(ctx, src, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		to, err := Init(ctx, filepath.Join(b.TempDir(), "dst"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rep, err := Copy(ctx, from, to, CopyOptions{})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Events() != n {
			b.Fatalf("copied %d events, want %d", rep.Events(), n)
		}
		from.Close()
		to.Close()
	}
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "events/s")
}
