package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	local := func(y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, time.Local)
	}
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2026-03-01T09:00:00Z", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
		{"2026-03-01T09:00:00.5+01:00", time.Date(2026, 3, 1, 8, 0, 0, 5e8, time.UTC)},
		{"2026-03-01", local(2026, 3, 1, 0, 0)},
		{"2026-03-01 09:30", local(2026, 3, 1, 9, 30)},
		{"90m", now.Add(-90 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"24h", now.Add(-24 * time.Hour)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"2w", now.Add(-14 * 24 * time.Hour)},
		// Before 1970 no event is: such a bound is the epoch, never the
		// zero time (no bound), nor a time past now from an overflow.
		{"106752d", time.Unix(0, 0)},
		{"200000d", time.Unix(0, 0)},
		{"4294967295w", time.Unix(0, 0)},
		{"0001-01-01", time.Unix(0, 0)},
		{"1969-12-31T23:59:59Z", time.Unix(0, 0)},
	} {
		got, err := parseTime(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"yesterday", "-1h", "7 days", "d", "1.5d", "2026-13-01"} {
		if got, err := parseTime(in, now); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, got)
		}
	}
}

// TestSearchTerminal runs search in-process as if on a terminal 100
// columns wide: a table cut to fit, with the times in the local zone.
func TestSearchTerminal(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }, now: time.Now}
	e.stdin = strings.NewReader("")
	if err := (&Main{env: e}).Run(ctx, []string{"--data", data, "init"}); err != nil {
		t.Fatal(err)
	}
	e.stdin = strings.NewReader(`{"actor":{"id":"alice"},"action":"user.update","time":"2026-01-02T03:04:05Z","targets":[{"type":"user","id":"bob"}],"outcome":"denied","reason":"not\nallowed \u009b2J\u202e` + strings.Repeat("not allowed ", 20) + "\"}\n")
	if err := (&Main{env: e}).Run(ctx, []string{"--data", data, "append"}); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	e.stdoutTTY, e.width = true, 100
	if err := (&Main{env: e}).Run(ctx, []string{"--data", data, "search"}); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(rows) != 2 {
		t.Fatalf("search printed %q, want a header and a row", out.String())
	}
	for _, r := range rows {
		if n := utf8.RuneCountInString(r); n > 100 {
			t.Errorf("line %q is %d columns, want at most 100", r, n)
		}
	}
	wantTime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Local().Format("2006-01-02 15:04:05")
	if !strings.HasPrefix(rows[1], wantTime+"  0    alice  user.update  user:bob  denied       not allowed \ufffd2J\ufffdnot allowed") || !strings.HasSuffix(rows[1], "…") {
		t.Errorf("row = %q, want the event at %s with its reason cut short", rows[1], wantTime)
	}
	if strings.ContainsAny(out.String(), "\u009b\u202e") {
		t.Errorf("search printed an escape character from an event: %q", out.String())
	}
}
