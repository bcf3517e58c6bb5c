package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// table is text in aligned columns, two spaces apart.
type table struct {
	header []string
	// shrink says which columns may be cut short to fit a width, and in
	// which order: columns at 1 are cut first, then those at 2, and so on;
	// columns at 0 (or beyond the slice) are never cut.
	shrink []int
	rows   [][]string
}

// minShrunk is the narrowest a shrinkable column gets (or its header's
// width, if wider).
const minShrunk = 8

// add appends a row. Cells are cleaned of control characters: audit events
// carry text from clients, which must not be able to move the cursor or
// rewrite the screen.
func (t *table) add(cells ...string) {
	for i, c := range cells {
		cells[i] = cleanCell(c)
	}
	t.rows = append(t.rows, cells)
}

// write prints the table to w. If width > 0, shrinkable columns are cut,
// in the order of their shrink level and widest first within a level,
// until each line fits in width columns; cut cells end in "…".
func (t *table) write(w io.Writer, width int) error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = runewidth.StringWidth(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], runewidth.StringWidth(c))
		}
	}
	if width > 0 {
		t.fit(widths, width)
	}
	var b strings.Builder
	var err error
	line := func(cells []string) {
		b.Reset()
		for i, c := range cells {
			c = cut(c, widths[i])
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-runewidth.StringWidth(c)+2))
			}
		}
		if err == nil {
			_, err = io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
		}
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
	return err
}

// fit narrows the shrinkable columns in widths until a line fits in width.
func (t *table) fit(widths []int, width int) {
	total := 2 * (len(widths) - 1)
	levels := 0
	for i, w := range widths {
		total += w
		if i < len(t.shrink) {
			levels = max(levels, t.shrink[i])
		}
	}
	for level := 1; level <= levels && total > width; level++ {
		for total > width {
			widest := -1
			for i, w := range widths {
				if i < len(t.shrink) && t.shrink[i] == level && w > max(minShrunk, runewidth.StringWidth(t.header[i])) &&
					(widest < 0 || w > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break // as narrow as this level gets
			}
			widths[widest]--
			total--
		}
	}
}

// cut shortens s to at most n columns on a terminal (a CJK character or
// an emoji takes two), ending it in "…" when cut.
func cut(s string, n int) string {
	if runewidth.StringWidth(s) <= n {
		return s
	}
	if n <= 1 {
		return runewidth.Truncate(s, max(n, 0), "")
	}
	return runewidth.Truncate(s, n, "…")
}

// invisible reports whether r is a control or format character: one that
// a terminal may act on (escape sequences) or that changes how text around
// it shows (bidirectional overrides).
func invisible(r rune) bool {
	return r < 0x20 || r == 0x7f || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// escapeInvisible writes the invisible characters of the JSON text s as
// \u escapes, which keeps it valid JSON of the same value: JSON allows them
// only inside strings, where the escape means the same character.
func escapeInvisible(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && invisible(r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || !invisible(r):
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// cleanCell makes s safe to print in one table cell: line breaks and tabs
// become spaces, and other control or format characters (escape sequences,
// bidirectional overrides) become U+FFFD.
func cleanCell(s string) string {
	if !strings.ContainsFunc(s, invisible) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case invisible(r):
			return utf8.RuneError
		}
		return r
	}, s)
}
