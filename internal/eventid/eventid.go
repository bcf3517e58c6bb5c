// Package eventid makes and parses the ids Trail gives events: ULIDs whose
// timestamp is the event's received_at and whose entropy is its seq followed
// by a fingerprint of its log's name. So ids sort along seq within a log,
// and an id names both its log and the event's place in it (see Make).
package eventid

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxSeq is the largest sequence number an event id can carry: ids hold 40
// bits of it.
const MaxSeq = 1<<40 - 1

// Errors from Parse. Callers branch on them with errors.Is.
var (
	// ErrMalformedID means the text is not a ULID.
	ErrMalformedID = errors.New("malformed event id")
	// ErrForeignID means the id is well formed but was made for another log.
	ErrForeignID = errors.New("event id belongs to another log")
)

// Make returns the id of the event at seq in the log named log, received at
// receivedAt. The id is a ULID (26 characters of Crockford base32): its 48-bit
// timestamp is receivedAt in Unix milliseconds, and its 80 bits of entropy are
// seq as a 40-bit big-endian number followed by the first 40 bits of the
// SHA-256 of the log's name.
//
// So within a log ids sort along seq (received_at never goes back), the ids
// of different logs differ, and an id locates its event without an index
// (see Parse).
//
// Make panics if seq is outside [0, MaxSeq] or receivedAt is before 1970 or
// beyond the ULID range (year 10889): Trail assigns both, so either is a bug.
func Make(log string, seq int64, receivedAt time.Time) string {
	if seq < 0 || seq > MaxSeq {
		panic(fmt.Sprintf("eventid: Make: seq %d outside [0, %d]", seq, int64(MaxSeq)))
	}
	var id ulid.ULID
	if receivedAt.Before(time.Unix(0, 0)) || id.SetTime(ulid.Timestamp(receivedAt)) != nil {
		panic(fmt.Sprintf("eventid: Make: received_at %v outside the ULID time range", receivedAt))
	}
	putSeq(id[6:11], seq)
	fp := logFingerprint(log)
	copy(id[11:], fp[:])
	return id.String()
}

// Parse returns the seq of the event whose id is id in the log named log.
// The error is ErrMalformedID if id is not a ULID (in either case), and
// ErrForeignID if it was not made for this log.
func Parse(log, id string) (seq int64, err error) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return 0, ErrMalformedID
	}
	if fp := logFingerprint(log); [5]byte(u[11:]) != fp {
		return 0, ErrForeignID
	}
	b := u[6:11]
	return int64(b[0])<<32 | int64(b[1])<<24 | int64(b[2])<<16 | int64(b[3])<<8 | int64(b[4]), nil
}

// Equal reports whether a and b are the same id: ULIDs are
// case-insensitive, so they may differ only in the case of ASCII letters.
func Equal(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func putSeq(b []byte, seq int64) {
	b[0] = byte(seq >> 32)
	b[1] = byte(seq >> 24)
	b[2] = byte(seq >> 16)
	b[3] = byte(seq >> 8)
	b[4] = byte(seq)
}

// lastFingerprint remembers the last log's fingerprint: ids are made and
// parsed for one log at a time, many in a row.
var lastFingerprint atomic.Pointer[fingerprint]

type fingerprint struct {
	log string
	fp  [5]byte
}

func logFingerprint(log string) [5]byte {
	if f := lastFingerprint.Load(); f != nil && f.log == log {
		return f.fp
	}
	h := sha256.Sum256([]byte(log))
	f := &fingerprint{log, [5]byte(h[:5])}
	lastFingerprint.Store(f)
	return f.fp
}
