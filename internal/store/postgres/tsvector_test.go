package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestTSVectorBinary: the words of a text row, sent in binary, are the
// tsvector that their text form makes, whatever they hold (quotes,
// backslashes, colons, letters beyond ASCII, a word as long as a stored
// word gets), in whatever order they were added; a string parameter of
// a tsvector is still taken as text.
func TestTSVectorBinary(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	words := []string{"zeta", "it's", `back\slash`, "a:b", "ünïcödé", "日本", strings.Repeat("x", maxWord), "a", "ab", "b"}
	var r textRows
	for k := range 70 { // positions past 64 use the mask's second word
		r.start(1, 512+int64(k))
		for i, w := range words {
			if k%(i+1) == 0 {
				r.word([]byte(w))
			}
		}
	}
	r.flush()
	if len(r.docs) != 1 {
		t.Fatalf("%d rows, want 1", len(r.docs))
	}
	// The text form, as tsLexeme quotes a word.
	var text []string
	for i, w := range words {
		var pos []string
		for k := 0; k < 70; k += i + 1 {
			pos = append(pos, strconv.Itoa(k+1))
		}
		text = append(text, tsLexeme(w)+":"+strings.Join(pos, ","))
	}
	var same bool
	var lexemes []string
	err := s.pool.QueryRow(ctx, `SELECT $1::tsvector = $2::tsvector, (SELECT array_agg(lexeme) FROM unnest($1::tsvector))`,
		r.docs[0], strings.Join(text, " ")).Scan(&same, &lexemes)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(words))
	if !same || !slices.Equal(lexemes, want) {
		t.Errorf("binary tsvector: equal to the text form %v, lexemes %q; want equal, %q", same, lexemes, want)
	}
}
