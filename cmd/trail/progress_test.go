package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
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
		{"no total", 12345, -1, 2 * time.Second, 60, "verify  12,345  6,172/s  events"},
		{"no total yet", 10, -1, 0, 60, "verify  10  events"},
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

// TestAppendCheckProgress: on a terminal, append shows how many lines it
// has checked before it stores any, then erases the bar.
func TestAppendCheckProgress(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }, now: time.Now, stdin: strings.NewReader("")}
	if err := (&Main{env: e}).Run(ctx, []string{"--data", data, "init"}); err != nil {
		t.Fatal(err)
	}
	e.stderrTTY, e.errWidth = true, 100
	e.stdin = strings.NewReader(strings.Repeat(`{"actor":{"id":"a"},"action":"x.y"}`+"\n", 3))
	errOut.Reset()
	if err := (&Main{env: e}).Run(ctx, []string{"--data", data, "append"}); err != nil {
		t.Fatal(err)
	}
	if s := errOut.String(); !strings.Contains(s, "\rcheck  1  lines checked") || !strings.Contains(s, "\r\x1b[K") {
		t.Errorf("append on a terminal wrote %q to stderr, want the lines checked, then the bar erased", s)
	}
}
