package canon

import (
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/eventid"
)

// typicalEvent is a workload event of about 500 bytes with four metadata keys.
func typicalEvent(b *testing.B) []byte {
	for _, line := range workload(b) {
		if len(line) >= 480 && len(line) <= 520 {
			return line
		}
	}
	b.Fatal("no workload event of about 500 bytes")
	return nil
}

func BenchmarkAppend(b *testing.B) {
	line := typicalEvent(b)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e, err := event.Decode(line)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Prepare(now, event.Limits{}); err != nil {
		b.Fatal(err)
	}
	e.Seq, e.Log, e.ReceivedAt = 1234567, "default", now
	e.ID = eventid.Make(e.Log, e.Seq, e.ReceivedAt)
	buf := Append(nil, &e)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], &e)
	}
}
