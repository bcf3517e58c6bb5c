package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// Targets are stored in one column as "\x1etype\x1fid\x1fname" per target:
// validated target fields hold no control characters, so the separators
// are unambiguous and decoding is a split, not a JSON parse. A list that
// somehow holds separators is stored as a JSON array instead.
const (
	targetSep = "\x1e"
	fieldSep  = "\x1f"
)

func encodeTargets(ts []event.Target) string {
	if len(ts) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range ts {
		if strings.ContainsAny(t.Type+t.ID+t.Name, targetSep+fieldSep) {
			j, _ := json.Marshal(ts)
			return string(j)
		}
		b.WriteString(targetSep)
		b.WriteString(t.Type)
		b.WriteString(fieldSep)
		b.WriteString(t.ID)
		b.WriteString(fieldSep)
		b.WriteString(t.Name)
	}
	return b.String()
}

// decodeTargets decodes a targets column, appending to ts (which may be
// reused).
func decodeTargets(s string, ts []event.Target) ([]event.Target, error) {
	if s == "" {
		if ts == nil {
			ts = []event.Target{}
		}
		return ts, nil
	}
	if s[0] == '[' {
		var ts []event.Target
		err := json.Unmarshal([]byte(s), &ts)
		return ts, err
	}
	ts = slices.Grow(ts, strings.Count(s, targetSep))
	if !strings.HasPrefix(s, targetSep) {
		return nil, fmt.Errorf("malformed targets column")
	}
	for rest := s[1:]; ; {
		t, next, more := strings.Cut(rest, targetSep)
		typ, r, ok1 := strings.Cut(t, fieldSep)
		id, name, ok2 := strings.Cut(r, fieldSep)
		if !ok1 || !ok2 || strings.Contains(name, fieldSep) {
			return nil, fmt.Errorf("malformed targets column")
		}
		ts = append(ts, event.Target{Type: typ, ID: id, Name: name})
		if !more {
			break
		}
		rest = next
	}
	return ts, nil
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// bundleAt returns the key and data of the bundle holding event seq of
// bundleRange is the key range [lo, hi) of the bundles that may hold
// events [from, to) of log: the first may start up to bundleMax-1 events
// early.
func bundleRange(log, from, to int64) (lo, hi int64) {
	return eventKey(log, max(0, from-bundleMax+1)), eventKey(log, 0) + to
}

// eventsAround decodes, in seq order, every event of the bundles that may
// hold events [from, to) of log, read through q (a transaction or a
// connection), and passes each to f: the first and last bundles may hold
// events outside the range, which f must skip if it wants only those.
func eventsAround(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, log, from, to int64, f func(*event.Event)) error {
	lo, hi := bundleRange(log, from, to)
	rows, err := q.QueryContext(ctx, "SELECT k, data FROM events WHERE k >= ? AND k < ? ORDER BY k", lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int64
		var data []byte
		if err := rows.Scan(&k, &data); err != nil {
			return err
		}
		evs, err := decodeBundle("", k, data)
		if err != nil {
			return err
		}
		for _, e := range evs {
			f(e)
		}
	}
	return rows.Err()
}

// bundleAt returns the key and data of the bundle that holds event seq of
// log, or store.ErrNotFound. A bundle that should hold it by its key but
// whose header is damaged gives a *store.DamagedError.
func bundleAt(ctx context.Context, db *sql.DB, log, seq int64) (int64, []byte, error) {
	var k int64
	var data []byte
	err := db.QueryRowContext(ctx, "SELECT k, data FROM events WHERE k BETWEEN ? AND ? ORDER BY k DESC LIMIT 1",
		eventKey(log, max(0, seq-bundleMax+1)), eventKey(log, seq)).Scan(&k, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	if err != nil {
		return 0, nil, err
	}
	if k+bundleLen(data) <= eventKey(log, seq) {
		// The bundle ends before seq, unless its header lies.
		if _, err := bundleRecords(data); err != nil {
			return 0, nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: err}
		}
		return 0, nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	return k, data, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, log, seq int64) (*event.Event, error) {
	name, err := s.logName(ctx, log)
	if err != nil {
		return nil, err
	}
	if seq < 0 || seq >= 1<<seqBits {
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	r := bundleReader{db: s.r, log: log, name: name}
	e, err := r.get(ctx, seq)
	if err == nil && e == nil {
		err = fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	return e, err
}

// bundleReader reads events of one log by seq, keeping the last bundle it
// decoded: lookups in seq order mostly hit it.
type bundleReader struct {
	db    *sql.DB
	log   int64
	name  string
	first int64 // seq of evs[0]
	evs   []*event.Event
	recs  [][]byte // the bundle's records, decoded on demand
}

// get returns event seq, or nil if the log does not hold it.
func (r *bundleReader) get(ctx context.Context, seq int64) (*event.Event, error) {
	if seq < r.first || seq >= r.first+int64(len(r.recs)) {
		k, data, err := bundleAt(ctx, r.db, r.log, seq)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		first, recs, err := splitBundle(k, data)
		if err != nil {
			// The whole bundle is unreadable, seq with it.
			return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: errors.Unwrap(err)}
		}
		r.first, r.recs = first, recs
		r.evs = make([]*event.Event, len(recs))
	}
	i := seq - r.first
	if r.evs[i] == nil {
		e, err := decodeRecord(r.name, seq, r.recs[i])
		if err != nil {
			return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: err}
		}
		r.evs[i] = e
	}
	return r.evs[i], nil
}

// scanChunk bounds how many seqs one read transaction of Scan covers, so a
// long scan does not pin the WAL.
const scanChunk = 1 << 15

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, log, from, to int64) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		name, err := s.logName(ctx, log)
		if err != nil {
			yield(nil, err)
			return
		}
		from = max(from, 0)
		to = min(to, 1<<seqBits)
		if from >= to {
			return
		}
		for b, err := range s.bundles(ctx, log, from, to, false) {
			if err != nil {
				yield(nil, err)
				return
			}
			evs, err := decodeBundle(name, b.k, b.data)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range evs {
				if e.Seq >= from && e.Seq < to && !yield(e, nil) {
					return
				}
			}
		}
	}
}

// Walk implements store.Store. It decodes each event into the same Event,
// whose strings point into the bundle just read.
func (s *Store) Walk(ctx context.Context, log, from, to int64, fn func(*event.Event) error) error {
	name, err := s.logName(ctx, log)
	if err != nil {
		return err
	}
	from = max(from, 0)
	to = min(to, 1<<seqBits)
	if from >= to {
		return nil
	}
	var e event.Event
	for b, err := range s.bundles(ctx, log, from, to, false) {
		if err != nil {
			return err
		}
		first, recs, err := splitBundle(b.k, b.data)
		if err != nil {
			return err
		}
		for i, rec := range recs {
			seq := first + int64(i)
			if seq < from || seq >= to {
				continue
			}
			err := decodeInto(&e, name, seq, rec, func(i, j int) string { return unsafe.String(unsafe.SliceData(rec[i:j]), j-i) }, borrowRaw)
			if err != nil {
				return &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: err}
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

// borrowRaw is rawOrNil without the copy, for Walk: the value shares the
// string's memory, which nobody writes.
func borrowRaw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// rawBundle is a row of the events table.
type rawBundle struct {
	k    int64
	data []byte
}

// bundles yields the bundles of log that hold seqs in [from, to), in key
// order (descending if desc), a chunk of keys per query. A bundle's data is
// the driver's and valid only until the loop body returns: whatever outlives
// it must be copied (decodeBundle does).
func (s *Store) bundles(ctx context.Context, log, from, to int64, desc bool) iter.Seq2[rawBundle, error] {
	return func(yield func(rawBundle, error) bool) {
		// The first bundle may start before from.
		lo := eventKey(log, from)
		k, _, err := bundleAt(ctx, s.r, log, from)
		if err == nil {
			lo = k
		} else if !errors.Is(err, store.ErrNotFound) {
			yield(rawBundle{}, err)
			return
		}
		hi := eventKey(log, 0) + to // exclusive; to may be 1<<seqBits
		step := int64(scanChunk)
		for lo < hi {
			clo, chi := lo, min(hi, lo+step)
			q := "SELECT k, data FROM events WHERE k >= ? AND k < ? ORDER BY k"
			if desc {
				clo, chi = max(lo, hi-step), hi
				q += " DESC"
			}
			rows, err := s.r.QueryContext(ctx, q, clo, chi)
			if err != nil {
				yield(rawBundle{}, err)
				return
			}
			n := 0
			for rows.Next() {
				var b rawBundle
				// The driver's copy of the blob, not one more: it is
				// only read until the loop body returns.
				if err := rows.Scan(&b.k, (*sql.RawBytes)(&b.data)); err != nil {
					rows.Close()
					yield(rawBundle{}, err)
					return
				}
				n++
				if !yield(b, nil) {
					rows.Close()
					return
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				yield(rawBundle{}, err)
				return
			}
			if desc {
				hi = clo
			} else {
				lo = chi
			}
			if n == 0 && lo < hi {
				// Nothing here: jump to the next bundle rather than walk
				// 2^40 empty chunks.
				q := "SELECT min(k) FROM events WHERE k >= ? AND k < ?"
				if desc {
					q = "SELECT max(k) FROM events WHERE k >= ? AND k < ?"
				}
				var next sql.NullInt64
				if err := s.r.QueryRowContext(ctx, q, lo, hi).Scan(&next); err != nil {
					yield(rawBundle{}, err)
					return
				}
				if !next.Valid {
					return
				}
				if desc {
					hi = next.Int64 + 1
				} else {
					lo = next.Int64
				}
			}
		}
	}
}

// SeqAtTime implements store.Store: a binary search over seq, valid
// because received_at never decreases along seq.
func (s *Store) SeqAtTime(ctx context.Context, log int64, t time.Time) (int64, error) {
	var size int64
	if err := s.r.QueryRowContext(ctx, "SELECT size FROM logs WHERE id = ?", log).Scan(&size); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("log %d: %w", log, store.ErrNotFound)
		}
		return 0, err
	}
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := s.Get(ctx, log, mid)
		if errors.Is(err, store.ErrNotFound) {
			err = &store.DamagedError{Seq: mid, Problem: store.ProblemMissing}
		}
		if err != nil {
			return 0, err
		}
		// Compared as times: t may lie past what nanoseconds since 1970
		// hold (since=3000-01-01), which UnixNano would wrap.
		if e.ReceivedAt.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// Checkpoints implements store.Store.
func (s *Store) Checkpoints(ctx context.Context, log int64) iter.Seq2[store.Checkpoint, error] {
	return func(yield func(store.Checkpoint, error) bool) {
		rows, err := s.r.QueryContext(ctx, "SELECT size, signed_at, note FROM checkpoints WHERE log = ? ORDER BY size", log)
		if err != nil {
			yield(store.Checkpoint{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCheckpoint(rows)
			if !yield(c, err) || err != nil {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(store.Checkpoint{}, err)
		}
	}
}

func scanCheckpoint(sc interface{ Scan(...any) error }) (store.Checkpoint, error) {
	var c store.Checkpoint
	var signed int64
	err := sc.Scan(&c.Size, &signed, &c.Note)
	c.SignedAt = time.Unix(0, signed).UTC()
	return c, err
}

// CheckpointAt implements store.Store.
func (s *Store) CheckpointAt(ctx context.Context, log, size int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx, "SELECT size, signed_at, note FROM checkpoints WHERE log = ? AND size = ?", log, size))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("checkpoint of size %d: %w", size, store.ErrNotFound)
	}
	return c, err
}
