package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

func TestTableFit(t *testing.T) {
	tb := &table{header: []string{"ID", "NAME", "NOTE"}, shrink: []int{0, 1, 1}}
	tb.add("1", "alice", strings.Repeat("n", 60))
	tb.add("22", "bob with a long display name", "short")
	for _, tt := range []struct {
		name  string
		width int
		want  []string
	}{
		{"no limit", 0, []string{
			"ID  NAME                          NOTE",
			"1   alice                         " + strings.Repeat("n", 60),
			"22  bob with a long display name  short",
		}},
		{"widest column cut first", 60, []string{
			"ID  NAME                         NOTE",
			"1   alice                        " + strings.Repeat("n", 26) + "…",
			"22  bob with a long display na…  short",
		}},
		{"down to the minimum", 10, []string{
			"ID  NAME      NOTE",
			"1   alice     nnnnnnn…",
			"22  bob wit…  short",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tb.write(&b, tt.width)
			if got, want := b.String(), strings.Join(tt.want, "\n")+"\n"; got != want {
				t.Errorf("write(%d) =\n%s\nwant\n%s", tt.width, got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if n := utf8.RuneCountInString(line); tt.width > 20 && n > tt.width {
					t.Errorf("write(%d): line %q is %d wide", tt.width, line, n)
				}
			}
		})
	}
}

func TestTableFitLevels(t *testing.T) {
	tb := &table{header: []string{"ID", "NAME", "NOTE"}, shrink: []int{0, 2, 1}}
	tb.add("1", "alice", strings.Repeat("n", 60))
	tb.add("22", "bob with a long display name", "short")
	var b bytes.Buffer
	tb.write(&b, 60)
	want := "ID  NAME                          NOTE\n" +
		"1   alice                         " + strings.Repeat("n", 25) + "…\n" +
		"22  bob with a long display name  short\n"
	if got := b.String(); got != want {
		t.Errorf("write(60) =\n%s\nwant NOTE cut before NAME:\n%s", got, want)
	}
}

func TestCleanCell(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines\ttab", "two lines tab"},
		{"\x1b[31mred\x1b[0m", "\ufffd[31mred\ufffd[0m"},
		{"csi \u009b2J", "csi \ufffd2J"},
		{"bidi \u202eevil", "bidi \ufffdevil"},
		{"ünïcödé ok", "ünïcödé ok"},
	} {
		if got := cleanCell(tt.in); got != tt.want {
			t.Errorf("cleanCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeInvisible(t *testing.T) {
	in := "{\n  \"reason\": \"a\u202eb\u009bc 😀\"\n}"
	want := "{\n  \"reason\": \"a\\u202eb\\u009bc 😀\"\n}"
	if got := escapeInvisible(in); got != want {
		t.Errorf("escapeInvisible(%q) = %q, want %q", in, got, want)
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello", 4, "hel…"},
		{"héllo", 3, "hé…"},
		{"hello", 1, "h"},
	} {
		if got := cut(tt.in, tt.n); got != tt.want || utf8.RuneCountInString(got) > tt.n {
			t.Errorf("cut(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// Wide characters take two columns on a terminal: columns after them
// line up, and a line fits the width in columns, not in characters.
func TestTableWideCharacters(t *testing.T) {
	tb := &table{header: []string{"ACTOR", "ACTION"}, shrink: []int{1, 0}}
	tb.add("管理者アカウント管理者アカウント", "user.delete")
	tb.add("alice", "user.login")
	tb.add("😀😀😀", "user.update")
	var b bytes.Buffer
	if err := tb.write(&b, 30); err != nil {
		t.Fatal(err)
	}
	at := -1
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if w := runewidth.StringWidth(l); w > 30 {
			t.Errorf("line %q is %d columns, over 30", l, w)
		}
		i := strings.Index(l, "user.")
		if i < 0 {
			i = strings.Index(l, "ACTION")
		}
		col := runewidth.StringWidth(l[:i])
		if at >= 0 && col != at {
			t.Errorf("the second column starts at column %d in %q, %d above", col, l, at)
		}
		at = col
	}
}
