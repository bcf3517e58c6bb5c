// Package client talks to a Trail server over its HTTP API: it appends
// events (retrying safely), searches, and fetches events together with the
// proofs that let it verify them against a pinned verifier key, so the
// server's word is never taken on trust. With a witness policy
// (Options.Policy, package policy) it also requires the checkpoints it
// relies on to carry the cosignatures of witnesses that meet the policy's
// quorum (C2SP tlog-cosignature), so that a log shown differently to
// different readers, or rolled back, is caught.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/policy"
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
	// Retry, if set, is called before each retry of a request, with the
	// error that makes it retry and the wait before it: to tell someone
	// waiting that the server does not answer yet.
	Retry func(err error, wait time.Duration)
	// TailRetry, if set, is called by Tail each time its stream is
	// refused or drops, with the error, before it waits to open it again:
	// to tell someone watching that the server cannot be reached.
	TailRetry func(err error)
	// Policy, if set, is the witness policy (package policy, C2SP
	// tlog-policy) the log's checkpoints must meet: Get, Verify and
	// Monitor then refuse a checkpoint whose witnesses' cosignatures do not
	// meet its quorum, with an error matching ErrNotWitnessed, and report
	// the cosigners of one that does. If the policy has log lines, one must
	// name the verifier key the caller pins. Without it, a checkpoint
	// signed by the log's key is enough.
	Policy *policy.Policy
}

// shownURL is a server URL as an error quotes it: without its password,
// and not at all when it is an API key given in its place.
func shownURL(s string) string {
	if strings.HasPrefix(s, "trail_") {
		return "(an API key, not a URL: not shown)"
	}
	if u, err := url.Parse(s); err == nil {
		if _, ok := u.User.Password(); ok {
			return strconv.Quote(u.Redacted())
		}
	} else if i := strings.LastIndex(s, "@"); i >= 0 {
		// Not a URL, perhaps with a password all the same.
		return strconv.Quote("…" + s[i:])
	}
	return strconv.Quote(s)
}

// New returns a client of the server at baseURL (e.g. "http://127.0.0.1:8080")
// using key.
func New(baseURL, key string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %s: want http://host:port or https://host", shownURL(baseURL))
	}
	if key == "" {
		return nil, errors.New("no API key")
	}
	if !headerToken(key) {
		return nil, errors.New("API key: holds a space or a character outside printable ASCII (a line end read from a file, say), which no key has")
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

// Checkpoint is a parsed checkpoint (C2SP tlog-checkpoint) of the log:
// its origin, tree size and root hash.
type Checkpoint = merkle.Checkpoint

// ErrDamaged matches an *APIError of code "damaged": a stored event on the
// server is damaged (changed outside Trail), and the error's Seq names it.
// Retrying does not help; the log's operator runs trail verify.
var ErrDamaged = errors.New("a stored event on the trail server is damaged")

// APIError is an error response of the server (api.Error). One of code
// "damaged" matches ErrDamaged.
type APIError struct {
	Status  int    // HTTP status; 0 for an error that ended an export
	Code    string // machine-readable code
	Message string
	Field   string // the offending field, for validation errors
	// Index is the offending event's position in the request's events,
	// for validation errors of an append; -1 when none is named.
	Index int
	// Seq is the damaged stored event's seq, for code "damaged".
	Seq int64
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

// Is makes an error of code "damaged" match ErrDamaged.
func (e *APIError) Is(target error) bool { return target == ErrDamaged && e.Code == "damaged" }

// retryable reports whether a request may be sent again.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable ||
		status == http.StatusBadGateway || status == http.StatusGatewayTimeout
}

// maxAnswer bounds the size of an answer the client reads whole: a
// page of at most 1000 events of at most 64 KiB each, with room to spare.
// A variable for tests.
var maxAnswer int64 = 256 << 20

// errTooLarge is the error of an answer over maxAnswer.
var errTooLarge = errors.New("trail server: malformed response: larger than any answer of the API")

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
			// Not "Get URL: …": the method and path are the client's
			// business; the server and what went wrong are the caller's.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			lastErr = fmt.Errorf("trail server %s cannot be reached: %w", c.base.Redacted(), err)
		case retryable(resp.StatusCode):
			lastErr = decodeError(resp)
			wait = retryAfter(resp.Header.Get("Retry-After"))
		case resp.StatusCode >= 300:
			return decodeError(resp)
		default:
			defer resp.Body.Close()
			// No answer of the API is larger; a server that sends more
			// (without end, say) is refused rather than read into memory.
			r := &io.LimitedReader{R: resp.Body, N: maxAnswer + 1}
			if b, ok := out.(*[]byte); ok {
				*b, err = io.ReadAll(r)
				if err == nil && r.N == 0 {
					err = errTooLarge
				}
				return err
			}
			if out == nil {
				return nil
			}
			if err := json.NewDecoder(r).Decode(out); err != nil {
				if r.N == 0 {
					return errTooLarge
				}
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
		if c.opts.Retry != nil {
			c.opts.Retry(lastErr, wait)
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
	e := &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode), Index: -1}
	parseError(b, e)
	return e
}

// parseError fills in e from an error body, {"error": {...}}, and reports
// whether b is one.
func parseError(b []byte, e *APIError) bool {
	var body api.Error
	if json.Unmarshal(b, &body) != nil || body.Error.Message == "" {
		return false
	}
	e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	if body.Error.Seq != nil {
		e.Seq = *body.Error.Seq
	}
	e.Index = -1
	if body.Error.Index != nil {
		e.Index = *body.Error.Index
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
//
// When ctx ends first, the events may have been stored or not. To be able
// to retry them then without storing them twice, use AppendIdempotent.
func (c *Client) Append(ctx context.Context, events ...event.Event) ([]api.Receipt, error) {
	out, err := c.append(ctx, nil, "", events)
	return out.Events, err
}

// AppendIdempotent is Append under the caller's idempotency key: 1 to 255
// printable ASCII characters, unique to this request among the key's
// requests (a UUID, say). A call that failed for any reason, ctx
// included, can be made again with the same key and events, by this
// process or another: if the first was stored, the server answers with
// its receipts and stores nothing again. The same key with other events
// is refused (code idempotency_conflict). The server keeps keys for at
// least 24 hours.
func (c *Client) AppendIdempotent(ctx context.Context, key string, events ...event.Event) ([]api.Receipt, error) {
	if key == "" || len(key) > 255 || !headerToken(key) {
		return nil, errors.New("idempotency key: want 1 to 255 printable ASCII characters, no spaces")
	}
	out, err := c.append(ctx, nil, key, events)
	return out.Events, err
}

// headerToken reports whether s is printable ASCII without spaces, as API
// and idempotency keys are.
func headerToken(s string) bool {
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// append is Append, with query sent in the URL, under idempotency key
// idem, or a new one if empty.
func (c *Client) append(ctx context.Context, query url.Values, idem string, events []event.Event) (api.Receipts, error) {
	if len(events) == 0 {
		return api.Receipts{}, nil
	}
	batch := api.Batch{Events: make([]api.EventInput, len(events))}
	for i := range events {
		batch.Events[i] = api.NewEventInput(&events[i])
	}
	body, err := json.Marshal(batch)
	if err != nil {
		// Name the event (its metadata or changes are not JSON).
		for i, in := range batch.Events {
			if _, ierr := json.Marshal(in); ierr != nil {
				return api.Receipts{}, fmt.Errorf("event %d: %w", i, ierr)
			}
		}
		return api.Receipts{}, err
	}
	var out api.Receipts
	if idem == "" {
		idem = newIdempotencyKey()
	}
	h := http.Header{"Idempotency-Key": {idem}}
	if err := c.do(ctx, http.MethodPost, "/v1/events", query, body, h, &out); err != nil {
		return api.Receipts{}, err
	}
	if len(out.Events) != len(events) {
		return api.Receipts{}, fmt.Errorf("trail server: %d receipts for %d events", len(out.Events), len(events))
	}
	return out, nil
}

func newIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SearchPage returns one page of events matching q, newest first.
func (c *Client) SearchPage(ctx context.Context, q api.Query) (api.Page, error) {
	var p api.Page
	if err := c.do(ctx, http.MethodGet, "/v1/events", q.Values(), nil, nil, &p); err != nil {
		return api.Page{}, err
	}
	for i, e := range p.Events {
		if e == nil || e.ID == "" || e.Log == "" || e.Seq < 0 || e.ReceivedAt.IsZero() {
			return api.Page{}, fmt.Errorf("trail server: malformed response: event %d of the page is not a stored event (a stored event has its id, log, seq and received_at)", i)
		}
	}
	return p, nil
}

// Search yields every event matching q, newest first, fetching pages as
// it goes.
func (c *Client) Search(ctx context.Context, q api.Query) iter.Seq2[*event.Event, error] {
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

// Checkpoint returns the log's latest signed checkpoint, unverified. A
// server with a witness policy answers the newest checkpoint that meets it,
// with the witnesses' cosignatures (see SignedCheckpoint).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/v1/checkpoint", nil, nil, nil, &b)
	return b, err
}

// SignedCheckpoint returns the log's newest checkpoint signed by the log,
// unverified, whether or not its witnesses cosigned it
// (GET /v1/checkpoint?witnessed=false): on a server with a witness policy
// it may be newer than Checkpoint's, by the events not witnessed yet.
func (c *Client) SignedCheckpoint(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/v1/checkpoint", url.Values{"witnessed": {"false"}}, nil, nil, &b)
	return b, err
}

// Log returns the log's origin, verifier key and size. Do not pin the
// verifier key it returns: get it from the log's operator.
func (c *Client) Log(ctx context.Context) (api.LogInfo, error) {
	var li api.LogInfo
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
	Checkpoint Checkpoint
	Signed     []byte           // the checkpoint as the server sent it (a signed note)
	Proof      tlog.RecordProof // from the event's leaf to Checkpoint's root
	// Witnesses is what the client's witness policy found in Signed's
	// cosignatures (the quorum met); nil without a policy.
	Witnesses *policy.Result
}

// Get fetches the event with the given id and verifies it: the checkpoint
// must be signed by verifierKey (pinned by the caller, not taken from the
// server), and the inclusion proof must show that the event, re-encoded in
// canonical form, is a leaf of that checkpoint's tree. With a witness
// policy (Options.Policy), the checkpoint must also meet it; an event newer
// than the latest witnessed checkpoint fails with ErrNotWitnessed until its
// witnesses cosign one that holds it.
func (c *Client) Get(ctx context.Context, id, verifierKey string) (Verified, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Verified{}, fmt.Errorf("verifier key: %w", err)
	}
	var b []byte
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil, nil, nil, &b); err != nil {
		return Verified{}, err
	}
	var out api.EventProof
	if err := json.Unmarshal(b, &out); err != nil {
		return Verified{}, fmt.Errorf("%w: malformed answer: %v", ErrNotVerified, err)
	}
	e, err := event.DecodeStored(out.Event)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: malformed event: %v", ErrNotVerified, err)
	}
	if !eventid.Equal(e.ID, id) {
		return Verified{}, fmt.Errorf("%w: asked for %s, got %s", ErrNotVerified, id, e.ID)
	}
	cp, _, err := merkle.Open([]byte(out.Checkpoint), v)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: checkpoint: %v", ErrNotVerified, err)
	}
	if out.Proof.Seq != e.Seq || out.Proof.TreeSize != cp.Size {
		return Verified{}, fmt.Errorf("%w: proof is for seq %d in %d events, event is %d and checkpoint %d", ErrNotVerified, out.Proof.Seq, out.Proof.TreeSize, e.Seq, cp.Size)
	}
	proof := tlog.RecordProof(out.Proof.Hashes)
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, e.Seq, tlog.RecordHash(canon.Append(nil, &e))); err != nil {
		return Verified{}, fmt.Errorf("%w: inclusion proof: %v", ErrNotVerified, err)
	}
	got := Verified{Event: &e, Checkpoint: cp, Signed: []byte(out.Checkpoint), Proof: proof}
	got.Witnesses, err = c.witnessed(v, cp, got.Signed)
	if err != nil {
		return Verified{}, err
	}
	return got, nil
}

// ProveConsistency fetches the proof that the tree of size from is a
// prefix of the tree of size to.
func (c *Client) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	var out api.ConsistencyProof
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}}
	if err := c.do(ctx, http.MethodGet, "/v1/proof/consistency", q, nil, nil, &out); err != nil {
		return nil, err
	}
	return tlog.TreeProof(out.Hashes), nil
}
