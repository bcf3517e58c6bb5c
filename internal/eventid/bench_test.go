package eventid

import (
	"testing"
	"time"
)

func BenchmarkMake(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		Make("default", i, now)
	}
}
