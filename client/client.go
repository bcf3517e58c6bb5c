// Package client talks to a Trail server over its HTTP API: it appends
// events (retrying safely), searches, and fetches events together with the
// proofs that let it verify them against a pinned verifier key, so the
// server's word is never taken on trust.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
)

// Client is a connection to one log of a Trail server, through an API key
// (the key decides the log). It is safe for concurrent use.
type Client struct {
	base *url.URL
	key  string
	hc   *http.Client
	opts Options
}

// Options tune a Client. The zero value is a good default.
type Options struct {
	// HTTPClient sends the requests. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// MaxRetries bounds retries of a request that failed with 429, 503, or
	// a network error. Default 6; negative means none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the wait between retries, which
	// doubles from MinBackoff (with jitter) unless the server sends
	// Retry-After. Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
}

// New returns a client of the server at baseURL (e.g. "http://127.0.0.1:8080")
// using key.
func New(baseURL, key string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host", baseURL)
	}
	if key == "" {
		return nil, errors.New("no API key")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 6
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	return &Client{base: u, key: key, hc: opts.HTTPClient, opts: opts}, nil
}

// APIError is an error response of the server. For code "damaged" (a
// stored event on the server is damaged) it wraps a *trail.DamagedError
// naming the event's seq, which errors.As finds and which matches
// trail.ErrDamaged.
type APIError struct {
	Status  int    // HTTP status; 0 for an error that ended an export
	Code    string // machine-readable code
	Message string
	Field   string // the offending field, for validation errors

	damaged *trail.DamagedError
}

func (e *APIError) Error() string {
	msg := "trail server: " + e.Message
	if e.Status != 0 {
		msg = fmt.Sprintf("trail server: %d %s", e.Status, e.Message)
	}
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// Unwrap returns the *trail.DamagedError of a "damaged" error, else nil.
func (e *APIError) Unwrap() error {
	if e.damaged == nil {
		return nil
	}
	return e.damaged
}

// retryable reports whether a request may be sent again.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable ||
		status == http.StatusBadGateway || status == http.StatusGatewayTimeout
}

// do sends a request, retrying what is safe to retry, and decodes a JSON
// response into out (or returns the body when out is a *[]byte).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, header http.Header, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var lastErr error
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.hc.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr = err
		case retryable(resp.StatusCode):
			lastErr = decodeError(resp)
			wait = retryAfter(resp.Header.Get("Retry-After"))
		case resp.StatusCode >= 300:
			return decodeError(resp)
		default:
			defer resp.Body.Close()
			if b, ok := out.(*[]byte); ok {
				*b, err = io.ReadAll(resp.Body)
				return err
			}
			if out == nil {
				return nil
			}
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("trail server: malformed response: %w", err)
			}
			return nil
		}
		if attempt >= c.opts.MaxRetries || c.opts.MaxRetries < 0 {
			return lastErr
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := float64(c.opts.MinBackoff) * math.Pow(2, float64(attempt))
	d = min(d, float64(c.opts.MaxBackoff))
	return time.Duration(d/2 + mrand.Float64()*d/2) // jitter: [d/2, d)
}

// retryAfter parses a Retry-After header in seconds (or an HTTP date).
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, time.Minute)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(time.Until(t), 0), time.Minute)
	}
	return 0
}

func decodeError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	parseError(b, e)
	return e
}

// parseError fills in e from an error body, {"error": {...}}, and reports
// whether b is one.
func parseError(b []byte, e *APIError) bool {
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
			Seq     *int64 `json:"seq"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil || body.Error == nil || body.Error.Message == "" {
		return false
	}
	e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	if e.Code == "damaged" && body.Error.Seq != nil {
		e.damaged = &trail.DamagedError{Seq: *body.Error.Seq}
	}
	return true
}

// ExportError returns the error that a line of an NDJSON export carries,
// or nil if the line is not one: a server that fails after it began to
// send an export (it met a damaged event, say) ends the body with the
// error, {"error": {...}}, and cuts it short.
func ExportError(line []byte) error {
	line = bytes.TrimSpace(line)
	if !bytes.HasPrefix(line, []byte(`{"error"`)) {
		return nil
	}
	e := &APIError{}
	if !parseError(line, e) {
		return nil
	}
	return e
}

// Append stores events in one request, all or none, and returns where they
// landed. It retries after a 429, a 503 or a lost connection, every
// attempt carrying the same Idempotency-Key header, so a request the
// server stored but whose answer was lost is not stored again: the retry
// gets the first answer.
func (c *Client) Append(ctx context.Context, events ...event.Event) ([]trail.Receipt, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i := range events {
		if i > 0 {
			body.WriteByte(',')
		}
		b, err := marshalInput(&events[i])
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		body.Write(b)
	}
	body.WriteString("]}")
	var out struct {
		Events []trail.Receipt `json:"events"`
	}
	h := http.Header{"Idempotency-Key": {newIdempotencyKey()}}
	if err := c.do(ctx, http.MethodPost, "/v1/events", nil, body.Bytes(), h, &out); err != nil {
		return nil, err
	}
	if len(out.Events) != len(events) {
		return nil, fmt.Errorf("trail server: %d receipts for %d events", len(out.Events), len(events))
	}
	return out.Events, nil
}

// marshalInput writes the client-settable fields of e as the API expects
// them (Trail assigns id, seq, log and received_at).
func marshalInput(e *event.Event) ([]byte, error) {
	type source struct {
		IP        string `json:"ip,omitempty"`
		UserAgent string `json:"user_agent,omitempty"`
	}
	in := struct {
		Time      *time.Time      `json:"time,omitempty"`
		Actor     event.Actor     `json:"actor"`
		Action    string          `json:"action"`
		Targets   []event.Target  `json:"targets,omitempty"`
		Outcome   event.Outcome   `json:"outcome,omitempty"`
		Reason    string          `json:"reason,omitempty"`
		Source    *source         `json:"source,omitempty"`
		RequestID string          `json:"request_id,omitempty"`
		TraceID   string          `json:"trace_id,omitempty"`
		Changes   *event.Changes  `json:"changes,omitempty"`
		Metadata  json.RawMessage `json:"metadata,omitempty"`
	}{
		Actor: e.Actor, Action: e.Action, Targets: e.Targets, Outcome: e.Outcome, Reason: e.Reason,
		RequestID: e.RequestID, TraceID: e.TraceID, Changes: e.Changes, Metadata: e.Metadata,
	}
	if !e.Time.IsZero() {
		in.Time = &e.Time
	}
	if e.Source != (event.Source{}) {
		in.Source = &source{e.Source.IP, e.Source.UserAgent}
	}
	return json.Marshal(in)
}

func newIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// query turns a trail.Query into the API's query parameters.
func query(q trail.Query) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("actor", q.Actor)
	set("action", q.Action)
	set("target_type", q.TargetType)
	set("target_id", q.TargetID)
	set("outcome", string(q.Outcome))
	set("ip", q.IP)
	set("q", q.Text)
	set("exclude_action", q.ExcludeAction)
	set("cursor", q.Cursor)
	if q.HideReads {
		v.Set("hide_reads", "true")
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// SearchPage returns one page of events matching q, newest first.
func (c *Client) SearchPage(ctx context.Context, q trail.Query) (trail.Page, error) {
	var out struct {
		Events     []json.RawMessage `json:"events"`
		NextCursor string            `json:"next_cursor"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/events", query(q), nil, nil, &out); err != nil {
		return trail.Page{}, err
	}
	p := trail.Page{NextCursor: out.NextCursor}
	for _, raw := range out.Events {
		e, err := event.DecodeStored(raw)
		if err != nil {
			return trail.Page{}, fmt.Errorf("trail server: malformed event: %w", err)
		}
		p.Events = append(p.Events, &e)
	}
	return p, nil
}

// Search yields every event matching q, newest first, fetching pages as
// it goes.
func (c *Client) Search(ctx context.Context, q trail.Query) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		for {
			p, err := c.SearchPage(ctx, q)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range p.Events {
				if !yield(e, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			q.Cursor = p.NextCursor
		}
	}
}

// Checkpoint returns the log's latest signed checkpoint, unverified.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/v1/checkpoint", nil, nil, nil, &b)
	return b, err
}

// LogInfo is what the server says about the log.
type LogInfo struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	TreeSize    int64  `json:"tree_size"`
}

// Log returns the log's origin, verifier key and size. Do not pin the
// verifier key it returns: get it from the log's operator.
func (c *Client) Log(ctx context.Context) (LogInfo, error) {
	var li LogInfo
	err := c.do(ctx, http.MethodGet, "/v1/log", nil, nil, nil, &li)
	return li, err
}

// ErrNotVerified means the server's answer did not prove what it claimed:
// a bad signature, or a proof that does not check. It is never a
// transient failure.
var ErrNotVerified = errors.New("trail server's answer does not verify")

// Verified is an event with the checkpoint that proves it is in the log,
// and the proof.
type Verified struct {
	Event      *event.Event
	Checkpoint trail.Checkpoint
	Signed     []byte           // the checkpoint as the server sent it (a signed note)
	Proof      tlog.RecordProof // from the event's leaf to Checkpoint's root
}

// Get fetches the event with the given id and verifies it: the checkpoint
// must be signed by verifierKey (pinned by the caller, not taken from the
// server), and the inclusion proof must show that the event, re-encoded in
// canonical form, is a leaf of that checkpoint's tree.
func (c *Client) Get(ctx context.Context, id, verifierKey string) (Verified, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Verified{}, fmt.Errorf("verifier key: %w", err)
	}
	var out struct {
		Event json.RawMessage `json:"event"`
		Proof struct {
			Seq      int64    `json:"seq"`
			TreeSize int64    `json:"tree_size"`
			Hashes   []string `json:"hashes"`
		} `json:"proof"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil, nil, nil, &out); err != nil {
		return Verified{}, err
	}
	e, err := event.DecodeStored(out.Event)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: malformed event: %v", ErrNotVerified, err)
	}
	if e.ID != id {
		return Verified{}, fmt.Errorf("%w: asked for %s, got %s", ErrNotVerified, id, e.ID)
	}
	cp, _, err := merkle.Open([]byte(out.Checkpoint), v)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: checkpoint: %v", ErrNotVerified, err)
	}
	if out.Proof.Seq != e.Seq || out.Proof.TreeSize != cp.Size {
		return Verified{}, fmt.Errorf("%w: proof is for seq %d in %d events, event is %d and checkpoint %d", ErrNotVerified, out.Proof.Seq, out.Proof.TreeSize, e.Seq, cp.Size)
	}
	proof, err := decodeHashes(out.Proof.Hashes)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %v", ErrNotVerified, err)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, e.Seq, tlog.RecordHash(canon.Append(nil, &e))); err != nil {
		return Verified{}, fmt.Errorf("%w: inclusion proof: %v", ErrNotVerified, err)
	}
	return Verified{Event: &e, Checkpoint: cp, Signed: []byte(out.Checkpoint), Proof: proof}, nil
}

// ProveConsistency fetches the proof that the tree of size from is a
// prefix of the tree of size to.
func (c *Client) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	var out struct {
		Hashes []string `json:"hashes"`
	}
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}}
	if err := c.do(ctx, http.MethodGet, "/v1/proof/consistency", q, nil, nil, &out); err != nil {
		return nil, err
	}
	return decodeHashes(out.Hashes)
}

func decodeHashes(in []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("malformed hash %d", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}
