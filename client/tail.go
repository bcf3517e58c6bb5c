package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// Tail follows the events matching q (GET /v1/tail) and calls f with each,
// oldest first, until ctx ends or f returns an error. After (a seq, or -1)
// resumes after that event; a dropped connection is re-opened from the
// last event seen, after a pause.
func (c *Client) Tail(ctx context.Context, q api.Query, after int64, f func(*event.Event) error) error {
	q.Limit, q.Cursor = 0, ""
	last := after
	for attempt := 0; ; attempt++ {
		err := c.tailOnce(ctx, q, &last, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && !retryable(apiErr.Status) {
			return err
		}
		var cbErr callbackError
		if errors.As(err, &cbErr) {
			return cbErr.error
		}
		if c.opts.TailRetry != nil {
			if err == nil {
				err = errors.New("the server ended the stream")
			}
			c.opts.TailRetry(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.backoff(min(attempt, 6))):
		}
	}
}

// callbackError wraps an error of Tail's callback, which ends the tail.
type callbackError struct{ error }

func (c *Client) tailOnce(ctx context.Context, q api.Query, last *int64, f func(*event.Event) error) error {
	u := *c.base
	u.Path += "/v1/tail"
	u.RawQuery = q.Values().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream")
	if *last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	// A tail lasts; the client's overall timeout must not cut it.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && name == "error":
			// The server ended the stream, as when its key was revoked.
			return streamError(data)
		case line == "" && data != "":
			name = ""
			e, err := event.DecodeStored([]byte(data))
			if err != nil {
				return fmt.Errorf("trail server: malformed event in tail: %w", err)
			}
			data = ""
			*last = e.Seq
			if err := f(&e); err != nil {
				return callbackError{err}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("trail server: tail ended")
}

// streamError turns the data of a stream's error event, an API error body,
// into an *APIError. The stream carries no status; an unauthorized key
// (revoked while the stream was open) gets 401 so that Tail stops.
func streamError(data string) error {
	e := &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: "the stream ended with an error"}
	parseError([]byte(data), e)
	if e.Code == "unauthorized" {
		e.Status = http.StatusUnauthorized
	}
	return e
}
