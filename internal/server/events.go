package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// readBody reads the request's body, at most limit bytes. A body over
// the limit fails with a *http.MaxBytesError (413), one that does not
// arrive within the server's read timeout with os.ErrDeadlineExceeded
// (408), and one that breaks off (the connection closed before its
// Content-Length, a malformed chunk) with a 400 saying so.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		// Refused unread: a client that waits for 100 Continue sends
		// nothing, and reads the 413 rather than a reset connection.
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var me *http.MaxBytesError
	if err != nil && !errors.As(err, &me) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: "the request body broke off before its end: " + err.Error()}
	}
	return body, err
}

// appendEvents serves POST /v1/events. The body is one event object,
// {"events": [...]}, or NDJSON (Content-Type application/x-ndjson). The
// events are committed all or none; a 2xx answer means all are durable.
func (s *server) appendEvents(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return errUnsupported
		case params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8"):
			return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "charset " + params["charset"] + ": events are UTF-8"}
		case mt == "application/x-ndjson":
			ndjson = true
		case mt != "application/json":
			return errUnsupported
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "Content-Encoding " + ce + ": send the body uncompressed"}
	}
	body, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var raws [][]byte
	single := false
	if ndjson {
		raws, err = splitNDJSON(body)
	} else {
		raws, single, err = splitJSON(body)
	}
	if err != nil {
		return err
	}
	if len(raws) == 0 {
		return &apiError{status: http.StatusBadRequest, code: "invalid_event", msg: "no events in the request"}
	}
	if len(raws) > s.opts.MaxBatchEvents {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large", msg: fmt.Sprintf("over %d events in one request (%d sent): send smaller batches", s.opts.MaxBatchEvents, len(raws))}
	}
	evs := make([]event.Event, len(raws))
	for i, raw := range raws {
		e, err := event.Decode(raw)
		if err == nil {
			err = trail.CheckAppAction(e.Action)
		}
		if err != nil {
			var ve *event.Error
			if errors.As(err, &ve) && !single {
				ve.Index = i
			}
			return err
		}
		evs[i] = e
	}
	receipts, err := wantsReceipts(r)
	if err != nil {
		return err
	}
	var rs []api.Receipt
	replayed := false
	// The body is read: the append goes on to its outcome even if the
	// client stops waiting (or half-closes its connection, which ends the
	// request's context), so that the answer says what happened rather
	// than guess. Commits are bounded by the store's own timeouts.
	actx := context.WithoutCancel(r.Context())
	idemKeys := r.Header.Values("Idempotency-Key")
	if len(idemKeys) > 1 {
		return badHeader("Idempotency-Key", "give it once")
	}
	idemKey := r.Header.Get("Idempotency-Key")
	switch {
	case len(idemKeys) == 1:
		if !validIdempotencyKey(idemKey) {
			return badHeader("Idempotency-Key", "1 to 255 printable ASCII characters")
		}
		// The same key with another body is a conflict, not a replay.
		fp := sha256.Sum256(append([]byte(fmt.Sprintf("ndjson=%t\n", ndjson)), body...))
		rs, replayed, err = l.AppendIdempotent(actx, evs, trail.Idempotency{Scope: key.ID, Key: idemKey, Fingerprint: fp[:]})
		if errors.Is(err, trail.ErrIdempotencyConflict) {
			return &apiError{status: http.StatusConflict, code: "idempotency_conflict", msg: "this Idempotency-Key was used for a different request"}
		}
		var ve *event.Error
		if single && errors.As(err, &ve) {
			ve.Index = -1
		}
	case single:
		var rc api.Receipt
		rc, err = l.Append(actx, evs[0])
		rs = []api.Receipt{rc}
	default:
		rs, err = l.AppendBatch(actx, evs)
	}
	if err != nil {
		return err
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		s.metrics.ingested(len(rs), len(body))
	}
	out := api.Receipts{Events: rs}
	if receipts {
		// The events are stored: whatever happens to their receipts,
		// the answer is 201, saying when the receipts are pending.
		ok, err := s.addReceipts(r.Context(), l, rs)
		if err != nil {
			s.opts.Logger.WarnContext(r.Context(), "receipts of stored events failed; answered as pending", "log", l.Name(), "err", err)
		}
		if !ok || err != nil {
			for i := range rs {
				rs[i].Proof = ""
			}
			out.ProofsPending = true
			w.Header().Set("Trail-Receipts", "pending")
		}
	}
	return writeJSON(w, http.StatusCreated, out)
}

// validIdempotencyKey accepts 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func badHeader(name, reason string) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_header", msg: name + ": " + reason, field: name}
}

var errUnsupported = &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "send application/json or application/x-ndjson"}

// splitJSON splits a JSON body into events: an object whose first key is
// "events" is a batch and may hold nothing else; any other object is one
// event (single reports which), left for event.Decode to judge.
func splitJSON(body []byte) (raws [][]byte, single bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false, &event.Error{Index: -1, Reason: `body must be a JSON object: an event or {"events": [...]}`}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.Token() // '{'
	if tok, err := dec.Token(); err != nil || tok != "events" {
		return [][]byte{trimmed}, true, nil
	}
	var items []json.RawMessage
	if err := dec.Decode(&items); err != nil {
		return nil, false, &event.Error{Index: -1, Field: "events", Reason: "must be an array of event objects"}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || dec.More() {
		return nil, false, &event.Error{Index: -1, Reason: `a batch is {"events": [...]} and nothing else`}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, &event.Error{Index: -1, Reason: "data after the batch object"}
	}
	raws = make([][]byte, len(items))
	for i, it := range items {
		raws[i] = it
	}
	return raws, false, nil
}

// splitNDJSON splits an NDJSON body into its non-blank lines.
func splitNDJSON(body []byte) ([][]byte, error) {
	var raws [][]byte
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			raws = append(raws, line)
		}
	}
	return raws, nil
}

// searchEvents serves GET /v1/events: newest first, keyset pages.
func (s *server) searchEvents(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	q, err := api.ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := l.Search(r.Context(), q)
	if err != nil {
		return err
	}
	if err := s.auditRead(r, key, l, trail.ActionSearch, nil); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	page.WriteTo(bw)
	bw.Flush() // an error here means the client left; the status is sent
	return nil
}

// getEvent serves GET /v1/events/{id}: the event, its inclusion proof in
// the latest checkpoint's tree, and that checkpoint, so that a client can
// verify the event offline.
func (s *server) getEvent(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	e, proof, signed, err := s.provenEvent(r, key, l)
	if err != nil {
		return err
	}
	witnessed := s.witnessedValue(l, signed)
	w.Header().Set(witnessedHeader, witnessed)
	ep := api.EventProof{Event: canon.Append(nil, e), Proof: proof, Checkpoint: string(signed)}
	if witnessed != witnessedNone {
		ep.Witnessed = witnessed
	}
	return writeJSON(w, http.StatusOK, ep)
}

// provenEvent reads the event named by the request's {id}, records the
// read (trail.get), and proves it in the tree of the newest checkpoint
// that meets the witness policy if one covers it, else of the latest
// signed checkpoint (trail.Log.WitnessedAt), which it returns. A stored event that does not decode, or does not
// hash to its leaf, is a *trail.DamagedError, never served.
func (s *server) provenEvent(r *http.Request, key trail.KeyInfo, l *trail.Log) (*event.Event, api.InclusionProof, []byte, error) {
	ctx := r.Context()
	e, err := l.Get(ctx, r.PathValue("id"))
	if err != nil {
		return nil, api.InclusionProof{}, nil, err
	}
	if err := s.auditRead(r, key, l, trail.ActionGet, []event.Target{{Type: "event", ID: e.ID}}); err != nil {
		return nil, api.InclusionProof{}, nil, err
	}
	signed, _, err := l.WitnessedAt(ctx, e.Seq)
	if err != nil {
		return nil, api.InclusionProof{}, nil, err
	}
	c, err := l.OpenCheckpoint(signed)
	if err != nil {
		return nil, api.InclusionProof{}, nil, err
	}
	proof, err := l.ProveEvent(ctx, e, c)
	if err != nil {
		return nil, api.InclusionProof{}, nil, err
	}
	return e, api.InclusionProof{Seq: e.Seq, TreeSize: c.Size, Hashes: api.Hashes(proof)}, signed, nil
}

// checkpoint serves GET /v1/checkpoint: the newest checkpoint that meets
// the witness policy, or the latest signed one (servedCheckpoint).
func (s *server) checkpoint(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r, "witnessed"); err != nil {
		return err
	}
	signed, witnessed, err := s.servedCheckpoint(r, l)
	if err != nil {
		return err
	}
	w.Header().Set(witnessedHeader, witnessed)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(signed)
	return nil
}

// onlyParams refuses a request with a query parameter not in names, or
// one given twice: a misspelt parameter is not left to mean its default.
func onlyParams(r *http.Request, names ...string) error {
	for name, vals := range r.URL.Query() {
		switch {
		case !slices.Contains(names, name):
			return badParam(name, "unknown parameter")
		case len(vals) > 1:
			return badParam(name, "given more than once")
		}
	}
	return nil
}

// intParam reads a required non-negative integer query parameter.
func intParam(r *http.Request, name string) (int64, error) {
	vals := r.URL.Query()[name]
	switch {
	case len(vals) == 0 || vals[0] == "":
		return 0, badParam(name, "required")
	case len(vals) > 1:
		return 0, badParam(name, "given more than once")
	}
	s := vals[0]
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, badParam(name, "must be a non-negative integer")
	}
	return n, nil
}

// inclusionProof serves GET /v1/proof/inclusion?seq=&size=.
func (s *server) inclusionProof(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r, "seq", "size"); err != nil {
		return err
	}
	seq, err := intParam(r, "seq")
	if err != nil {
		return err
	}
	size, err := intParam(r, "size")
	if err != nil {
		return err
	}
	if size == 0 {
		return badParam("size", "must be at least 1: the empty tree holds no events")
	}
	if seq >= size {
		return badParam("seq", fmt.Sprintf("%d must be below size %d: a tree of %d events holds seqs 0 to %d", seq, size, size, size-1))
	}
	proof, err := l.ProveInclusion(r.Context(), seq, size)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.InclusionProof{Seq: seq, TreeSize: size, Hashes: api.Hashes(proof)})
}

// consistencyProof serves GET /v1/proof/consistency?from=&to=.
func (s *server) consistencyProof(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r, "from", "to"); err != nil {
		return err
	}
	from, err := intParam(r, "from")
	if err != nil {
		return err
	}
	to, err := intParam(r, "to")
	if err != nil {
		return err
	}
	switch {
	case from == 0:
		return badParam("from", "must be at least 1: every tree is consistent with the empty one")
	case from > to:
		return badParam("from", fmt.Sprintf("%d must not be past to %d", from, to))
	}
	proof, err := l.ProveConsistency(r.Context(), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ConsistencyProof{From: from, To: to, Hashes: api.Hashes(proof)})
}

// logInfo serves GET /v1/log.
func (s *server) logInfo(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.LogInfo{Name: l.Name(), Origin: l.Origin(), VerifierKey: l.VerifierKey(), TreeSize: l.Size()})
}

// writeJSON sends v. Once the status is sent an error cannot be reported
// to the client any more, so write errors (the client left) are dropped.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	// Not escaped for HTML (answers are JSON, never sniffed): stored
	// events go out as their canonical bytes, those of their leaves.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
	return nil
}
