package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkIndex measures the background indexer alone: the index entries
// and counts of three chunks of workload events (see BENCHMARKS.md),
// which were committed in batches of 1000 just before, as during ingest.
func BenchmarkIndex(b *testing.B) {
	const n = 3 << segBits
	evs, _, err := workload.Events(n)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	ctx := context.Background()
	recv := time.Now()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := Create(ctx, filepath.Join(b.TempDir(), "trail.db"), Options{IndexDelay: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		w := storetest.NewWriter(b, s, "bench")
		for off := 0; off < n; off += 1000 {
			w.Append(b, s, recv, evs[off:min(off+1000, n)]...)
		}
		b.StartTimer()
		if err := s.WaitIndexed(ctx, w.Info.ID); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
