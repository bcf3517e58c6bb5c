package canon

import (
	"testing"
	"time"
)

// appendTime writes exactly what time.RFC3339Nano does, in UTC.
func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(2026, 12, 2, 4, 5, 6, 0, time.UTC),
		time.Date(2026, 12, 2, 4, 5, 6, 1, time.UTC),
		time.Date(2026, 12, 2, 4, 5, 6, 120000000, time.UTC),
		time.Date(1999, 1, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(2026, 6, 1, 12, 0, 0, 500, time.FixedZone("x", 3600+1800)),
	} {
		want := `"` + tm.UTC().Format(time.RFC3339Nano) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1764648306), int64(123456789))
	f.Add(int64(-62135596800), int64(1))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec, nsec)
		want := `"` + tm.UTC().Format(time.RFC3339Nano) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%d, %d) = %s, want %s", sec, nsec, got, want)
		}
	})
}
