package event

import (
	"strconv"
	"strings"
	"time"

	"github.com/gowebpki/jcs"
)

// Decode parses one event as a client submits it: a JSON object with the
// fields of Event except the ones Trail assigns (id, seq, log, received_at).
//
// Decode is strict. It rejects, with an *Error naming the field: unknown
// fields at any level (keys match exactly, not case-insensitively as in
// encoding/json), values of the wrong JSON type, invalid UTF-8, \u escapes of
// lone UTF-16 surrogates, repeated keys in any object, data after the
// object, the assigned fields, and nesting deeper than 9000 levels. A null
// value counts as the field's zero value, except inside metadata and changes,
// which are kept as sent. time must be an RFC 3339 string, and not the zero
// time (0001-01-01T00:00:00Z), which Event uses for "absent".
//
// Decode does not check values; Prepare does. It never panics.
func Decode(data []byte) (Event, error) {
	e, err := decode(data, false)
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// DecodeStored parses a stored event as the API returns it, assigned fields
// included, with the same strictness as Decode. Metadata and changes are put
// into canonical form, so for any event Trail stored, DecodeStored of its
// canonical form (see the package documentation) gives an event whose
// canonical form is the same bytes, even if the JSON was re-indented on the
// way.
// DecodeStored does not check values.
func DecodeStored(data []byte) (Event, error) {
	e, err := decode(data, true)
	if err != nil {
		return Event{}, err
	}
	canon := func(raw *[]byte, field string) *Error {
		if *raw == nil {
			return nil
		}
		c, err := jcs.Transform(*raw)
		if err != nil {
			return errAt(field, "cannot be canonicalized")
		}
		*raw = c
		return nil
	}
	if err := canon((*[]byte)(&e.Metadata), "metadata"); err != nil {
		return Event{}, err
	}
	if e.Changes != nil {
		if err := canon((*[]byte)(&e.Changes.Before), "changes.before"); err != nil {
			return Event{}, err
		}
		if err := canon((*[]byte)(&e.Changes.After), "changes.after"); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

func decode(data []byte, stored bool) (Event, *Error) {
	s := &scanner{src: string(data)}
	var e Event
	if s.peek() != '{' {
		if strings.HasPrefix(s.src[s.pos:], "\ufeff") {
			return e, errAt("", "not a JSON object: it starts with a byte order mark (U+FEFF), which JSON does not allow; save the text as UTF-8 without one")
		}
		return e, errAt("", "not a JSON object")
	}
	if err := s.event(&e, stored); err != nil {
		return e, err
	}
	if !s.atEnd() {
		return e, errAt("", "invalid JSON: data after the event")
	}
	return e, nil
}

// Top-level fields, as bits for finding repeated keys.
const (
	hasID = 1 << iota
	hasSeq
	hasLog
	hasReceivedAt
	hasTime
	hasActor
	hasAction
	hasTargets
	hasOutcome
	hasReason
	hasSource
	hasRequestID
	hasTraceID
	hasChanges
	hasMetadata
)

func (s *scanner) event(e *Event, stored bool) *Error {
	var seen uint32
	once := func(bit uint32) *Error {
		if seen&bit != 0 {
			return errAt("", "duplicate key")
		}
		seen |= bit
		return nil
	}
	assigned := func(bit uint32) *Error {
		if !stored {
			return errAt("", "assigned by Trail; must not be sent")
		}
		return once(bit)
	}
	return s.members(func(key string) *Error {
		switch key {
		case "id":
			if err := assigned(hasID); err != nil {
				return err
			}
			return s.string(&e.ID)
		case "seq":
			if err := assigned(hasSeq); err != nil {
				return err
			}
			return s.int64(&e.Seq)
		case "log":
			if err := assigned(hasLog); err != nil {
				return err
			}
			return s.string(&e.Log)
		case "received_at":
			if err := assigned(hasReceivedAt); err != nil {
				return err
			}
			return s.time(&e.ReceivedAt)
		case "time":
			if err := once(hasTime); err != nil {
				return err
			}
			return s.time(&e.Time)
		case "actor":
			if err := once(hasActor); err != nil {
				return err
			}
			return s.actor(&e.Actor)
		case "action":
			if err := once(hasAction); err != nil {
				return err
			}
			return s.string(&e.Action)
		case "targets":
			if err := once(hasTargets); err != nil {
				return err
			}
			return s.targets(&e.Targets)
		case "outcome":
			if err := once(hasOutcome); err != nil {
				return err
			}
			return s.string((*string)(&e.Outcome))
		case "reason":
			if err := once(hasReason); err != nil {
				return err
			}
			return s.string(&e.Reason)
		case "source":
			if err := once(hasSource); err != nil {
				return err
			}
			return s.source(&e.Source)
		case "request_id":
			if err := once(hasRequestID); err != nil {
				return err
			}
			return s.string(&e.RequestID)
		case "trace_id":
			if err := once(hasTraceID); err != nil {
				return err
			}
			return s.string(&e.TraceID)
		case "changes":
			if err := once(hasChanges); err != nil {
				return err
			}
			return s.changes(&e.Changes)
		case "metadata":
			if err := once(hasMetadata); err != nil {
				return err
			}
			m, err := s.rawValue(&rawRules{maxDepth: decodeDepth})
			e.Metadata = m
			return err
		}
		return errAt("", "unknown field")
	})
}

// string reads a string or null into dst.
func (s *scanner) string(dst *string) *Error {
	switch s.peek() {
	case '"':
		v, _, err := s.str()
		*dst = v
		return err
	case 'n':
		return s.literal("null")
	}
	return s.typeError("a string")
}

func (s *scanner) int64(dst *int64) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return s.typeError("an integer")
	}
	lit, err := s.number()
	if err != nil {
		return err
	}
	n, perr := strconv.ParseInt(lit, 10, 64)
	if perr != nil {
		return errAt("", "must be an integer")
	}
	*dst = n
	return nil
}

func (s *scanner) time(dst *time.Time) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '"' {
		return s.typeError("a string")
	}
	v, _, err := s.str()
	if err != nil {
		return err
	}
	if err := dst.UnmarshalText([]byte(v)); err != nil || !strictRFC3339(v) {
		return errAt("", "not an RFC 3339 time")
	}
	if finerThanNanos(v) {
		return errAt("", "finer than a nanosecond, which Trail keeps: it would be stored cut")
	}
	if dst.IsZero() {
		// The zero time stands for "absent" once decoded (Trail then uses
		// received_at), so a client that sends it must hear that it is out
		// of range, as Prepare says of any other time outside it.
		return errAt("", timeOutOfRange)
	}
	return nil
}

// finerThanNanos reports whether the RFC 3339 time v has a fraction of a
// second with a non-zero digit past the ninth, which time.Time drops.
func finerThanNanos(v string) bool {
	i := strings.IndexByte(v, '.')
	if i < 0 {
		return false
	}
	digits := v[i+1:]
	if end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); end >= 0 {
		digits = digits[:end]
	}
	return len(digits) > 9 && strings.Trim(digits[9:], "0") != ""
}

// strictRFC3339 reports whether v, which time.Time.UnmarshalText took,
// is RFC 3339 as written: Go also takes a comma before the fraction, and
// offsets of 24 hours or 60 minutes, which RFC 3339 does not.
func strictRFC3339(v string) bool {
	if strings.IndexByte(v, ',') >= 0 {
		return false
	}
	if n := len(v); n >= 6 && (v[n-6] == '+' || v[n-6] == '-') && v[n-3] == ':' {
		return v[n-5:n-3] <= "23" && v[n-2:] <= "59"
	}
	return true
}

func (s *scanner) actor(a *Actor) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '{' {
		return s.typeError("an object")
	}
	var seen uint8
	return s.members(func(key string) *Error {
		var dst *string
		var bit uint8
		switch key {
		case "id":
			dst, bit = &a.ID, 1
		case "type":
			dst, bit = &a.Type, 2
		case "name":
			dst, bit = &a.Name, 4
		case "email":
			dst, bit = &a.Email, 8
		case "role":
			dst, bit = &a.Role, 16
		default:
			return errAt("", "unknown field")
		}
		if seen&bit != 0 {
			return errAt("", "duplicate key")
		}
		seen |= bit
		return s.string(dst)
	})
}

func (s *scanner) targets(ts *[]Target) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '[' {
		return s.typeError("an array")
	}
	return s.elements(func(int) *Error {
		*ts = append(*ts, Target{})
		return s.target(&(*ts)[len(*ts)-1])
	})
}

func (s *scanner) target(t *Target) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '{' {
		return s.typeError("an object")
	}
	var seen uint8
	return s.members(func(key string) *Error {
		var dst *string
		var bit uint8
		switch key {
		case "type":
			dst, bit = &t.Type, 1
		case "id":
			dst, bit = &t.ID, 2
		case "name":
			dst, bit = &t.Name, 4
		default:
			return errAt("", "unknown field")
		}
		if seen&bit != 0 {
			return errAt("", "duplicate key")
		}
		seen |= bit
		return s.string(dst)
	})
}

func (s *scanner) source(src *Source) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '{' {
		return s.typeError("an object")
	}
	var seen uint8
	return s.members(func(key string) *Error {
		var dst *string
		var bit uint8
		switch key {
		case "ip":
			dst, bit = &src.IP, 1
		case "user_agent":
			dst, bit = &src.UserAgent, 2
		default:
			return errAt("", "unknown field")
		}
		if seen&bit != 0 {
			return errAt("", "duplicate key")
		}
		seen |= bit
		return s.string(dst)
	})
}

func (s *scanner) changes(dst **Changes) *Error {
	if null, err := s.null(); null || err != nil {
		return err
	}
	if s.peek() != '{' {
		return s.typeError("an object")
	}
	c := new(Changes)
	*dst = c
	return s.members(func(key string) *Error {
		var raw *[]byte
		switch key {
		case "before":
			raw = (*[]byte)(&c.Before)
		case "after":
			raw = (*[]byte)(&c.After)
		default:
			return errAt("", "unknown field")
		}
		if *raw != nil {
			return errAt("", "duplicate key")
		}
		v, err := s.rawValue(&rawRules{maxDepth: decodeDepth})
		*raw = v
		return err
	})
}
