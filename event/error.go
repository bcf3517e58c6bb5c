package event

import (
	"strconv"
	"strings"
)

// Error reports an invalid event. Decode, DecodeStored and Prepare return it;
// callers that need the field, for example to build an API error, get it with
// errors.As.
type Error struct {
	// Index is the event's 0-based position in a batch, or -1 when the event
	// was not part of one. The functions of this package always set -1; batch
	// handlers fill it in.
	Index int
	// Field is a path such as "actor.id", "targets[2].type" or "metadata.a.b",
	// or "" when the whole event is at fault (not a JSON object, too large).
	// Object keys that are not plain words are quoted: metadata["a.b"].
	Field string
	// Reason is a short lower-case description of what is wrong.
	Reason string
}

// Error returns "event 3: actor.id: required", leaving out the event part when
// Index < 0 and the field part when Field is empty.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		b.WriteString("event ")
		b.WriteString(strconv.Itoa(e.Index))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

func errAt(field, reason string) *Error {
	return &Error{Index: -1, Field: field, Reason: reason}
}

// under makes e's field, which is relative to a value, relative to the value's
// parent, where the value is found at the path step parent ("actor", "[2]").
func (e *Error) under(parent string) *Error {
	switch {
	case e.Field == "":
		e.Field = parent
	case e.Field[0] == '[':
		e.Field = parent + e.Field
	default:
		e.Field = parent + "." + e.Field
	}
	if len(e.Field) > maxPathLen {
		e.Field = e.Field[:maxPathLen-3] + "..."
	}
	return e
}

// maxPathLen bounds Field, keeping its outer steps, for errors deep inside
// nested values.
const maxPathLen = 512

// maxKeyInPath bounds how much of an object key an error message repeats.
const maxKeyInPath = 64

// pathKey returns the path step for the object key k: k itself when it is a
// plain word, otherwise k quoted in brackets (and cut short when long), so
// that a key holding dots, quotes or control characters cannot make a path
// ambiguous or smuggle text into logs.
func pathKey(k string) string {
	plain := k != ""
	for i := 0; i < len(k) && plain; i++ {
		c := k[i]
		plain = c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	if plain && len(k) <= maxKeyInPath {
		return k
	}
	if len(k) > maxKeyInPath {
		return "[" + strconv.QuoteToASCII(k[:maxKeyInPath]) + "...]"
	}
	return "[" + strconv.QuoteToASCII(k) + "]"
}

func pathIndex(i int) string {
	return "[" + strconv.Itoa(i) + "]"
}
