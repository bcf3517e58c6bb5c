package postgres

import (
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkIndexRows measures the indexer's own work for a chunk of
// workload events: the rows of event_fields, event_targets and
// bundle_text, and the counts they add, up to the text of the statements
// (what PostgreSQL does with them is not included).
func BenchmarkIndexRows(b *testing.B) {
	evs, _, err := workload.Events(indexChunk)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	ptrs := make([]*event.Event, len(evs))
	for i := range evs {
		evs[i].Seq = int64(i)
		ptrs[i] = &evs[i]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var r indexRows
		for _, e := range ptrs {
			r.add(1, e)
			r.addCounts(1, e)
		}
		r.text.flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ptrs)), "ns/event")
}
