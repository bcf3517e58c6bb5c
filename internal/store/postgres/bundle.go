package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// Events are stored in bundles of bundleSize (0001_init.sql): the row of
// event_bundles whose first_seq is the seq rounded down to a multiple of
// bundleSize holds the canonical forms of the events from first_seq on,
// each as a uvarint of its length and then its bytes. A commit appends
// to a bundle the commit before it left part full. An empty record is an
// event missing from the bundle (a record is never empty).
const bundleSize = 16

// bundleStart is the first seq of the bundle that holds event seq.
func bundleStart(seq int64) int64 { return seq &^ (bundleSize - 1) }

// appendRecord appends rec to bundle data as one record.
func appendRecord(data, rec []byte) []byte {
	data = binary.AppendUvarint(data, uint64(len(rec)))
	return append(data, rec...)
}

// errFraming says that a bundle's records do not parse: a length runs
// past the end of the data, or cannot be read.
var errFraming = errors.New("its bundle's records do not parse: a record's length runs past the end of the bundle")

// splitBundle returns the records of a bundle's data, or errFraming.
// The records share data's memory.
func splitBundle(data []byte) ([][]byte, error) {
	var recs [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errFraming
		}
		recs = append(recs, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return recs, nil
}

// framingDamage is the *store.DamagedError of a bundle whose records do
// not parse, reported at seq: none of its events can be told apart.
func framingDamage(seq int64) error {
	return &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: errFraming}
}

// decode decodes the stored canonical form of event seq, or returns a
// *store.DamagedError: the data cannot be decoded, or it holds another
// seq.
func decode(seq int64, data []byte) (*event.Event, error) {
	e, err := event.DecodeStored(data)
	if err != nil {
		// The decoder's *event.Error says what is wrong with an event a
		// client sent, and is answered as such (400 invalid_event): as
		// the cause of a damaged record it keeps only its message.
		return nil, &store.DamagedError{Seq: seq, Problem: store.ProblemUndecodable, Err: errors.New(err.Error())}
	}
	if e.Seq != seq {
		return nil, &store.DamagedError{Seq: seq, Problem: fmt.Sprintf("its record holds seq %d", e.Seq)}
	}
	return &e, nil
}

// tsLexeme quotes w as a lexeme of a tsvector or tsquery literal.
func tsLexeme(w string) string {
	return string(appendLexeme(make([]byte, 0, len(w)+2), w))
}

// appendLexeme appends w to b as tsLexeme quotes it.
func appendLexeme(b []byte, w string) []byte {
	b = append(b, '\'')
	for i := 0; i < len(w); i++ {
		switch c := w[i]; c {
		case '\\', '\'':
			b = append(b, c, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}
