package server

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// tailPoll is how often a tail looks for new events; tailKeepAlive how
// often it sends a comment to keep idle connections open; tailKeyCheck how
// often it asks the store whether its key is still valid, which bounds how
// long a key revoked by another process (trail keys revoke) keeps a stream
// open. A revocation through this server's DB is seen at the next poll.
const (
	tailPoll      = 250 * time.Millisecond
	tailKeepAlive = 15 * time.Second
	tailKeyCheck  = time.Second
	// tailChunk is how many seqs of a backlog a stream reads at once.
	tailChunk = 4096
)

// tailEvents serves GET /v1/tail?<search filters>: a Server-Sent Events
// stream of the events matching the filters appended from now on (or
// after the seq in a Last-Event-ID header, to resume), oldest first. Each
// message has the event's seq as id and its canonical JSON as data.
func (s *server) tailEvents(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	q, err := api.ParseTail(r.URL.Query())
	if err != nil {
		return err
	}
	// A filter Search would refuse is a 400 now, not an error event once
	// the stream has begun.
	if err := trail.CheckQuery(q); err != nil {
		return err
	}
	next, err := resumeAt(r, l)
	if err != nil {
		return err
	}
	if err := s.recordRead(r, key, l, trail.ActionTail, nil, tailParams(r)); err != nil {
		return err
	}
	s.stream(w, r, key, l, q, max(next, 0), func(buf []byte, e *event.Event) []byte {
		buf = append(buf, "id: "...)
		buf = strconv.AppendInt(buf, e.Seq, 10)
		buf = append(buf, "\nevent: event\ndata: "...)
		return append(canon.Append(buf, e), "\n\n"...)
	})
	return nil
}

// tailParams are the parameters a stream's read is recorded with: its
// query, and the Last-Event-ID it resumes after, which can start it
// anywhere in the log's history.
func tailParams(r *http.Request) url.Values {
	v := r.URL.Query()
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		v.Set("last_event_id", id)
	}
	return v
}

// resumeAt returns the seq a stream starts at: after the seq in the
// request's Last-Event-ID header (a reconnect), or at size, the log's
// end, without one or with one past the end.
func resumeAt(r *http.Request, l *trail.Log) (int64, error) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		return l.Size(), nil
	}
	seq, err := strconv.ParseInt(last, 10, 64)
	if err != nil || seq < -1 || strconv.FormatInt(seq, 10) != last {
		return 0, badHeader("Last-Event-ID", "the seq of the last event received")
	}
	// The event may be one another server has just acknowledged: the
	// stream must start after it, not at this server's older end.
	size := l.SizeFor(r.Context(), min(seq, math.MaxInt64-1)+1)
	if seq < size { // seq+1 would overflow at the largest seq
		return seq + 1, nil
	}
	return size, nil
}

// stream sends Server-Sent Events of the events matching q from seq next
// on, as they are committed, until the client leaves or key is revoked:
// msg appends one event's message to buf. The status is sent first, so
// errors after that end the stream with an error event whose data is the
// error's JSON body (a damaged event, or a revoked key: see keyRevoked).
func (s *server) stream(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log, q api.Query, next int64, msg func(buf []byte, e *event.Event) []byte) {
	// A stream outlives the server's write timeout: each write has its
	// own.
	rc := newStreamWriter(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(rc)
	bw.WriteString(": tailing\n\n")
	if bw.Flush() != nil || rc.Flush() != nil {
		return
	}
	poll := time.NewTicker(tailPoll)
	defer poll.Stop()
	idle := time.Now()
	// The first poll checks the key: a client that reconnects with a key
	// revoked by another process may have been let in by the key cache.
	revocations, checked := s.db.KeysRevoked(), time.Time{}
	// end sends the error event that ends the stream; data is the JSON
	// body of an API error.
	end := func(data string) {
		bw.WriteString("event: error\ndata: " + data + "\n\n")
		bw.Flush()
		rc.Flush()
	}
	var buf []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.opts.Stop:
			return
		case <-poll.C:
		}
		if n := s.db.KeysRevoked(); n != revocations || time.Since(checked) >= tailKeyCheck {
			revocations, checked = n, time.Now()
			if s.keyRevoked(r, key.ID) {
				end(errRevokedStream)
				return
			}
			// A stream opened with the viewer's session (its live
			// rows, or an API tail with the session's cookie) also
			// ends with it: signed out (through any server of the
			// store), or expired.
			if isFragment(r) || bySession(r) {
				if _, err := s.requestSession(r); err != nil {
					end(errSessionEndedStream)
					return
				}
			}
		}
		// A backlog (a stream resumed far back) goes out a chunk at a
		// time, each sent before the next is read: the memory a stream
		// holds is bounded, and its first events come at once.
		for size := l.Size(); next < size; {
			upto := min(size, next+tailChunk)
			evs, err := newMatches(r, l, q, next, upto)
			if err != nil {
				if r.Context().Err() == nil {
					// Say why the stream ends (a damaged event, say), as
					// an error response's body would.
					_, body := s.classify(r, err)
					data, _ := json.Marshal(body)
					end(string(data))
				}
				return
			}
			for _, e := range evs {
				buf = msg(buf[:0], e)
				bw.Write(buf)
			}
			next = upto
			if len(evs) > 0 {
				idle = time.Now()
				if next < size && (bw.Flush() != nil || rc.Flush() != nil) {
					return // the client left
				}
			}
		}
		if time.Since(idle) > tailKeepAlive {
			bw.WriteString(": keep-alive\n\n")
			idle = time.Now()
		}
		if bw.Flush() != nil || rc.Flush() != nil {
			return // the client left
		}
	}
}

// errRevokedStream is the data of the error event that ends a stream whose
// key was revoked: the JSON of an API error.
const errRevokedStream = `{"error":{"code":"unauthorized","message":"the API key of this stream was revoked"}}`

// errSessionEndedStream is the data of the error event that ends the
// viewer's stream of a session that was signed out or expired.
const errSessionEndedStream = `{"error":{"code":"unauthorized","message":"the session has ended: sign in again"}}`

// keyRevoked reports whether the key with id can no longer be used: it was
// revoked, or deleted, or the store cannot say (a stream then ends, failing
// closed; the client may reconnect, and its key is checked again).
func (s *server) keyRevoked(r *http.Request, id string) bool {
	k, err := s.db.Key(r.Context(), id)
	if err != nil {
		if r.Context().Err() == nil {
			s.opts.Logger.WarnContext(r.Context(), "stream ended: cannot check its key", "key", id, "err", err)
		}
		return true
	}
	return !k.RevokedAt.IsZero()
}

// newMatches returns the events of [from, to) matching q, oldest first.
// Search pages newest first below a cursor, so the pages are walked down to
// from and reversed.
func newMatches(r *http.Request, l *trail.Log, q api.Query, from, to int64) ([]*event.Event, error) {
	q.Limit = 1000
	q.Cursor = strconv.FormatInt(to, 10)
	var out []*event.Event
	for {
		page, err := l.Search(r.Context(), q)
		if err != nil {
			return nil, err
		}
		done := false
		for _, e := range page.Events {
			if e.Seq < from {
				done = true
				break
			}
			out = append(out, e)
		}
		if done || page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
