package verify

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// windowSize is how many leaf hashes Check computes before growing the tree
// with them (32 bytes each).
const windowSize = 1 << 18

// partSize is how many events one reader hashes at a time.
const partSize = 1 << 14

// window holds the leaf hashes of events [from, to), or those of a prefix
// of them and the *Error that stopped the hashing at the first bad event.
type window struct {
	from, to int64
	leaves   []tlog.Hash // leaves[i] is the leaf hash of event from+i
	last     time.Time   // received_at of event to-1
	err      error
	done     chan struct{}
}

// leafWindows yields the leaf hashes of the events [0, size) of src, a
// window at a time, hashing the next window while the caller grows the
// tree from this one: reading and canonicalising events is most of the
// work. A window's leaves are valid until the caller asks for the window
// after next. After a window with an error it yields no more.
func leafWindows(ctx context.Context, src Source, size int64, readers int) iter.Seq[*window] {
	return func(yield func(*window) bool) {
		if size == 0 {
			return
		}
		var bufs [2][]tlog.Hash
		for i := range bufs {
			bufs[i] = make([]tlog.Hash, min(size, windowSize))
		}
		start := func(from int64, prev time.Time, buf []tlog.Hash) *window {
			w := &window{from: from, to: min(size, from+windowSize), done: make(chan struct{})}
			w.leaves = buf[:w.to-from]
			go func() {
				defer close(w.done)
				w.last, w.err = leafHashes(ctx, src, size, w.from, w.to, prev, w.leaves, readers)
			}()
			return w
		}
		var ahead *window
		defer func() {
			if ahead != nil {
				<-ahead.done
			}
		}()
		for i, cur := 1, start(0, time.Time{}, bufs[0]); cur != nil; i++ {
			<-cur.done
			ahead = nil
			if cur.err == nil && cur.to < size {
				ahead = start(cur.to, cur.last, bufs[i%2])
			}
			if !yield(cur) {
				return
			}
			cur = ahead
		}
	}
}

// leafHashes computes the leaf hashes of events [from, to) of src (which
// holds size events) into out, a part at a time on readers goroutines, and
// checks that the events are all there, in order, with received_at never
// decreasing (prev is received_at of event from-1). It returns received_at
// of event to-1, or an *Error for the first bad event.
func leafHashes(ctx context.Context, src Source, size, from, to int64, prev time.Time, out []tlog.Hash, readers int) (time.Time, error) {
	type result struct {
		first, last time.Time
		err         error
	}
	parts := int((to - from + partSize - 1) / partSize)
	results := make([]result, parts)
	var wg sync.WaitGroup
	sem := make(chan struct{}, readers)
	for p := range parts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			lo := from + int64(p)*partSize
			hi := min(to, lo+partSize)
			r := &results[p]
			r.first, r.last, r.err = hashPart(ctx, src, size, lo, hi, out[lo-from:hi-from])
		})
	}
	wg.Wait()
	for p, r := range results {
		// Parts are in seq order, so the first fault found is the lowest.
		if !r.first.IsZero() && r.first.Before(prev) {
			return prev, errorf(from+int64(p)*partSize, "received_at %s is earlier than the previous event's", r.first.Format(time.RFC3339Nano))
		}
		if r.err != nil {
			return prev, r.err
		}
		prev = r.last
	}
	return prev, nil
}

// hashPart computes the leaf hashes of events [lo, hi) into out. It returns
// received_at of the first and last of them.
func hashPart(ctx context.Context, src Source, size, lo, hi int64, out []tlog.Hash) (first, last time.Time, err error) {
	var buf []byte
	n := lo
	err = src.Walk(ctx, lo, hi, func(e *event.Event) error {
		if e.Seq != n {
			return errorf(n, "event missing (next stored event is seq %d): events were deleted", e.Seq)
		}
		if n == lo {
			first = e.ReceivedAt
		} else if e.ReceivedAt.Before(last) {
			return errorf(n, "received_at %s is earlier than the previous event's", e.ReceivedAt.Format(time.RFC3339Nano))
		}
		last = e.ReceivedAt
		buf = canon.Append(buf[:0], e)
		out[n-lo] = tlog.RecordHash(buf)
		n++
		return nil
	})
	var fault *Error
	switch {
	case errors.As(err, &fault):
		return first, last, err
	case errors.Is(err, ErrUnreadable):
		return first, last, errorf(n, "stored events cannot be read: %v", err)
	case err != nil:
		return first, last, fmt.Errorf("read events: %w", err)
	case n != hi:
		return first, last, errorf(n, "event missing: the log should hold %d events but ends at %d", size, n)
	}
	return first, last, nil
}
