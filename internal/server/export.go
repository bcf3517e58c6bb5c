package server

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/canon"
)

// exportEvents serves GET /v1/export?format=ndjson|csv&<search filters>:
// every matching event, oldest first, streamed (constant memory). NDJSON
// lines are the canonical events; CSV has trail.CSVHeader's columns, with
// formula-looking cells guarded unless csv_raw=true. A damaged stored event
// met before any match is sent is an error response (500 damaged); one met
// later ends an NDJSON body with that error's JSON as its last line, and
// cuts the body short (CSV too).
func (s *server) exportEvents(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	x, err := api.ParseExport(r.URL.Query())
	if err != nil {
		return err
	}
	format, raw, q := x.Format, x.CSVRaw, x.Query
	// A filter Search would refuse is refused before the read is
	// recorded: the log holds exports that happened, not attempts.
	if err := trail.CheckQuery(q); err != nil {
		return err
	}
	if err := s.auditRead(r, key, l, trail.ActionExport, nil); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(newStreamWriter(w), 64<<10)
	var cw *csv.Writer
	// The status waits for the first event, so that a failure before it
	// (a damaged event among the first) is an error response.
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="`+l.Name()+`.csv"`)
			cw = csv.NewWriter(bw)
			cw.Write(trail.CSVHeader)
		} else {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Content-Disposition", `attachment; filename="`+l.Name()+`.ndjson"`)
		}
		w.WriteHeader(http.StatusOK)
	}
	var buf []byte
	row := make([]string, len(trail.CSVHeader))
	for e, err := range l.Events(r.Context(), q) {
		if err != nil {
			if !started {
				return err
			}
			// The status is sent. NDJSON ends with the error, as the
			// body of an error response; either way the stream is cut
			// short, so that the client sees an incomplete body rather
			// than a complete-looking one.
			if cw == nil {
				_, body := s.classify(r, err)
				b, _ := json.Marshal(body)
				bw.Write(append(b, '\n'))
			} else {
				cw.Flush()
			}
			bw.Flush()
			panic(http.ErrAbortHandler)
		}
		start()
		if cw != nil {
			cw.Write(trail.CSVRecord(row, e, !raw))
			continue
		}
		buf = append(canon.Append(buf[:0], e), '\n')
		if _, err := bw.Write(buf); err != nil {
			return nil // the client left
		}
	}
	start()
	if cw != nil {
		cw.Flush()
	}
	bw.Flush()
	return nil
}

// streamWriteTimeout bounds each write of a stream (an export, a tail)
// instead of the whole of it, which may take longer than the server's
// write timeout: a client that stops reading is still let go.
const streamWriteTimeout = time.Minute

// streamWriter is a stream's response writer, whose writes each get
// streamWriteTimeout.
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newStreamWriter(w http.ResponseWriter) *streamWriter {
	sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
	sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return sw
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return sw.w.Write(p)
}

// Flush sends what the server holds of the response.
func (sw *streamWriter) Flush() error {
	sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return sw.rc.Flush()
}
