package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
)

// EventInput is an event as a client sends it to POST /v1/events: the
// fields Trail assigns (id, seq, log and received_at) left out.
type EventInput struct {
	Time      *time.Time      `json:"time,omitempty"`
	Actor     event.Actor     `json:"actor"`
	Action    string          `json:"action"`
	Targets   []event.Target  `json:"targets,omitempty"`
	Outcome   event.Outcome   `json:"outcome,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Source    *event.Source   `json:"source,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	TraceID   string          `json:"trace_id,omitempty"`
	Changes   *event.Changes  `json:"changes,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// NewEventInput returns the fields of e that a client sets. A zero Time
// or Source is left out.
func NewEventInput(e *event.Event) EventInput {
	in := EventInput{
		Actor: e.Actor, Action: e.Action, Targets: e.Targets, Outcome: e.Outcome, Reason: e.Reason,
		RequestID: e.RequestID, TraceID: e.TraceID, Changes: e.Changes, Metadata: e.Metadata,
	}
	if !e.Time.IsZero() {
		t := e.Time
		in.Time = &t
	}
	if e.Source != (event.Source{}) {
		s := e.Source
		in.Source = &s
	}
	return in
}

// Batch is a request body of POST /v1/events that carries several events,
// stored all or none. The body may also be one EventInput, or NDJSON
// (Content-Type application/x-ndjson) with one EventInput a line.
type Batch struct {
	Events []EventInput `json:"events"`
}

// Receipt says where an appended event landed.
type Receipt struct {
	ID  string `json:"id"`
	Seq int64  `json:"seq"`
	// Proof is the event's receipt when the append asked for receipts
	// (?receipts=wait): a C2SP tlog-proof (https://c2sp.org/tlog-proof)
	// whose extra data is the event's canonical JSON, with its inclusion
	// proof and a signed checkpoint that meets the log's witness policy,
	// cosignatures included. client.CheckReceipt checks it offline.
	Proof string `json:"proof,omitempty"`
}

// Receipts is the answer of POST /v1/events: one receipt per event, in
// the order of the request.
type Receipts struct {
	Events []Receipt `json:"events"`
	// ProofsPending is set when the append asked for receipts and no
	// checkpoint meeting the witness policy covered its events in time:
	// the events are stored all the same, and GET
	// /v1/events/{id}/receipt gives their receipts later.
	ProofsPending bool `json:"proofs_pending,omitempty"`
}

// EventProof is the answer of GET /v1/events/{id}: the event, its
// inclusion proof, and the signed checkpoint (a C2SP signed note) of the
// tree the proof reaches, of size Proof.TreeSize.
type EventProof struct {
	// Event is the stored event's canonical JSON, the bytes of its leaf;
	// event.DecodeStored reads it.
	Event      json.RawMessage `json:"event"`
	Proof      InclusionProof  `json:"proof"`
	Checkpoint string          `json:"checkpoint"`
	// Witnessed says, when the server has a witness policy for the log,
	// whether Checkpoint meets it: "met" (it carries the cosignatures
	// the policy's quorum needs; the proof reaches the newest such
	// checkpoint that covers the event) or "unmet" (none covers the event
	// yet: it is the log's latest signed checkpoint). Empty without a
	// policy.
	Witnessed string `json:"witnessed,omitempty"`
}

// InclusionProof proves that the event at Seq is a leaf of the tree of
// TreeSize events (tlog.CheckRecord checks it): GET /v1/proof/inclusion.
type InclusionProof struct {
	Seq      int64  `json:"seq"`
	TreeSize int64  `json:"tree_size"`
	Hashes   Hashes `json:"hashes"`
}

// ConsistencyProof proves that the tree of From events is a prefix of the
// tree of To events (tlog.CheckTree checks it): GET /v1/proof/consistency.
type ConsistencyProof struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Hashes Hashes `json:"hashes"`
}

// Hashes are the hashes of an RFC 6962 proof, as golang.org/x/mod/sumdb/tlog
// makes and checks them (tlog.RecordProof, tlog.TreeProof). In JSON they
// are an array of base64 strings.
type Hashes []tlog.Hash

// MarshalJSON encodes h as an array of base64 strings, [] when empty.
func (h Hashes) MarshalJSON() ([]byte, error) {
	out := make([]string, len(h))
	for i := range h {
		out[i] = base64.StdEncoding.EncodeToString(h[i][:])
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes an array of base64 strings, each a 32-byte hash.
func (h *Hashes) UnmarshalJSON(data []byte) error {
	var in []string
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	out := make(Hashes, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return fmt.Errorf("malformed hash %d", i)
		}
		copy(out[i][:], b)
	}
	*h = out
	return nil
}

// LogInfo is the answer of GET /v1/log: the public facts of the key's log.
type LogInfo struct {
	// Name is the log's name on its server.
	Name string `json:"name"`
	// Origin is the first line of the log's checkpoints.
	Origin string `json:"origin"`
	// VerifierKey is the signed-note verifier key (name+hash+base64) of
	// its checkpoints. Pin the key the log's operator gives, not this one.
	VerifierKey string `json:"verifier_key"`
	// TreeSize is the number of events.
	TreeSize int64 `json:"tree_size"`
}

// Error is the body of every error response, {"error": {...}}; an export
// cut short ends with one as its last line, and a stream with one as the
// data of its error event.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong.
type ErrorDetail struct {
	// Code is stable and machine-readable: invalid_event,
	// invalid_parameter, unauthorized, forbidden, not_found,
	// method_not_allowed, timeout,
	// too_large, unsupported_media_type, rate_limited, unavailable,
	// idempotency_conflict, invalid_header, invalid_request, damaged or
	// internal.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the offending field path (actor.id) or parameter, for
	// validation errors.
	Field string `json:"field,omitempty"`
	// Index is the offending event's position in a batch.
	Index *int `json:"index,omitempty"`
	// Seq is the damaged stored event's, for code damaged.
	Seq *int64 `json:"seq,omitempty"`
}

// KeyInfo describes an API key; it never holds the secret.
type KeyInfo struct {
	ID   string `json:"id"`
	Log  string `json:"log"`
	Name string `json:"name"`
	// Scopes are append, read and admin (which implies the others).
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is zero while the key is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Keys is the answer of GET /v1/keys: the keys of the log.
type Keys struct {
	Keys []KeyInfo `json:"keys"`
}

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// NewKey is the answer of POST /v1/keys: the key, shown only there, and
// what it is.
type NewKey struct {
	Key string `json:"key"`
	KeyInfo
}
