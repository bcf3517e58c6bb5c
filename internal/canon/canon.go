// Package canon writes a stored event in canonical form: its RFC 8785 (JSON
// Canonicalization Scheme) serialization, assigned fields included. Those are
// the bytes Trail hashes into the log's Merkle tree as the event's leaf, and
// that a client recomputes from the event as the API returns it to check a
// proof. CheckSize bounds an event's size in that form before Trail appends
// it.
package canon

import (
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/trail-audit/trail/event"
)

// Append appends the canonical form of the stored event e to dst: its RFC
// 8785 serialization, the bytes that Trail hashes into the log. e must be in
// normal form (see [event.Event.Prepare]) with the assigned fields set.
//
// The shape of the object is part of Trail's contract. Always present are
// action, actor (with id, and its other keys when non-empty), id, log,
// outcome, received_at, seq, targets (an array, [] when there are none; a
// target's name only when non-empty) and time. Present only when non-empty are
// reason, request_id, trace_id, source (with those of ip and user_agent that
// are non-empty), changes (with those of before and after that are non-empty)
// and metadata. Metadata and changes are copied as they are, so they must
// already be canonical.
//
// Invalid UTF-8 in a string is written as U+FFFD, so the output is always
// valid JSON.
func Append(dst []byte, e *event.Event) []byte {
	dst = append(dst, `{"action":`...)
	dst = appendString(dst, e.Action)

	dst = append(dst, `,"actor":{`...)
	if e.Actor.Email != "" {
		dst = append(dst, `"email":`...)
		dst = appendString(dst, e.Actor.Email)
		dst = append(dst, ',')
	}
	dst = append(dst, `"id":`...)
	dst = appendString(dst, e.Actor.ID)
	dst = appendOptional(dst, `,"name":`, e.Actor.Name)
	dst = appendOptional(dst, `,"role":`, e.Actor.Role)
	dst = appendOptional(dst, `,"type":`, e.Actor.Type)
	dst = append(dst, '}')

	if c := e.Changes; c != nil && (len(c.After) > 0 || len(c.Before) > 0) {
		dst = append(dst, `,"changes":{`...)
		if len(c.After) > 0 {
			dst = append(dst, `"after":`...)
			dst = append(dst, c.After...)
			if len(c.Before) > 0 {
				dst = append(dst, ',')
			}
		}
		if len(c.Before) > 0 {
			dst = append(dst, `"before":`...)
			dst = append(dst, c.Before...)
		}
		dst = append(dst, '}')
	}

	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"log":`...)
	dst = appendString(dst, e.Log)
	if len(e.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, e.Metadata...)
	}
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, string(e.Outcome))
	dst = appendOptional(dst, `,"reason":`, e.Reason)
	dst = append(dst, `,"received_at":`...)
	dst = appendTime(dst, e.ReceivedAt)
	dst = appendOptional(dst, `,"request_id":`, e.RequestID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)

	if e.Source.IP != "" || e.Source.UserAgent != "" {
		dst = append(dst, `,"source":{`...)
		if e.Source.IP != "" {
			dst = append(dst, `"ip":`...)
			dst = appendString(dst, e.Source.IP)
			if e.Source.UserAgent != "" {
				dst = append(dst, ',')
			}
		}
		if e.Source.UserAgent != "" {
			dst = append(dst, `"user_agent":`...)
			dst = appendString(dst, e.Source.UserAgent)
		}
		dst = append(dst, '}')
	}

	dst = append(dst, `,"targets":[`...)
	for i := range e.Targets {
		t := &e.Targets[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = appendString(dst, t.ID)
		dst = appendOptional(dst, `,"name":`, t.Name)
		dst = append(dst, `,"type":`...)
		dst = appendString(dst, t.Type)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')

	dst = append(dst, `,"time":`...)
	dst = appendTime(dst, e.Time)
	dst = appendOptional(dst, `,"trace_id":`, e.TraceID)
	return append(dst, '}')
}

// appendOptional appends key (which includes the comma and colon) and the
// string v, unless v is empty.
func appendOptional(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, key...)
	return appendString(dst, v)
}

// appendTime appends t in UTC as a JSON string in time.RFC3339Nano form,
// written by hand for years 0 to 9999 (every time an event can hold):
// canonicalising is on the hot path of both appending and verifying.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	hour, min, sec := t.Clock()
	dst = append(dst, '"',
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z', '"')
}

// plainASCII marks the bytes that RFC 8785 writes unescaped and that are not
// part of a multi-byte UTF-8 sequence.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string escaped as RFC 8785 (and
// ECMAScript's JSON.stringify) escape it: quote and backslash, the short
// forms \b \f \n \r \t, \u00xx for other control characters, and everything
// else as it is.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // start of the text not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c >= 0x80 {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += n
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The assigned fields at their longest, for the event size check.
const (
	longestID         = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
	longestSeq        = 1<<53 - 1
	longestLogName    = "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll" // 64 bytes
	longestReceivedAt = "2006-01-02T15:04:05.999999999Z"
)

// CheckSize returns an *[event.Error] (Index -1, no field) if the canonical
// form of e, in normal form (see [event.Event.Prepare]), would be larger than
// lim.MaxEventSize (or its default, also for a limit past
// event.MaxEntrySize) once Trail sets the assigned fields (and
// a zero Time), each counted at its longest.
func CheckSize(e *event.Event, lim event.Limits) error {
	max := lim.MaxEventSize
	if max <= 0 || max > event.MaxEntrySize {
		max = event.DefaultLimits().MaxEventSize
	}
	if size := longestSize(e); size > max {
		return &event.Error{Index: -1, Reason: fmt.Sprintf("event would be up to %d bytes in canonical form once Trail assigns its id, seq, log and received_at (each counted at its longest); the limit is %d", size, max)}
	}
	return nil
}

// sizeBufs holds buffers for the event size check.
var sizeBufs = sync.Pool{New: func() any { return new([]byte) }}

// longestSize returns the size of e's canonical form once Trail has set the
// assigned fields, taking each at its longest.
func longestSize(e *event.Event) int {
	t := *e
	t.ID = longestID
	t.Seq = longestSeq
	t.Log = longestLogName
	t.ReceivedAt, _ = time.Parse(time.RFC3339Nano, longestReceivedAt)
	if t.Time.IsZero() {
		t.Time = t.ReceivedAt
	}
	bp := sizeBufs.Get().(*[]byte)
	b := Append((*bp)[:0], &t)
	size := len(b)
	if cap(b) <= 256<<10 {
		*bp = b
		sizeBufs.Put(bp)
	}
	return size
}
