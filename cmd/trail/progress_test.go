package main

import (
	"testing"
	"time"
)

func TestRenderProgress(t *testing.T) {
	for _, tt := range []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		width       int
		want        string
	}{
		{"start", 0, 1000, 0, 60, "verify [>                            ]   0%  0/1,000  events"},
		{"half", 500, 1000, 2 * time.Second, 60, "verify [==========>         ]  50%  500/1,000  250/s  events"},
		{"done", 1000, 1000, time.Second, 60, "verify [================] 100%  1,000/1,000  1,000/s  events"},
		{"no room for a bar", 500, 1000, 0, 30, "verify  50%  500/1,000  events"},
		{"cut", 500, 1000, 0, 20, "verify  50%  500/1,…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := renderProgress("verify", tt.done, tt.total, "events", tt.elapsed, tt.width)
			if got != tt.want {
				t.Errorf("renderProgress(%d, %d) = %q, want %q", tt.done, tt.total, got, tt.want)
			}
		})
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}
