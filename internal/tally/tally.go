// Package tally sums numbers by key in bounded memory. Past a number of
// keys a Tally writes its sums, sorted by key, to a temporary file (a run),
// and reading merges the runs, so that it can count by every word or hour
// of a log of any size. Log.VerifyIndex derives a log's counts and word
// lists with it, and compares them with the stored ones.
package tally

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"slices"
)

// Sums are the numbers summed under a key. Addition wraps around.
type Sums [4]int64

// Add adds o to s.
func (s *Sums) Add(o Sums) {
	for i := range s {
		s[i] += o[i]
	}
}

// A Tally sums Sums by key. It is not safe for concurrent use.
type Tally struct {
	max  int
	m    map[string]*Sums
	runs []run
}

// run is a file of sums, sorted by key; path is empty once it is removed.
type run struct {
	f    *os.File
	path string
}

// New returns a tally that holds up to maxKeys keys in memory (at least
// one) before it writes them to a run.
func New(maxKeys int) *Tally {
	return &Tally{max: max(maxKeys, 1), m: map[string]*Sums{}}
}

// Add adds s to the sums of key, which it copies. It fails only if a run
// cannot be written.
func (t *Tally) Add(key []byte, s Sums) error {
	if p := t.m[string(key)]; p != nil { // looked up without a copy
		p.Add(s)
		return nil
	}
	return t.AddString(string(key), s)
}

// AddString is Add with a key that is a string.
func (t *Tally) AddString(key string, s Sums) error {
	if p := t.m[key]; p != nil {
		p.Add(s)
		return nil
	}
	if len(t.m) >= t.max {
		if err := t.spill(); err != nil {
			return err
		}
	}
	t.m[key] = &s
	return nil
}

// Runs reports how many runs the tally has written.
func (t *Tally) Runs() int { return len(t.runs) }

// spill writes the keys in memory to a new run, sorted, and forgets them.
func (t *Tally) spill() error {
	f, err := os.CreateTemp("", "trail-tally-*")
	if err != nil {
		return fmt.Errorf("tally: %w", err)
	}
	// Removed at once where the system allows it (the file lives on
	// while open): it then goes with the process, however that ends.
	r := run{f, f.Name()}
	if os.Remove(r.path) == nil {
		r.path = ""
	}
	t.runs = append(t.runs, r)
	w := bufio.NewWriterSize(f, 1<<16)
	var buf []byte
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
		buf = append(buf, k...)
		for _, n := range t.m[k] {
			buf = binary.AppendVarint(buf, n)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("tally: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("tally: %w", err)
	}
	clear(t.m)
	return nil
}

// Entry is a key and its sums.
type Entry struct {
	Key string
	Sums
}

// All yields every key with its sums, in ascending byte order of the key,
// each once. It may be called again, but not while another of its
// iterations runs; it yields an error, and stops, if a run cannot be read.
func (t *Tally) All() iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		var h cursors
		mem := slices.Sorted(maps.Keys(t.m))
		if len(mem) > 0 {
			h = append(h, &cursor{next: func() (Entry, bool, error) {
				if len(mem) == 0 {
					return Entry{}, false, nil
				}
				k := mem[0]
				mem = mem[1:]
				return Entry{k, *t.m[k]}, true, nil
			}})
		}
		for _, r := range t.runs {
			if _, err := r.f.Seek(0, io.SeekStart); err != nil {
				yield(Entry{}, fmt.Errorf("tally: %w", err))
				return
			}
			h = append(h, &cursor{next: runReader(bufio.NewReaderSize(r.f, 1<<16))})
		}
		live := h[:0]
		for _, c := range h {
			if err := c.advance(); err != nil {
				yield(Entry{}, err)
				return
			}
			if c.ok {
				live = append(live, c)
			}
		}
		h = live
		heap.Init(&h)
		for len(h) > 0 {
			e := Entry{Key: h[0].e.Key}
			for len(h) > 0 && h[0].e.Key == e.Key {
				c := h[0]
				e.Add(c.e.Sums)
				if err := c.advance(); err != nil {
					yield(Entry{}, err)
					return
				}
				if c.ok {
					heap.Fix(&h, 0)
				} else {
					heap.Pop(&h)
				}
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// runReader returns the reader of the entries of a run.
func runReader(r *bufio.Reader) func() (Entry, bool, error) {
	return func() (Entry, bool, error) {
		n, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return Entry{}, false, nil
		}
		if err != nil {
			return Entry{}, false, fmt.Errorf("tally: read run: %w", err)
		}
		key := make([]byte, n)
		if _, err := io.ReadFull(r, key); err != nil {
			return Entry{}, false, fmt.Errorf("tally: read run: %w", err)
		}
		e := Entry{Key: string(key)}
		for i := range e.Sums {
			if e.Sums[i], err = binary.ReadVarint(r); err != nil {
				return Entry{}, false, fmt.Errorf("tally: read run: %w", err)
			}
		}
		return e, true, nil
	}
}

// cursor is the next entry of a run or of the keys in memory.
type cursor struct {
	e    Entry
	ok   bool
	next func() (Entry, bool, error)
}

func (c *cursor) advance() error {
	var err error
	c.e, c.ok, err = c.next()
	return err
}

// cursors is a heap of cursors by key.
type cursors []*cursor

func (h cursors) Len() int           { return len(h) }
func (h cursors) Less(i, j int) bool { return h[i].e.Key < h[j].e.Key }
func (h cursors) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// Close removes the tally's runs.
func (t *Tally) Close() error {
	var errs []error
	for _, r := range t.runs {
		errs = append(errs, r.f.Close())
		if r.path != "" {
			errs = append(errs, os.Remove(r.path))
		}
	}
	t.runs = nil
	clear(t.m)
	return errors.Join(errs...)
}

// Diff calls fn with each key whose sums differ between a and b, a key
// missing from one counting as all zero there, in ascending byte order,
// and stops at fn's first error, which it returns.
func Diff(a, b *Tally, fn func(key string, a, b Sums) error) error {
	nextA, stopA := iter.Pull2(a.All())
	defer stopA()
	nextB, stopB := iter.Pull2(b.All())
	defer stopB()
	read := func(next func() (Entry, error, bool)) (Entry, bool, error) {
		e, err, ok := next()
		return e, ok, err
	}
	ea, okA, err := read(nextA)
	if err != nil {
		return err
	}
	eb, okB, err := read(nextB)
	if err != nil {
		return err
	}
	for okA || okB {
		switch {
		case okA && (!okB || ea.Key < eb.Key):
			if ea.Sums != (Sums{}) {
				if err := fn(ea.Key, ea.Sums, Sums{}); err != nil {
					return err
				}
			}
			if ea, okA, err = read(nextA); err != nil {
				return err
			}
		case okB && (!okA || eb.Key < ea.Key):
			if eb.Sums != (Sums{}) {
				if err := fn(eb.Key, Sums{}, eb.Sums); err != nil {
					return err
				}
			}
			if eb, okB, err = read(nextB); err != nil {
				return err
			}
		default:
			if ea.Sums != eb.Sums {
				if err := fn(ea.Key, ea.Sums, eb.Sums); err != nil {
					return err
				}
			}
			if ea, okA, err = read(nextA); err != nil {
				return err
			}
			if eb, okB, err = read(nextB); err != nil {
				return err
			}
		}
	}
	return nil
}
