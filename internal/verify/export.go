package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/trail-audit/trail/event"
)

// maxExportLine is the longest line an export may have: an event's
// canonical JSON is far shorter.
const maxExportLine = 1 << 20

// ErrMalformedEvent is matched by the error for a line of an export that is
// not an event.
var ErrMalformedEvent = errors.New("malformed event")

// ExportReader reads the events of an NDJSON export (GET /v1/export with
// format=ndjson): one event a line, in its canonical JSON, oldest first.
type ExportReader struct {
	sc        *bufio.Scanner
	errorLine func(line []byte) error
}

// NewExportReader returns a reader of the export in r. errorLine, if not
// nil, returns the error that a line carries instead of an event, or nil if
// it is not such a line: a server that fails after it began to send an
// export ends it with the error.
func NewExportReader(r io.Reader, errorLine func(line []byte) error) *ExportReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxExportLine), maxExportLine)
	return &ExportReader{sc: sc, errorLine: errorLine}
}

// Next returns the next event, or io.EOF after the last. The export itself
// being wrong, a line that is not an event (matching ErrMalformedEvent) or
// the error line's error, gives an error that matches ErrUnreadable too;
// a read error is returned as it is.
func (r *ExportReader) Next() (*event.Event, error) {
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	e, err := event.DecodeStored(r.sc.Bytes())
	if err != nil {
		if r.errorLine != nil {
			if lerr := r.errorLine(r.sc.Bytes()); lerr != nil {
				return nil, Unreadable(lerr)
			}
		}
		return nil, Unreadable(fmt.Errorf("%w: %w", ErrMalformedEvent, err))
	}
	if e.ID == "" || e.Log == "" || e.Seq < 0 || e.ReceivedAt.IsZero() {
		// An event as sent to a log, not as the log stored it.
		return nil, Unreadable(fmt.Errorf("%w: not a stored event (a stored event has its id, log, seq and received_at)", ErrMalformedEvent))
	}
	return &e, nil
}

// ExportSource returns a log as a server serves it, one signed checkpoint
// (its latest) and the export of its events, as a Source. It has no tiles:
// the events prove the tree. Check must read it with Options.Readers 1.
func ExportSource(checkpoint Checkpoint, events *ExportReader) Source {
	return &exportSource{checkpoint: checkpoint, r: events}
}

type exportSource struct {
	checkpoint Checkpoint
	r          *ExportReader
}

func (s *exportSource) Checkpoints(context.Context) iter.Seq2[Checkpoint, error] {
	return func(yield func(Checkpoint, error) bool) { yield(s.checkpoint, nil) }
}

// Walk passes the next to-from events of the export to fn, fewer if it
// ends: Check checks their seqs.
func (s *exportSource) Walk(_ context.Context, from, to int64, fn func(*event.Event) error) error {
	for range to - from {
		e, err := s.r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
