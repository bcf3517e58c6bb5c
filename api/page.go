package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// Page is one page of search results, newest first: the answer of
// GET /v1/events and of trail.Log.Search. In JSON each event is in its
// canonical form, the bytes of its leaf, and an empty NextCursor is null.
type Page struct {
	Events []*event.Event `json:"events"`
	// NextCursor fetches the next (older) page; empty when there is none.
	NextCursor string `json:"next_cursor"`
}

// pageChunk is how much of a page WriteTo buffers before it writes.
const pageChunk = 32 << 10

// WriteTo writes p as JSON and a newline, as GET /v1/events answers, in
// pieces of about 32 KiB, so that a large page is not held in memory twice.
func (p Page) WriteTo(w io.Writer) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		return err
	}
	buf := []byte(`{"events":[`)
	for i, e := range p.Events {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = canon.Append(buf, e)
		if len(buf) > pageChunk {
			if err := write(buf); err != nil {
				return n, err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, `],"next_cursor":`...)
	if p.NextCursor == "" {
		buf = append(buf, "null"...)
	} else {
		s, _ := json.Marshal(p.NextCursor)
		buf = append(buf, s...)
	}
	buf = append(buf, "}\n"...)
	return n, write(buf)
}

// MarshalJSON encodes p as WriteTo does, without the newline. (json.Marshal
// then escapes <, > and & in strings, as it always does; WriteTo writes the
// events' canonical bytes.)
func (p Page) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes a page, each event as a stored event
// (event.DecodeStored), so that it encodes back to the same canonical
// bytes.
func (p *Page) UnmarshalJSON(data []byte) error {
	var raw struct {
		Events     []json.RawMessage `json:"events"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := Page{}
	if raw.NextCursor != nil {
		out.NextCursor = *raw.NextCursor
	}
	for i, b := range raw.Events {
		e, err := event.DecodeStored(b)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		out.Events = append(out.Events, &e)
	}
	*p = out
	return nil
}
