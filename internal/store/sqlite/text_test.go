package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// TestTextIndexAgreesWithScan searches free text that the full-text index
// and the scan of events not indexed yet could split or fold differently,
// before and after indexing: the results must not depend on how far the
// indexer got, and a word searched as it was stored must find its event.
func TestTextIndexAgreesWithScan(t *testing.T) {
	words := []struct {
		name, stored string
		queries      []string
	}{
		{"ascii", "Quarterly Review", []string{"quarterly", "REVIEW", "quart*"}},
		{"precomposed accents", "Crème Brûlée", []string{"crème", "CRÈME", "brûlée", "cr*"}},
		{"combining accents", "Cre\u0300me Bru\u0302le\u0301e", []string{"Cre\u0300me", "cre\u0300me", "cre", "me", "bru\u0302le\u0301e"}},
		{"dotted capital I", "İstanbul", []string{"İstanbul", "istanbul", "İSTANBUL"}},
		{"Greek", "ΟΔΟΣ Ἀθηνᾶ", []string{"οδοσ", "ΟΔΟΣ", "ἀθηνᾶ"}},
		{"CJK", "東京支店", []string{"東京支店", "東京*"}},
		{"Cherokee", "ᏣᎳᎩ", []string{"ᏣᎳᎩ", "ꮳꮃꭹ"}},
		{"Georgian Mtavruli", "ᲥᲐᲠᲗᲣᲚᲘ", []string{"ᲥᲐᲠᲗᲣᲚᲘ", "ქართული"}},
		{"Latin capital added in Unicode 12", "Ꞻlpha", []string{"Ꞻlpha", "ꞻlpha"}},
		{"letters joined by a symbol", "alpha֍beta", []string{"alpha", "beta", "alpha֍beta"}},
	}
	ctx := context.Background()
	s := create(t, filepath.Join(t.TempDir(), "trail.db"), Options{})
	resume := pauseIndexer(s)
	w := storetest.NewWriter(t, s, "audit")
	var evs []event.Event
	for _, word := range words {
		evs = append(evs, event.Event{Actor: event.Actor{ID: "a"}, Action: "x", Reason: word.stored})
	}
	w.Append(t, s, t0, evs...)

	search := func(text string) []int64 {
		t.Helper()
		res, err := s.Search(ctx, w.Info.ID, store.Query{Text: text, To: -1})
		if err != nil {
			t.Fatalf("Search(%q) = %v", text, err)
		}
		var seqs []int64
		for _, e := range res {
			seqs = append(seqs, e.Seq)
		}
		return seqs
	}
	before := map[string][]int64{}
	for _, word := range words {
		for _, q := range word.queries {
			before[q] = search(q)
		}
	}
	indexTo(t, s, w.Info.ID, w.Size())
	for i, word := range words {
		t.Run(word.name, func(t *testing.T) {
			if got := search(word.stored); !slices.Contains(got, int64(i)) {
				t.Errorf("indexed: Search(%q) = %v, want it to find event %d, which holds that text", word.stored, got, i)
			}
			for _, q := range word.queries {
				if got := search(q); !slices.Equal(got, before[q]) {
					t.Errorf("Search(%q) of %q = %v before indexing, %v after", q, word.stored, fmt.Sprint(before[q]), fmt.Sprint(got))
				}
			}
		})
	}
	resume()
}
