package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
)

//go:embed templates
var templateFS embed.FS

// pages are the viewer's pages, each its own template set: the shared
// layout and parts, plus the page's file defining "title" and "main".
var pages = map[string]*template.Template{}

// parts holds the templates that pages and fragments share (such as one
// event's table row), for rendering them alone.
var parts *template.Template

var funcs = template.FuncMap{
	"shown": Shown,
	// utc formats t for a <time datetime> attribute.
	"utc": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	// when formats t in UTC for reading; the page's script shows it in
	// the viewer's time zone.
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"num":  FormatInt,
	"list": func(v ...string) []string { return v },
	"rangeLabel": func(r string) string {
		return map[string]string{"": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "custom": "custom…"}[r]
	},
	"bucketName": func(d time.Duration) string {
		if d >= 24*time.Hour {
			return "day"
		}
		return "hour"
	},
	"pct": func(n, total int64) string {
		if total == 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*float64(n)/float64(total))
	},
	// peak is the largest count of a top list, which its bars are scaled
	// to: the longest is full width.
	"peak": func(cs []api.Count) int64 {
		var m int64
		for _, c := range cs {
			m = max(m, c.Count)
		}
		return m
	},
	// isRead reports whether an action is one of Trail's own reads.
	"isRead": trail.IsReadAction,
	// readActions lists Trail's own reads, for the switch that shows them.
	"readActions": func() string { return strings.Join(trail.ReadActions(), ", ") },
}

func init() {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/parts/*.html"))
	parts = base
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, name))
		pages[strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")] = t
	}
}

// Render writes the page name with data, or an error and nothing if the
// template fails (so a half page is never sent).
func Render(w io.Writer, name string, data any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("web: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}

// RenderPart appends the shared template name (from templates/parts),
// executed with data, to buf.
func RenderPart(buf *bytes.Buffer, name string, data any) error {
	return parts.ExecuteTemplate(buf, name, data)
}

// Count returns n, as FormatInt writes it, and noun, in the plural
// unless n is 1: "1 event", "1,204 events".
func Count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return FormatInt(n) + " " + noun + "s"
}

// FormatInt writes n with thousands separators: 1234567 → 1,234,567.
func FormatInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Shown returns s with its bidirectional controls (U+061C, U+200E,
// U+200F, U+202A to U+202E, U+2066 to U+2069) written as \u escapes, for
// the viewer to show: an override turns the text after it around, so that
// "u\u202egnp.exe" would read as "uexe.png". Links and the bytes the
// browser verifies keep the value as stored. In JSON text, where these
// characters can only be inside strings, the escapes mean the same value.
func Shown(s string) string {
	if !strings.ContainsFunc(s, bidiControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if bidiControl(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// bidiControl reports whether r is a bidirectional control character.
func bidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069
}
