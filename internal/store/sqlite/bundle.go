package sqlite

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/store"
)

// Events are stored in bundles: one row of the events table holds up to
// bundleMax consecutive events of one log, keyed by the first one's
// eventKey. A whole log is read by stepping through a few rows rather than
// one row per event, which is most of the cost of reading with this
// driver, and a commit writes one row per bundle (packBundles: at most
// bundleMax events and, past one event, bundleBytes).
//
// A bundle is
//
//	version byte (1) | uvarint n | n × (uvarint len | record)
//
// and a record is
//
//	varint received_at (ns) | varint time − received_at (ns) | outcome byte |
//	15 × (uvarint len | bytes)
//
// with the strings in recordStrings order. The id, seq and log of an event
// are not stored: seq is the bundle's first seq plus the event's position,
// log comes from the key, and the id is derived from them (event.MakeID).
// Decoding checks every length, so a damaged bundle is an error, never a
// panic or a misread neighbour.
const (
	bundleVersion = 1
	bundleMax     = 16
)

// The strings of a record, in order. Targets use encodeTargets.
const (
	rActorID = iota
	rAction
	rIP
	rActorType
	rActorEmail
	rActorRole
	rActorName
	rTargets
	rReason
	rUserAgent
	rRequestID
	rTraceID
	rBefore
	rAfter
	rMetadata
	numRecordStrings
)

// errBundle is what decoding a damaged bundle returns.
var errBundle = fmt.Errorf("%w (event bundle)", store.ErrDamaged)

func appendRecord(b []byte, e *event.Event) []byte {
	recv := e.ReceivedAt.UnixNano()
	b = binary.AppendVarint(b, recv)
	b = binary.AppendVarint(b, e.Time.UnixNano()-recv)
	b = append(b, byte(outcomeCode(e.Outcome)))
	var before, after string
	if e.Changes != nil {
		before, after = string(e.Changes.Before), string(e.Changes.After)
	}
	for _, s := range [numRecordStrings]string{
		rActorID: e.Actor.ID, rAction: e.Action, rIP: e.Source.IP,
		rActorType: e.Actor.Type, rActorEmail: e.Actor.Email, rActorRole: e.Actor.Role, rActorName: e.Actor.Name,
		rTargets: encodeTargets(e.Targets), rReason: e.Reason, rUserAgent: e.Source.UserAgent,
		rRequestID: e.RequestID, rTraceID: e.TraceID, rBefore: before, rAfter: after, rMetadata: string(e.Metadata),
	} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// bundleRecords splits a bundle into its records.
func bundleRecords(data []byte) ([][]byte, error) {
	if len(data) == 0 || data[0] != bundleVersion {
		return nil, fmt.Errorf("%w: unknown format", errBundle)
	}
	data = data[1:]
	n, w := binary.Uvarint(data)
	if w <= 0 || n == 0 || n > bundleMax {
		return nil, fmt.Errorf("%w: bad event count", errBundle)
	}
	data = data[w:]
	recs := make([][]byte, n)
	for i := range recs {
		l, w := binary.Uvarint(data)
		if w <= 0 || l > uint64(len(data)-w) {
			return nil, fmt.Errorf("%w: event %d of %d is cut short", errBundle, i, n)
		}
		recs[i] = data[w : w+int(l)]
		data = data[w+int(l):]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last event", errBundle, len(data))
	}
	return recs, nil
}

// bundleLen returns the number of events in a bundle, or 0 if it is
// damaged.
func bundleLen(data []byte) int64 {
	if len(data) < 2 || data[0] != bundleVersion {
		return 0
	}
	n, w := binary.Uvarint(data[1:])
	if w <= 0 || n > bundleMax {
		return 0
	}
	return int64(n)
}

// maxTime is the last instant an event id can carry (48-bit milliseconds).
const maxTime = 1<<48 - 1

// decodeRecord decodes one record as event seq of log name.
func decodeRecord(name string, seq int64, rec []byte) (*event.Event, error) {
	e := &event.Event{}
	// One string for all the fields; each field is a substring of it.
	all := string(rec)
	err := decodeInto(e, name, seq, rec, func(i, j int) string { return all[i:j] }, rawOrNil)
	return e, err
}

// decodeInto decodes rec into e, taking its strings from str (the bytes
// rec[i:j] as a string) and its raw JSON values from raw.
func decodeInto(e *event.Event, name string, seq int64, rec []byte, str func(i, j int) string, raw func(string) json.RawMessage) error {
	recv, w := binary.Varint(rec)
	if w <= 0 {
		return fmt.Errorf("%w: received_at", errBundle)
	}
	off := w
	dt, w := binary.Varint(rec[off:])
	if w <= 0 || len(rec) == off+w {
		return fmt.Errorf("%w: time", errBundle)
	}
	off += w
	out := rec[off]
	off++
	if recv < 0 || recv/1e6 > maxTime {
		return fmt.Errorf("%w: received_at %d out of range", errBundle, recv)
	}
	if int(out) >= len(outcomes) {
		return fmt.Errorf("%w: outcome code %d", errBundle, out)
	}
	var s [numRecordStrings]string
	for i := range s {
		l, w := binary.Uvarint(rec[off:])
		if w <= 0 || l > uint64(len(rec)-off-w) {
			return fmt.Errorf("%w: field %d is cut short", errBundle, i)
		}
		off += w
		s[i] = str(off, off+int(l))
		off += int(l)
	}
	if off != len(rec) {
		return fmt.Errorf("%w: %d bytes after the last field", errBundle, len(rec)-off)
	}
	targets, err := decodeTargets(s[rTargets], e.Targets[:0])
	if err != nil {
		return fmt.Errorf("%w: targets: %v", errBundle, err)
	}
	*e = event.Event{
		Seq:        seq,
		Log:        name,
		ReceivedAt: time.Unix(0, recv).UTC(),
		Time:       time.Unix(0, recv+dt).UTC(),
		Actor:      event.Actor{ID: s[rActorID], Type: s[rActorType], Email: s[rActorEmail], Role: s[rActorRole], Name: s[rActorName]},
		Action:     s[rAction],
		Outcome:    outcomes[out],
		Source:     event.Source{IP: s[rIP], UserAgent: s[rUserAgent]},
		Targets:    targets,
		Reason:     s[rReason],
		RequestID:  s[rRequestID],
		TraceID:    s[rTraceID],
		Metadata:   raw(s[rMetadata]),
	}
	if s[rBefore] != "" || s[rAfter] != "" {
		e.Changes = &event.Changes{Before: raw(s[rBefore]), After: raw(s[rAfter])}
	}
	e.ID = eventid.Make(name, seq, e.ReceivedAt)
	return nil
}

// splitBundle splits the bundle stored under key k into its records, and
// returns the seq of the first. A damaged bundle gives a
// *store.DamagedError at its first seq.
func splitBundle(k int64, data []byte) (int64, [][]byte, error) {
	first := k & (1<<seqBits - 1)
	recs, err := bundleRecords(data)
	if err == nil && first+int64(len(recs)) > 1<<seqBits {
		err = fmt.Errorf("%w: past the last seq a log can hold", errBundle)
	}
	if err != nil {
		return first, nil, &store.DamagedError{Seq: first, Problem: store.ProblemUndecodable, Err: err}
	}
	return first, recs, nil
}

// decodeBundle decodes the bundle stored under key k of log name.
func decodeBundle(name string, k int64, data []byte) ([]*event.Event, error) {
	first, recs, err := splitBundle(k, data)
	if err != nil {
		return nil, err
	}
	evs := make([]*event.Event, len(recs))
	for i, r := range recs {
		if evs[i], err = decodeRecord(name, first+int64(i), r); err != nil {
			return nil, &store.DamagedError{Seq: first + int64(i), Problem: store.ProblemUndecodable, Err: err}
		}
	}
	return evs, nil
}

// bundleBytes is the size a bundle is kept under when it holds more than
// one event: two bundles fill an 8 KiB page (see pageSize) rather than one
// bundle leaving most of a page empty or spilling into overflow pages.
const bundleBytes = 4000

// packBundles encodes evs, which have consecutive seqs, as bundles: runs of
// at most bundleMax events that stay under bundleBytes (a single event may
// exceed it). first holds the seq of each bundle's first event.
func packBundles(evs []*event.Event) (first []int64, data [][]byte) {
	var recs [][]byte
	size := 0
	flush := func() {
		if len(recs) == 0 {
			return
		}
		b := make([]byte, 0, size+2+2*len(recs))
		b = append(b, bundleVersion)
		b = binary.AppendUvarint(b, uint64(len(recs)))
		for _, r := range recs {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
		data = append(data, b)
		recs, size = recs[:0], 0
	}
	var buf []byte
	for _, e := range evs {
		buf = appendRecord(buf[:0], e)
		if len(recs) == bundleMax || len(recs) > 0 && size+len(buf)+3 > bundleBytes {
			flush()
		}
		if len(recs) == 0 {
			first = append(first, e.Seq)
		}
		recs = append(recs, bytes.Clone(buf))
		size += len(buf) + 3
	}
	flush()
	return first, data
}

// runs splits evs, sorted by seq, into runs of consecutive seqs.
func runs(evs []*event.Event) [][]*event.Event {
	var out [][]*event.Event
	for len(evs) > 0 {
		n := 1
		for n < len(evs) && evs[n].Seq == evs[n-1].Seq+1 {
			n++
		}
		out = append(out, evs[:n])
		evs = evs[n:]
	}
	return out
}
