package derive

import (
	"slices"
	"strings"
)

// Term is one term of a free-text query: a word of Tokens, which an event's
// text must hold, or, if Prefix, the start of one of its words.
type Term struct {
	Text   string
	Prefix bool
}

// Terms splits a free-text query into its terms: into words at spaces,
// each word into terms by Tokens, the last term of a word ending in '*'
// being a prefix. Every store reads a query so, and indexes the words of
// Tokens, so that its index and its scan agree on every word.
func Terms(q string) []Term {
	var out []Term
	for _, w := range strings.Fields(q) {
		prefix := strings.HasSuffix(w, "*")
		toks := Tokens(w)
		for i, t := range toks {
			out = append(out, Term{Text: t, Prefix: prefix && i == len(toks)-1})
		}
	}
	return out
}

// MatchTerms reports whether text holds every term.
func MatchTerms(terms []Term, text string) bool {
	toks := Tokens(text)
	for _, t := range terms {
		if !slices.ContainsFunc(toks, func(tok string) bool {
			return tok == t.Text || t.Prefix && strings.HasPrefix(tok, t.Text)
		}) {
			return false
		}
	}
	return true
}
