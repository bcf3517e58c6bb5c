package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// progress draws a one-line progress bar on stderr, redrawn in place. A nil
// *progress draws nothing, so callers need not check for a terminal.
type progress struct {
	w     io.Writer
	label string
	width int
	now   func() time.Time
	start time.Time
	last  time.Time
	drawn bool
}

// newProgress returns a progress bar on stderr, or nil when stderr is not a
// terminal.
func newProgress(e *env, label string) *progress {
	if !e.stderrTTY {
		return nil
	}
	width := e.errWidth
	if width <= 0 {
		width = 80
	}
	now := e.now()
	return &progress{w: e.stderr, label: label, width: width, now: e.now, start: now}
}

// update shows that done of total units are through; note follows the
// counts. It redraws at most ten times a second, and always at the end.
func (p *progress) update(done, total int64, note string) {
	if p == nil {
		return
	}
	now := p.now()
	if p.drawn && (done < total || total < 0) && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.drawn = now, true
	line := renderProgress(p.label, done, total, note, now.Sub(p.start), p.width-1)
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

// clear erases the bar, leaving the cursor at the start of the line.
func (p *progress) clear() {
	if p == nil || !p.drawn {
		return
	}
	p.drawn = false
	fmt.Fprint(p.w, "\r\x1b[K")
}

// renderProgress formats one progress line of at most width columns:
// "verify [=====>    ]  45%  131,072/290,000  52,000/s  note", or with a
// negative total (not known) "check  131,072  52,000/s  note".
func renderProgress(label string, done, total int64, note string, elapsed time.Duration, width int) string {
	rate := ""
	if s := elapsed.Seconds(); s >= 0.5 {
		rate = "  " + commas(int64(float64(done)/s)) + "/s"
	}
	if total < 0 {
		line := label + "  " + commas(done) + rate
		if note != "" {
			line += "  " + note
		}
		return cut(line, width)
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	stats := fmt.Sprintf(" %3.0f%%  %s/%s", pct, commas(done), commas(total)) + rate
	if note != "" {
		stats += "  " + note
	}
	bar := width - len(label) - len(stats) - 3 // label, space, brackets
	if bar > 40 {
		bar = 40
	}
	if bar < 10 {
		return cut(label+stats, width)
	}
	fill := bar
	if total > 0 {
		fill = int(float64(bar) * float64(min(done, total)) / float64(total))
	}
	b := strings.Repeat("=", fill)
	if fill < bar {
		b += ">" + strings.Repeat(" ", bar-fill-1)
	}
	return cut(label+" ["+b+"]"+stats, width)
}

// commas formats n with thousands separators: 1234567 is "1,234,567".
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
