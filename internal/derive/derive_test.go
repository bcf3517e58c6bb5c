package derive

import (
	"slices"
	"strings"
	"testing"

	"github.com/trail-audit/trail/event"
)

// distinctTokens is what words must return for s: the words of
// Tokens(s), each once, in order of first appearance.
func distinctTokens(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range Tokens(s) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// words' ASCII path splits and lower-cases exactly as Tokens does, and
// each word is stored once.
func TestTextASCII(t *testing.T) {
	for _, s := range []string{
		"", " ", "a", "A.b-C_d", "  user.login.failed  ", "x@y.example.com 10.0.0.1", "Tab\there\nNL",
		"\x00\x7f~!", "trailing.", ".leading", "MiXeD123abc",
		"document.read document read Document", "Crème crème brûlée CRÈME",
		strings.Repeat("a b c d e f g h i j k l m n o p q r s t ", 3) + "z", // past the linear search
	} {
		if got, want := words(s), distinctTokens(s); !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("user.login.failed Alice@example.com")
	f.Add("Crème Brûlée")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := words(s), distinctTokens(s); !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q, want %q", s, got, want)
		}
	})
}

// eachWordSet is the set of words EachWord gives for e, reusing buf.
func eachWordSet(buf []byte, e *event.Event) ([]byte, []string) {
	var got []string
	buf = EachWord(buf, e, func(w []byte) {
		if !slices.Contains(got, string(w)) {
			got = append(got, string(w))
		}
	})
	slices.Sort(got)
	return buf, got
}

// EachWord gives exactly the words of Words, whatever the text, with its
// buffer passed from one event to the next.
func TestEachWord(t *testing.T) {
	var buf []byte
	for _, s := range []string{
		"", "a", "A.b-C_d", "  user.login.failed  ", "x@y.example.com 10.0.0.1", "Tab\there\nNL",
		"\x00\x7f~!", "trailing.", "MiXeD123abc", "document.read document read Document",
		"Crème crème brûlée CRÈME", "ascii first, then ÜBER", strings.Repeat("Long", 400),
	} {
		e := &event.Event{Action: "user.Login", Reason: s, Actor: event.Actor{ID: "usr_1", Name: s},
			Targets: []event.Target{{Type: "doc", ID: "D-9"}}, Metadata: []byte(`{"k":"` + strings.ReplaceAll(s, `"`, "") + `","n":12}`)}
		var got []string
		buf, got = eachWordSet(buf, e)
		want := slices.Clone(Words(e))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("EachWord with %q = %q, want %q", s, got, want)
		}
	}
}

func FuzzEachWord(f *testing.F) {
	f.Add("user.login.failed Alice@example.com", "Crème Brûlée")
	f.Fuzz(func(t *testing.T, reason, name string) {
		e := &event.Event{Action: "a.B", Reason: reason, Actor: event.Actor{Name: name}}
		_, got := eachWordSet(nil, e)
		want := slices.Clone(Words(e))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("EachWord(%q, %q) = %q, want %q", reason, name, got, want)
		}
	})
}
