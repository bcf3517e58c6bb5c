package trail_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/trail-audit/trail/internal/baseline"
)

// The baseline (internal/baseline) is what an app does without Trail: one
// plain SQLite table.

func openBaseline(b testing.TB) *baseline.Table {
	t, err := baseline.Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkBaselineBatch1000 inserts 1000 rows per transaction.
func BenchmarkBaselineBatch1000(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openBaseline(b)
	defer t.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := t.DB.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		off := (i * 1000) % len(evs)
		for j := range 1000 {
			if _, err := t.Insert(ctx, tx, &evs[off+j]); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineSingle commits one row per transaction from one caller.
func BenchmarkBaselineSingle(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openBaseline(b)
	defer t.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := t.Insert(ctx, nil, &evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineParallel32 commits one row per transaction from 32
// goroutines sharing the one write connection.
func BenchmarkBaselineParallel32(b *testing.B) {
	evs, _ := workloadEvents(b, 200_000)
	t := openBaseline(b)
	defer t.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(32 / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := t.Insert(ctx, nil, &evs[int(next.Add(1))%len(evs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
