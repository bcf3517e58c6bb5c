package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/trail-audit/trail/internal/event"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest"
)

// bundleEvents returns n workload-like events at seqs first, first+1, …,
// as a log would store them, plus some at the edges of what a bundle
// holds.
func bundleEvents(first int64, n int) []*event.Event {
	evs := storetest.Events(n, 7)
	out := make([]*event.Event, n)
	for i := range evs {
		e := &evs[i]
		e.Seq, e.Log = first+int64(i), "audit"
		e.ReceivedAt = t0.Add(time.Duration(i) * time.Millisecond)
		if e.Time.IsZero() {
			e.Time = e.ReceivedAt
		}
		e.ID = event.MakeID(e.Log, e.Seq, e.ReceivedAt)
		out[i] = e
	}
	// A target holding the separators falls back to JSON; changes with
	// only one side; an event before 1970.
	out[1].Targets = []event.Target{{Type: "a\x1eb", ID: "c\x1fd"}}
	out[2].Changes = &event.Changes{After: json.RawMessage(`{"x":1}`)}
	out[3].Time = time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)
	return out
}

func TestBundleRoundTrip(t *testing.T) {
	evs := bundleEvents(37, 100)
	parts := bundles(evs)
	if got := len(parts[0]); got != bundleMax-37%bundleMax {
		t.Errorf("first bundle holds %d events, want %d (up to the next multiple of %d)", got, bundleMax-37%bundleMax, bundleMax)
	}
	n := 0
	for _, p := range parts {
		if len(p) > bundleMax || p[0].Seq/bundleMax != p[len(p)-1].Seq/bundleMax {
			t.Fatalf("bundle of seqs %d..%d crosses a multiple of %d", p[0].Seq, p[len(p)-1].Seq, bundleMax)
		}
		data := appendBundle(nil, p)
		got, err := decodeBundle("audit", eventKey(3, p[0].Seq), data)
		if err != nil {
			t.Fatalf("decode bundle at %d: %v", p[0].Seq, err)
		}
		if len(got) != len(p) {
			t.Fatalf("bundle at %d decodes to %d events, want %d", p[0].Seq, len(got), len(p))
		}
		for i := range got {
			if g, w := got[i].AppendCanonical(nil), p[i].AppendCanonical(nil); !bytes.Equal(g, w) {
				t.Errorf("event %d decodes to\n%s\nwant\n%s", p[i].Seq, g, w)
			}
		}
		if l := bundleLen(data); l != int64(len(p)) {
			t.Errorf("bundleLen = %d, want %d", l, len(p))
		}
		n += len(got)
	}
	if n != len(evs) {
		t.Errorf("bundles hold %d events, want %d", n, len(evs))
	}
}

// Every cut of a bundle, and every single-byte change to its framing, is
// either an error wrapping store.ErrDamaged or a decoding of the same
// number of events: never a panic, never a silently shorter bundle.
func TestBundleDamage(t *testing.T) {
	evs := bundleEvents(0, bundleMax)
	data := appendBundle(nil, evs)
	for cut := range len(data) {
		_, err := decodeBundle("audit", eventKey(1, 0), data[:cut])
		if !errors.Is(err, store.ErrDamaged) {
			t.Fatalf("bundle cut to %d of %d bytes: %v, want ErrDamaged", cut, len(data), err)
		}
	}
	for i := range len(data) {
		d := bytes.Clone(data)
		d[i] ^= 0xff
		got, err := decodeBundle("audit", eventKey(1, 0), d)
		if err != nil && !errors.Is(err, store.ErrDamaged) {
			t.Fatalf("byte %d flipped: %v, want ErrDamaged", i, err)
		}
		if err == nil && len(got) != len(evs) {
			t.Fatalf("byte %d flipped: %d events, want %d or an error", i, len(got), len(evs))
		}
	}
}

func FuzzDecodeBundle(f *testing.F) {
	evs := bundleEvents(0, 4)
	f.Add(appendBundle(nil, evs))
	f.Add(appendBundle(nil, evs[:1]))
	f.Add([]byte{bundleVersion, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeBundle("audit", eventKey(1, 5), data)
		if err != nil {
			if !errors.Is(err, store.ErrDamaged) {
				t.Fatalf("error %v does not wrap ErrDamaged", err)
			}
			return
		}
		// What decodes re-encodes to a bundle of the same events.
		again, err := decodeBundle("audit", eventKey(1, 5), appendBundle(nil, got))
		if err != nil || len(again) != len(got) {
			t.Fatalf("re-encoded bundle decodes to %d events, %v; want %d", len(again), err, len(got))
		}
		for i := range got {
			if a, b := again[i].AppendCanonical(nil), got[i].AppendCanonical(nil); !bytes.Equal(a, b) {
				t.Fatalf("event %d re-encodes to\n%s\nwant\n%s", i, a, b)
			}
		}
	})
}
