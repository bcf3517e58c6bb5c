package sqlitetest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/eventid"
)

// The store's layout on disk, as internal/store/sqlite writes it (see its
// schema.go and bundle.go). This package reads and writes it on its own,
// so that production code keeps no way around its checks; TestCodec in
// this package's tests holds the two to the same format.
const (
	seqBits        = 40 // events: k = log<<seqBits | seq
	tileLevelShift = 40 // tiles: k = log<<tileLogShift | level<<tileLevelShift | index
	tileLogShift   = 43
	segBits        = 14 // the background indexes' segments: seg = k>>segBits

	bundleVersion = 1
	bundleMax     = 16   // events in a bundle, at most
	bundleBytes   = 4000 // a bundle of more than one event stays under it

	targetSep = "\x1e"
	fieldSep  = "\x1f"
)

func eventKey(log, seq int64) int64 { return log<<seqBits | seq }

func tileKey(log int64, level int, index int64) int64 {
	return log<<tileLogShift | int64(level)<<tileLevelShift | index
}

// outcomes by their stored code.
var outcomes = []event.Outcome{event.Success, event.Failure, event.Denied, event.Errored}

func outcomeCode(o event.Outcome) byte {
	for i, x := range outcomes {
		if x == o {
			return byte(i)
		}
	}
	return 0
}

var errBundle = errors.New("damaged event bundle")

// A bundle is
//
//	version byte (1) | uvarint n | n × (uvarint len | record)
//
// and a record is
//
//	varint received_at (ns) | varint time − received_at (ns) | outcome byte |
//	15 × (uvarint len | bytes)
//
// with the strings in the order of recordStrings.
func recordStrings(e *event.Event) [15]string {
	var before, after string
	if e.Changes != nil {
		before, after = string(e.Changes.Before), string(e.Changes.After)
	}
	return [15]string{e.Actor.ID, e.Action, e.Source.IP, e.Actor.Type, e.Actor.Email, e.Actor.Role, e.Actor.Name,
		encodeTargets(e.Targets), e.Reason, e.Source.UserAgent, e.RequestID, e.TraceID, before, after, string(e.Metadata)}
}

func appendRecord(b []byte, e *event.Event) []byte {
	recv := e.ReceivedAt.UnixNano()
	b = binary.AppendVarint(b, recv)
	b = binary.AppendVarint(b, e.Time.UnixNano()-recv)
	b = append(b, outcomeCode(e.Outcome))
	for _, s := range recordStrings(e) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// bundle encodes records as one bundle.
func bundle(recs [][]byte) []byte {
	b := []byte{bundleVersion}
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// packBundles encodes evs, which have consecutive seqs, as the store
// does: bundles of at most bundleMax events, under bundleBytes unless they
// hold one event. first holds the seq of each bundle's first event.
func packBundles(evs []*event.Event) (first []int64, data [][]byte) {
	var recs [][]byte
	size := 0
	for _, e := range evs {
		rec := appendRecord(nil, e)
		if len(recs) == bundleMax || len(recs) > 0 && size+len(rec)+3 > bundleBytes {
			data = append(data, bundle(recs))
			recs, size = nil, 0
		}
		if len(recs) == 0 {
			first = append(first, e.Seq)
		}
		recs = append(recs, rec)
		size += len(rec) + 3
	}
	if len(recs) > 0 {
		data = append(data, bundle(recs))
	}
	return first, data
}

// records splits a bundle into its records, and returns with each the
// offset of its first byte in data.
func records(data []byte) (recs [][]byte, offsets []int, err error) {
	if len(data) == 0 || data[0] != bundleVersion {
		return nil, nil, fmt.Errorf("%w: unknown format", errBundle)
	}
	off := 1
	n, w := binary.Uvarint(data[off:])
	if w <= 0 || n == 0 || n > bundleMax {
		return nil, nil, fmt.Errorf("%w: bad event count", errBundle)
	}
	off += w
	for i := range n {
		l, w := binary.Uvarint(data[off:])
		if w <= 0 || l > uint64(len(data)-off-w) {
			return nil, nil, fmt.Errorf("%w: event %d of %d is cut short", errBundle, i, n)
		}
		off += w
		recs, offsets = append(recs, data[off:off+int(l)]), append(offsets, off)
		off += int(l)
	}
	if off != len(data) {
		return nil, nil, fmt.Errorf("%w: %d bytes after the last event", errBundle, len(data)-off)
	}
	return recs, offsets, nil
}

// decodeBundle decodes the bundle whose first event is seq first of the
// log named name.
func decodeBundle(name string, first int64, data []byte) ([]*event.Event, error) {
	recs, _, err := records(data)
	if err != nil {
		return nil, fmt.Errorf("bundle of seq %d: %w", first, err)
	}
	evs := make([]*event.Event, len(recs))
	for i, r := range recs {
		if evs[i], err = decodeRecord(name, first+int64(i), r); err != nil {
			return nil, fmt.Errorf("seq %d: %w", first+int64(i), err)
		}
	}
	return evs, nil
}

func decodeRecord(name string, seq int64, rec []byte) (*event.Event, error) {
	recv, w := binary.Varint(rec)
	if w <= 0 {
		return nil, fmt.Errorf("%w: received_at", errBundle)
	}
	off := w
	dt, w := binary.Varint(rec[off:])
	if w <= 0 || len(rec) == off+w {
		return nil, fmt.Errorf("%w: time", errBundle)
	}
	off += w
	out := rec[off]
	off++
	if int(out) >= len(outcomes) {
		return nil, fmt.Errorf("%w: outcome code %d", errBundle, out)
	}
	var s [15]string
	for i := range s {
		l, w := binary.Uvarint(rec[off:])
		if w <= 0 || l > uint64(len(rec)-off-w) {
			return nil, fmt.Errorf("%w: field %d is cut short", errBundle, i)
		}
		off += w
		s[i] = string(rec[off : off+int(l)])
		off += int(l)
	}
	if off != len(rec) {
		return nil, fmt.Errorf("%w: %d bytes after the last field", errBundle, len(rec)-off)
	}
	targets, err := decodeTargets(s[7])
	if err != nil {
		return nil, fmt.Errorf("%w: targets: %v", errBundle, err)
	}
	e := &event.Event{
		Seq:        seq,
		Log:        name,
		ReceivedAt: time.Unix(0, recv).UTC(),
		Time:       time.Unix(0, recv+dt).UTC(),
		Actor:      event.Actor{ID: s[0], Type: s[3], Email: s[4], Role: s[5], Name: s[6]},
		Action:     s[1],
		Outcome:    outcomes[out],
		Source:     event.Source{IP: s[2], UserAgent: s[9]},
		Targets:    targets,
		Reason:     s[8],
		RequestID:  s[10],
		TraceID:    s[11],
		Metadata:   rawOrNil(s[14]),
	}
	if s[12] != "" || s[13] != "" {
		e.Changes = &event.Changes{Before: rawOrNil(s[12]), After: rawOrNil(s[13])}
	}
	e.ID = eventid.Make(name, seq, e.ReceivedAt)
	return e, nil
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// encodeTargets stores targets as "\x1etype\x1fid\x1fname" each, or as a
// JSON array if a field holds a separator.
func encodeTargets(ts []event.Target) string {
	var b strings.Builder
	for _, t := range ts {
		if strings.ContainsAny(t.Type+t.ID+t.Name, targetSep+fieldSep) {
			j, _ := json.Marshal(ts)
			return string(j)
		}
		b.WriteString(targetSep + t.Type + fieldSep + t.ID + fieldSep + t.Name)
	}
	return b.String()
}

func decodeTargets(s string) ([]event.Target, error) {
	ts := []event.Target{}
	if s == "" {
		return ts, nil
	}
	if s[0] == '[' {
		err := json.Unmarshal([]byte(s), &ts)
		return ts, err
	}
	if !strings.HasPrefix(s, targetSep) {
		return nil, errors.New("malformed targets column")
	}
	for t := range strings.SplitSeq(s[1:], targetSep) {
		f := strings.Split(t, fieldSep)
		if len(f) != 3 {
			return nil, errors.New("malformed targets column")
		}
		ts = append(ts, event.Target{Type: f[0], ID: f[1], Name: f[2]})
	}
	return ts, nil
}

// outcomeAt is where a record's outcome code is: after its two varints.
func outcomeAt(rec []byte) int {
	_, w1 := binary.Varint(rec)
	_, w2 := binary.Varint(rec[w1:])
	return w1 + w2
}
