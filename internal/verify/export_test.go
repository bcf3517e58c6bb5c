package verify

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/canon"
)

var errCutShort = errors.New("the server cut the export short")

// errorLine recognises the error line a server ends a failed export with.
func errorLine(line []byte) error {
	if bytes.HasPrefix(line, []byte(`{"error"`)) {
		return errCutShort
	}
	return nil
}

// export returns the NDJSON export of events [0, n) of an honest test log,
// then tail.
func export(n int64, tail string) string {
	var b []byte
	for seq := range n {
		b = append(canon.Append(b, makeEvent(seq)), '\n')
	}
	return string(b) + tail
}

func TestExportReader(t *testing.T) {
	for _, c := range []struct {
		name       string
		body       string
		events     int64
		err        error // wanted after the events; io.EOF at the end
		unreadable bool  // the error matches ErrUnreadable
	}{
		{name: "events", body: export(5, ""), events: 5, err: io.EOF},
		{name: "empty", body: "", events: 0, err: io.EOF},
		{name: "error line", body: export(3, `{"error":{"code":"damaged","message":"stored event at seq 3 is damaged","seq":3}}`+"\n"), events: 3, err: errCutShort, unreadable: true},
		{name: "malformed line", body: export(2, "{\"id\":\n"), events: 2, err: ErrMalformedEvent, unreadable: true},
		{name: "not a stored event", body: export(2, "{}\n"), events: 2, err: ErrMalformedEvent, unreadable: true},
		{name: "negative seq", body: export(1, `{"action":"a.b","actor":{"id":"a"},"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","log":"l","received_at":"2026-01-01T00:00:00Z","seq":-1,"time":"2026-01-01T00:00:00Z"}`+"\n"), events: 1, err: ErrMalformedEvent, unreadable: true},
		{name: "line too long", body: export(1, strings.Repeat("x", maxExportLine+1)), events: 1, err: bufio.ErrTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewExportReader(strings.NewReader(c.body), errorLine)
			var n int64
			var err error
			for {
				e, nerr := r.Next()
				if nerr != nil {
					err = nerr
					break
				}
				if e.Seq != n || leaf(e) != leaf(makeEvent(n)) {
					t.Fatalf("Next() = event %d (%+v), want event %d as exported", e.Seq, e, n)
				}
				n++
			}
			if n != c.events {
				t.Errorf("read %d events, want %d", n, c.events)
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Errorf("Next() after the events = %v, want %v", err, c.err)
			}
			if errors.Is(err, ErrUnreadable) != c.unreadable {
				t.Errorf("Next() after the events = %v: matches ErrUnreadable %v, want %v", err, !c.unreadable, c.unreadable)
			}
		})
	}
}

// An export verifies against the checkpoint it is for, read as one
// stream; one cut short or with a line that is not an event does not.
func TestCheckExport(t *testing.T) {
	_, v := testKey()
	l := newTestLog(t, 700)
	full := export(l.size, "")
	for _, c := range []struct {
		name    string
		body    string
		seq     int64
		problem string
	}{
		{name: "whole", body: full, seq: -2},
		{name: "longer than the checkpoint", body: full + export(703, "")[len(full):], seq: -2},
		{name: "cut short", body: export(650, ""), seq: 650, problem: "event missing: the log should hold 700 events but ends at 650"},
		{name: "cut short by the server", body: export(650, `{"error":{"message":"damaged"}}`+"\n"), seq: 650, problem: "stored events cannot be read: " + errCutShort.Error()},
		{name: "malformed line", body: export(10, "garbage\n"), seq: 10, problem: "stored events cannot be read: malformed event"},
		{name: "event left out", body: export(10, "") + full[len(export(11, "")):], seq: 10, problem: "event missing (next stored event is seq 11)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := ExportSource(l.checkpoints[0], NewExportReader(strings.NewReader(c.body), errorLine))
			rep, err := Check(t.Context(), src, l.size, Options{Verifier: v, Readers: 1})
			if c.seq == -2 {
				if err != nil || rep.Root != l.root {
					t.Errorf("Check = %+v, %v; want root %v", rep, err, l.root)
				}
				return
			}
			var ve *Error
			if !errors.As(err, &ve) || ve.Seq != c.seq || !strings.Contains(ve.Problem, c.problem) {
				t.Errorf("Check = %v; want seq %d, a problem saying %q", err, c.seq, c.problem)
			}
		})
	}
}
