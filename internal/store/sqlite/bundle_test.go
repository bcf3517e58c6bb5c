package sqlite

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
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
		e.ID = eventid.Make(e.Log, e.Seq, e.ReceivedAt)
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
	evs[50].Metadata = json.RawMessage(`{"blob":"` + strings.Repeat("x", 3*bundleBytes) + `"}`)
	first, data := packBundles(evs)
	n := 0
	for i, d := range data {
		got, err := decodeBundle("audit", eventKey(3, first[i]), d)
		if err != nil {
			t.Fatalf("decode bundle at %d: %v", first[i], err)
		}
		last := first[i] + int64(len(got)) - 1
		if len(got) > 1 && len(d) > bundleBytes {
			t.Errorf("bundle of seqs %d..%d takes %d bytes, over %d", first[i], last, len(d), bundleBytes)
		}
		if i > 0 && first[i] != first[i-1]+bundleLen(data[i-1]) {
			t.Errorf("bundle %d starts at seq %d, want %d", i, first[i], first[i-1]+bundleLen(data[i-1]))
		}
		for j, e := range got {
			want := evs[first[i]-37+int64(j)]
			if g, w := canon.Append(nil, e), canon.Append(nil, want); !bytes.Equal(g, w) {
				t.Errorf("event %d decodes to\n%s\nwant\n%s", want.Seq, g, w)
			}
		}
		n += len(got)
	}
	if n != len(evs) {
		t.Errorf("bundles hold %d events, want %d", n, len(evs))
	}
	if first[0] != 37 {
		t.Errorf("first bundle starts at seq %d, want 37", first[0])
	}
	for i := range data[:len(data)-1] {
		// Full: the next event would not have fitted.
		next := evs[first[i+1]-37]
		if l := bundleLen(data[i]); l < bundleMax && len(data[i])+len(appendRecord(nil, next))+3 <= bundleBytes {
			t.Errorf("bundle %d ends after %d events and %d bytes, with room for seq %d", i, l, len(data[i]), next.Seq)
		}
	}
	if len(data) < 100/bundleMax+1 {
		t.Errorf("%d bundles for 100 events, want more than %d", len(data), 100/bundleMax)
	}
}

// Every cut of a bundle, and every single-byte change to its framing, is
// either an error wrapping store.ErrDamaged or a decoding of the same
// number of events: never a panic, never a silently shorter bundle.
func TestBundleDamage(t *testing.T) {
	evs := bundleEvents(0, bundleMax)
	data := bundleOf(evs)
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

// bundleOf encodes evs as one bundle, whatever its size.
func bundleOf(evs []*event.Event) []byte {
	b := []byte{bundleVersion}
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		r := appendRecord(nil, e)
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

func FuzzDecodeBundle(f *testing.F) {
	evs := bundleEvents(0, 4)
	f.Add(bundleOf(evs))
	f.Add(bundleOf(evs[:1]))
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
		again, err := decodeBundle("audit", eventKey(1, 5), bundleOf(got))
		if err != nil || len(again) != len(got) {
			t.Fatalf("re-encoded bundle decodes to %d events, %v; want %d", len(again), err, len(got))
		}
		for i := range got {
			if a, b := canon.Append(nil, again[i]), canon.Append(nil, got[i]); !bytes.Equal(a, b) {
				t.Fatalf("event %d re-encodes to\n%s\nwant\n%s", i, a, b)
			}
		}
	})
}
