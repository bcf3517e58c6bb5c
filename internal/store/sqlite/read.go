package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/trail-audit/trail/internal/event"
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

func decodeTargets(s string) ([]event.Target, error) {
	if s == "" {
		return []event.Target{}, nil
	}
	if s[0] == '[' {
		var ts []event.Target
		err := json.Unmarshal([]byte(s), &ts)
		return ts, err
	}
	parts := strings.Split(s[1:], targetSep)
	ts := make([]event.Target, len(parts))
	for i, p := range parts {
		f := strings.Split(p, fieldSep)
		if len(f) != 3 {
			return nil, fmt.Errorf("malformed targets column")
		}
		ts[i] = event.Target{Type: f[0], ID: f[1], Name: f[2]}
	}
	return ts, nil
}

// The string columns of an event, in the order scanner keeps them.
var stringCols = []string{"actor_id", "action", "ip", "actor_type", "actor_email", "actor_role", "actor_name",
	"targets", "reason", "user_agent", "request_id", "trace_id", "before", "after", "metadata"}

// packSep joins the string columns of a row into one value. Validated
// strings hold no C0 control characters (metadata and changes escape them),
// and targets use \x1e and \x1f, so it cannot occur inside a column; a row
// that holds it anyway (it was edited by hand) is read column by column.
const packSep = "\x1c"

// readCols selects an event row as k, received_at, time, outcome and its
// string columns packed into one value: reading one column instead of
// fifteen is most of the cost of reading rows with this driver, which
// takes a lock per column.
var readCols = "k, received_at, time, outcome, " + strings.Join(stringCols, " || char(28) || ")

// scanner scans event rows into events.
type scanner struct {
	log    int64
	name   string
	k      int64
	recv   int64
	tm     int64
	out    int64
	packed string
	dest   []any
	// slow re-reads a row column by column when its packed form does not
	// split cleanly.
	slow func(k int64) ([]string, error)
}

func newScanner(log int64, name string, db *sql.DB) *scanner {
	sc := &scanner{log: log, name: name}
	sc.dest = []any{&sc.k, &sc.recv, &sc.tm, &sc.out, &sc.packed}
	sc.slow = func(k int64) ([]string, error) {
		strs := make([]string, len(stringCols))
		dest := make([]any, len(strs))
		for i := range strs {
			dest[i] = &strs[i]
		}
		err := db.QueryRow("SELECT "+strings.Join(stringCols, ", ")+" FROM events WHERE k = ?", k).Scan(dest...)
		return strs, err
	}
	return sc
}

func (sc *scanner) scan(rows *sql.Rows) (*event.Event, error) {
	if err := rows.Scan(sc.dest...); err != nil {
		return nil, err
	}
	seq := sc.k & (1<<seqBits - 1)
	if sc.k>>seqBits != sc.log {
		return nil, fmt.Errorf("row %d belongs to log %d, not %d", sc.k, sc.k>>seqBits, sc.log)
	}
	if sc.out < 0 || int(sc.out) >= len(outcomes) {
		return nil, fmt.Errorf("seq %d: bad outcome code %d", seq, sc.out)
	}
	s := strings.Split(sc.packed, packSep)
	if len(s) != len(stringCols) {
		var err error
		if s, err = sc.slow(sc.k); err != nil {
			return nil, fmt.Errorf("seq %d: %w", seq, err)
		}
	}
	targets, err := decodeTargets(s[7])
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", seq, err)
	}
	e := &event.Event{
		Seq:        seq,
		Log:        sc.name,
		ReceivedAt: time.Unix(0, sc.recv).UTC(),
		Time:       time.Unix(0, sc.tm).UTC(),
		Actor:      event.Actor{ID: s[0], Type: s[3], Email: s[4], Role: s[5], Name: s[6]},
		Action:     s[1],
		Outcome:    outcomes[sc.out],
		Source:     event.Source{IP: s[2], UserAgent: s[9]},
		Targets:    targets,
		Reason:     s[8],
		RequestID:  s[10],
		TraceID:    s[11],
	}
	if s[12] != "" || s[13] != "" {
		e.Changes = &event.Changes{Before: rawOrNil(s[12]), After: rawOrNil(s[13])}
	}
	e.Metadata = rawOrNil(s[14])
	e.ID = event.MakeID(sc.name, e.Seq, e.ReceivedAt)
	return e, nil
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, log, seq int64) (*event.Event, error) {
	name, err := s.logName(log)
	if err != nil {
		return nil, err
	}
	if seq < 0 || seq >= 1<<seqBits {
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+readCols+" FROM events WHERE k = ?", eventKey(log, seq))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	return newScanner(log, name, s.r).scan(rows)
}

// scanChunk bounds how many rows one read transaction of Scan covers, so a
// long scan does not pin the WAL.
const scanChunk = 20000

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, log, from, to int64) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		name, err := s.logName(log)
		if err != nil {
			yield(nil, err)
			return
		}
		sc := newScanner(log, name, s.r)
		from = max(from, 0)
		to = min(to, 1<<seqBits)
		for from < to {
			end := min(from+scanChunk, to)
			rows, err := s.r.QueryContext(ctx, "SELECT "+readCols+" FROM events WHERE k >= ? AND k < ? ORDER BY k",
				eventKey(log, from), eventKey(log, end))
			if err != nil {
				yield(nil, err)
				return
			}
			n := 0
			for rows.Next() {
				e, err := sc.scan(rows)
				n++
				if !yield(e, err) || err != nil {
					rows.Close()
					return
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				yield(nil, err)
				return
			}
			if n == 0 && end < to {
				// Nothing here; the log ends before 'to'. Stop rather than
				// walk 2^40 empty chunks.
				var more bool
				if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM events WHERE k >= ? AND k < ?)",
					eventKey(log, end), eventKey(log, to)).Scan(&more); err != nil {
					yield(nil, err)
					return
				}
				if !more {
					return
				}
			}
			from = end
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
	target := t.UnixNano()
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		var recv int64
		err := s.r.QueryRowContext(ctx, "SELECT received_at FROM events WHERE k = ?", eventKey(log, mid)).Scan(&recv)
		if err != nil {
			return 0, fmt.Errorf("seq %d: %w", mid, err)
		}
		if recv < target {
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

// LatestCheckpoint returns the log's checkpoint with the largest size.
func (s *Store) latestCheckpoint(ctx context.Context, log int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx, "SELECT size, signed_at, note FROM checkpoints WHERE log = ? ORDER BY size DESC LIMIT 1", log))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	return c, err
}
