package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// Writer builds and commits batches for one log the way Trail's writer
// does: events in normal form (event.Prepare) with their assigned fields
// set, leaves hashed from their canonical form by a merkle.Appender, the
// tiles it flushes, and a checkpoint over the new size signed with the
// log's own key. It also keeps what was committed, for tests to compare
// the store against. A Writer is not safe for concurrent use.
type Writer struct {
	Info     store.LogInfo
	Signer   note.Signer
	Verifier note.Verifier

	// Events holds the committed events; Events[i].Seq == i.
	Events []*event.Event
	// Checkpoints holds the committed checkpoints in commit order.
	Checkpoints []store.Checkpoint

	app    *merkle.Appender
	hashes []tlog.Hash // every stored hash of the tree, by stored hash index
	terms  [][]string  // terms[i]: the free-text terms of Events[i], as far as computed
}

// NewWriter creates a log named name in s, with a fresh signing key whose
// name is the log's origin, and returns its writer.
func NewWriter(t testing.TB, s store.Log, name string) *Writer {
	t.Helper()
	origin := "example.com/trail/" + name
	skey, vkey, err := merkle.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.CreateLog(context.Background(), name, origin, vkey)
	if err != nil {
		t.Fatalf("CreateLog(%q) = %v", name, err)
	}
	if info.Name != name || info.Origin != origin || info.VerifierKey != vkey {
		t.Errorf("CreateLog(%q, %q, %q) = %+v, want the name, origin and key given", name, origin, vkey, info)
	}
	app, err := merkle.NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Writer{Info: info, Signer: signer, Verifier: verifier, app: app}
}

// Size returns the number of committed events.
func (w *Writer) Size() int64 { return int64(len(w.Events)) }

// Batch returns the batch that appends evs, received at recv, to the
// committed log. It does not change w: Committed records a batch once the
// store took it.
func (w *Writer) Batch(t testing.TB, recv time.Time, evs ...event.Event) store.Batch {
	t.Helper()
	return w.BatchAt(t, w.Size(), recv, evs...)
}

// BatchAt is Batch with the events numbered from seq rather than from the
// log's size, to build batches a store must reject. Unless seq is Size, the
// batch's tiles and checkpoint describe a tree of evs alone.
func (w *Writer) BatchAt(t testing.TB, seq int64, recv time.Time, evs ...event.Event) store.Batch {
	t.Helper()
	recv = recv.UTC()
	app := w.app.Clone()
	if seq != w.Size() {
		app, _ = merkle.NewAppender(0, nil)
	}
	b := store.Batch{Log: w.Info.ID}
	var buf []byte
	for i := range evs {
		e := evs[i]
		if err := e.Prepare(recv, event.Limits{}); err != nil {
			t.Fatalf("Prepare(event %d) = %v", i, err)
		}
		e.Seq = seq + int64(i)
		e.Log = w.Info.Name
		e.ReceivedAt = recv
		if e.Time.IsZero() {
			e.Time = recv
		}
		e.ID = eventid.Make(e.Log, e.Seq, recv)
		buf = canon.Append(buf[:0], &e)
		app.Append(tlog.RecordHash(buf))
		b.Events = append(b.Events, &e)
	}
	b.Tiles = app.Flush()
	size := seq + int64(len(evs))
	c := merkle.Checkpoint{Origin: w.Info.Origin, Size: size, Hash: app.Root()}
	signed, err := merkle.Sign(c, w.Signer)
	if err != nil {
		t.Fatal(err)
	}
	b.Checkpoint = store.Checkpoint{Size: size, Note: signed, SignedAt: recv.Add(time.Millisecond)}
	return b
}

// Committed records b, built by Batch, as committed.
func (w *Writer) Committed(t testing.TB, b store.Batch) {
	t.Helper()
	var buf []byte
	for _, e := range b.Events {
		if e.Seq != w.Size() {
			t.Fatalf("Committed: event seq %d, log size %d", e.Seq, w.Size())
		}
		buf = canon.Append(buf[:0], e)
		leaf := tlog.RecordHash(buf)
		hs, err := tlog.StoredHashes(e.Seq, buf, tlog.HashReaderFunc(w.readHashes))
		if err != nil {
			t.Fatal(err)
		}
		w.hashes = append(w.hashes, hs...)
		w.app.Append(leaf)
		w.Events = append(w.Events, e)
	}
	w.app.Flush()
	w.Checkpoints = append(w.Checkpoints, b.Checkpoint)
}

// Append builds a batch of evs received at recv, commits it and records it.
func (w *Writer) Append(t testing.TB, s store.Log, recv time.Time, evs ...event.Event) store.Batch {
	t.Helper()
	b := w.Batch(t, recv, evs...)
	if err := s.Commit(context.Background(), []store.Batch{b}); err != nil {
		t.Fatalf("Commit(%d events at seq %d of log %q) = %v", len(evs), w.Size(), w.Info.Name, err)
	}
	w.Committed(t, b)
	return b
}

// Root returns the root of the committed tree.
func (w *Writer) Root() tlog.Hash { return w.app.Root() }

// TreeHash returns the root of the tree of the first size committed events,
// computed from the full list of stored hashes rather than the Appender.
func (w *Writer) TreeHash(t testing.TB, size int64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(size, tlog.HashReaderFunc(w.readHashes))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TileData returns the data of a tile of the committed tree, computed from
// the full list of stored hashes.
func (w *Writer) TileData(t testing.TB, tile tlog.Tile) []byte {
	t.Helper()
	data, err := tlog.ReadTileData(tile, tlog.HashReaderFunc(w.readHashes))
	if err != nil {
		t.Fatalf("tile %s: %v", tile.Path(), err)
	}
	return data
}

func (w *Writer) readHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(w.hashes)) {
			return nil, fmt.Errorf("stored hash %d not computed yet", x)
		}
		out[i] = w.hashes[x]
	}
	return out, nil
}
