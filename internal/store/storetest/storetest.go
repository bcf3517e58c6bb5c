// Package storetest holds the conformance suites of the parts of
// store.Store, one per part, which every backend runs unchanged from its
// own tests:
//
//	func TestLog(t *testing.T)     { storetest.RunLog(t, open) }
//	func TestIndexes(t *testing.T) { storetest.RunIndexes(t, open) }
//	func TestAccess(t *testing.T)  { storetest.RunAccess(t, open) }
//
// and RunDerived for store.Derived, RunShared for stores sharing one
// database, and RunTamper for the backend's Tamperer (tamper.go), through
// which Trail's tamper and damage tests reach its raw storage.
//
// The suites write batches the way Trail's writer does (see Writer) and
// check what the store returns against what was committed, and searches
// against Match, a brute-force reading of store.Query. Searches run both
// right after commits and once WaitIndexed says the indexes caught up.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/store"
)

// epoch is when the suite's logs start receiving events. It has a
// sub-microsecond part, so a backend that rounds times shows.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// recvAt returns the receipt time of the i-th batch of a test.
func recvAt(i int) time.Time {
	return epoch.Add(time.Duration(i)*time.Second + time.Duration(i)*7)
}

// appendBatches appends evs to w's log in batches of the given sizes, the
// i-th batch received at recvAt(first+i). Sizes that run past evs are cut.
func appendBatches(t *testing.T, s store.Log, w *Writer, evs []event.Event, first int, sizes ...int) {
	t.Helper()
	for i, n := range sizes {
		n = min(n, len(evs))
		if n == 0 {
			return
		}
		w.Append(t, s, recvAt(first+i), evs[:n]...)
		evs = evs[n:]
	}
}

func canonical(e *event.Event) []byte { return canon.Append(nil, e) }

// checkEvent fails t unless got is want, byte for byte in canonical form.
func checkEvent(t *testing.T, call string, got, want *event.Event) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s = nil event, want seq %d", call, want.Seq)
	}
	if g, w := canonical(got), canonical(want); !bytes.Equal(g, w) {
		t.Fatalf("%s = event\n%s\nwant\n%s", call, g, w)
	}
}

func seqs(evs []*event.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func short(s []int64) string {
	if len(s) <= 12 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v … %v (%d)", s[:6], s[len(s)-6:], len(s))
}

func isNotFound(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s = %v, want an error wrapping store.ErrNotFound", call, err)
	}
}
