package derive

import (
	"slices"
	"strings"
	"testing"
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
