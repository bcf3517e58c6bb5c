package tally

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// fill adds n random keys' sums to a tally holding at most maxKeys in
// memory and to a map, and returns both.
func fill(t *testing.T, n, maxKeys int, seed uint64) (*Tally, map[string]Sums) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	tl := New(maxKeys)
	t.Cleanup(func() { tl.Close() })
	want := map[string]Sums{}
	for range n {
		k := fmt.Sprintf("k%d", r.IntN(n/3+1))
		if r.IntN(10) == 0 {
			k += "\x00\xff" // bytes, not text
		}
		s := Sums{1, r.Int64(), -r.Int64N(5), 0}
		add := func() error { return tl.Add([]byte(k), s) }
		if r.IntN(2) == 0 {
			add = func() error { return tl.AddString(k, s) }
		}
		if err := add(); err != nil {
			t.Fatal(err)
		}
		w := want[k]
		w.Add(s)
		want[k] = w
	}
	return tl, want
}

func TestAll(t *testing.T) {
	for _, tt := range []struct {
		name       string
		n, maxKeys int
		wantRuns   bool
	}{
		{"in memory", 500, 1 << 20, false},
		{"runs", 5000, 100, true},
		{"a key a run", 300, 1, true},
		{"empty", 0, 10, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tl, want := fill(t, tt.n, tt.maxKeys, uint64(tt.n))
			if got := tl.Runs() > 0; got != tt.wantRuns {
				t.Errorf("Runs() = %d, want runs: %v", tl.Runs(), tt.wantRuns)
			}
			for pass := range 2 { // All may be read again
				var keys []string
				got := map[string]Sums{}
				for e, err := range tl.All() {
					if err != nil {
						t.Fatal(err)
					}
					keys = append(keys, e.Key)
					got[e.Key] = e.Sums
				}
				if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
					t.Errorf("pass %d: All() keys not ascending or repeated", pass)
				}
				if !maps.Equal(got, want) {
					t.Errorf("pass %d: All() = %d keys, want %d, or sums differ", pass, len(got), len(want))
				}
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a, want := fill(t, 4000, 300, 9)
	b := New(250)
	defer b.Close()
	changed := map[string]bool{}
	var later []Entry
	i := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		s := want[k]
		switch i++; i % 97 {
		case 0: // missing from b
			changed[k] = true
			continue
		case 1: // one number off
			s[2]++
			changed[k] = true
		}
		// Added in two halves, so that runs of b hold parts of a key.
		half := Sums{s[0] / 2, s[1] / 2, s[2] / 2, s[3] / 2}
		rest := s
		for j := range rest {
			rest[j] -= half[j]
		}
		if err := b.Add([]byte(k), half); err != nil {
			t.Fatal(err)
		}
		later = append(later, Entry{k, rest})
	}
	for _, e := range later {
		if err := b.Add([]byte(e.Key), e.Sums); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"extra1", "extra2"} {
		b.Add([]byte(k), Sums{1})
		changed[k] = true
	}
	// Zero sums count as absent.
	b.Add([]byte("zero"), Sums{})
	got := map[string]bool{}
	err := Diff(a, b, func(key string, sa, sb Sums) error {
		if sa == sb {
			t.Errorf("Diff passed %q with equal sums %v", key, sa)
		}
		if w, ok := want[key]; ok && sa != w {
			t.Errorf("Diff passed %q with a = %v, want %v", key, sa, w)
		}
		got[key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, changed) {
		t.Errorf("Diff found %d keys differing, want %d", len(got), len(changed))
	}
	if b.Runs() < 2 {
		t.Errorf("b wrote %d runs, want several", b.Runs())
	}
}
