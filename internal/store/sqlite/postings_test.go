package sqlite

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Index entries become one posting row per value, from which the entries'
// keys come back in order, each once, and only those in the range asked.
func TestPostingsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := eventKey(3, 5<<segBits)
	values := []string{"alice", "bob", "carol"}
	var es []indexEntry
	want := map[string][]int64{}
	for i := range 3000 {
		k := base + int64(i*5) + rng.Int64N(5)
		v := values[rng.IntN(len(values))]
		es = append(es, indexEntry{a: v, k: k})
		if i%7 == 0 {
			es = append(es, indexEntry{a: v, k: k}) // the same target twice
		}
		if n := len(want[v]); n == 0 || want[v][n-1] != k {
			want[v] = append(want[v], k)
		}
	}
	slices.SortFunc(es, func(x, y indexEntry) int {
		return cmp.Or(strings.Compare(x.a, y.a), cmp.Compare(x.k, y.k))
	})
	ps := postings(es)
	if len(ps) != len(values) {
		t.Fatalf("%d posting rows for %d values", len(ps), len(values))
	}
	for _, p := range ps {
		keys, err := appendPosting(nil, p.k, p.ks, 0, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, want[p.a]) {
			t.Errorf("%s: %d keys back, want %d", p.a, len(keys), len(want[p.a]))
		}
		if len(p.ks) > 2*len(keys) {
			t.Errorf("%s: %d bytes for %d keys 5 apart", p.a, len(p.ks), len(keys))
		}
		lo, hi := want[p.a][10], want[p.a][20]
		keys, err = appendPosting(nil, p.k, p.ks, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, want[p.a][10:21]) {
			t.Errorf("%s in [%d, %d]: %v, want %v", p.a, lo, hi, keys, want[p.a][10:21])
		}
	}
}

// A damaged posting list is an error, never a panic or a key outside its
// row's segment.
func TestPostingDamage(t *testing.T) {
	k := eventKey(1, 3<<segBits)
	for name, ks := range map[string][]byte{
		"truncated varint": {0x80},
		"zero delta":       {1, 0},
		"past the segment": {0xff, 0xff, 0x03},
		"overlong varint":  {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if _, err := appendPosting(nil, k, ks, 0, math.MaxInt64); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzAppendPosting(f *testing.F) {
	f.Add(int64(5), []byte{1, 2, 3})
	f.Add(int64(1<<segBits-1), []byte{1})
	f.Add(int64(math.MaxInt64-2), []byte{1, 1})
	f.Fuzz(func(t *testing.T, k int64, ks []byte) {
		if k < 0 {
			return // keys are never negative
		}
		keys, err := appendPosting(nil, k, ks, 0, math.MaxInt64)
		if err != nil {
			return
		}
		for i, got := range keys {
			if segOf(got) != segOf(k) || i > 0 && got <= keys[i-1] {
				t.Fatalf("keys %v from row %d", keys, k)
			}
		}
	})
}
