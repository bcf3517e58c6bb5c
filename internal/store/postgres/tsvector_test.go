package postgres

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
	"github.com/trail-audit/trail/internal/store/storetest"
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
	// A connection that sends every parameter as text (exec, as through
	// PgBouncer; simple_protocol) sends the value's text form, which is
	// the same tsvector; as an array too.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		err := s.pool.QueryRow(ctx, `SELECT $1::tsvector = $2::tsvector AND $3::tsvector[] = ARRAY[$2::tsvector, ''::tsvector]`,
			mode, r.docs[0], strings.Join(text, " "), []tsvector{r.docs[0], appendTSVector(nil, nil, nil, nil)}).Scan(&same)
		if err != nil || !same {
			t.Errorf("%v: tsvector sent as text: equal to the text form %v, %v; want equal", mode, same, err)
		}
	}
}

// TestQueryExecModes: a store whose URL has the connections send every
// parameter as text (default_query_exec_mode exec, which the README
// gives for PgBouncer, or simple_protocol) commits, indexes and finds
// events as any other.
func TestQueryExecModes(t *testing.T) {
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			u, err := url.Parse(pgtest.DB(t))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("default_query_exec_mode", mode)
			u.RawQuery = q.Encode()
			s := open(t, u.String())
			w := storetest.NewWriter(t, s, "audit")
			evs := storetest.Events(40, 1)
			w.Append(t, s, t0, evs...)
			indexed(t, s, w)
			for _, c := range []struct {
				name string
				q    store.Query
			}{
				{"actor", store.Query{Actor: evs[7].Actor.ID, To: -1}},
				{"text", store.Query{Text: evs[7].Action, To: -1}},
			} {
				got, err := s.Search(ctx, w.Info.ID, c.q)
				if err != nil || !slices.ContainsFunc(got, func(e *event.Event) bool { return e.Seq == 7 }) {
					t.Errorf("Search by %s = %d events, %v; want seq 7 among them", c.name, len(got), err)
				}
			}
		})
	}
}
