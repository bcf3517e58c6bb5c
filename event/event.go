// Package event defines Trail's audit event: its fields, and how an event a
// client sends is decoded, validated and put into normal form.
//
// Trail hashes a stored event in canonical form: the event's RFC 8785 (JSON
// Canonicalization Scheme) serialization, including the fields Trail assigns
// (id, seq, log, received_at). That byte string is the leaf committed to the
// log's RFC 6962 Merkle tree, so anyone holding an event as the API returned
// it can recompute its leaf hash. Prepare puts metadata and
// changes into the canonical form that serialization copies, and
// DecodeStored reads a stored event back so that it serializes to the same
// bytes. See https://www.rfc-editor.org/rfc/rfc8785.
package event

import (
	"encoding/json"
	"time"
)

// Outcome says whether the audited action worked.
type Outcome string

// The outcomes an event may carry. Success is the default. The constant for
// "error" is named Errored because Error is the package's error type.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
	Denied  Outcome = "denied"
	Errored Outcome = "error"
)

// Actor types. An actor's type is optional.
const (
	ActorUser      = "user"
	ActorService   = "service"
	ActorSystem    = "system"
	ActorAnonymous = "anonymous"
)

// Event is one audit record: who (Actor) did what (Action) to which entities
// (Targets), when (Time), from where (Source), and whether it worked (Outcome).
//
// ID, Seq, Log and ReceivedAt are assigned by Trail when the event is
// appended; a client-supplied event that sets them is rejected.
type Event struct {
	ID         string          `json:"id"`
	Seq        int64           `json:"seq"`
	Log        string          `json:"log"`
	ReceivedAt time.Time       `json:"received_at"`
	Time       time.Time       `json:"time"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	Targets    []Target        `json:"targets"`
	Outcome    Outcome         `json:"outcome"`
	Reason     string          `json:"reason,omitempty"`
	Source     Source          `json:"source,omitzero"`
	RequestID  string          `json:"request_id,omitempty"`
	TraceID    string          `json:"trace_id,omitempty"`
	Changes    *Changes        `json:"changes,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// Actor identifies who performed the action.
type Actor struct {
	ID    string `json:"id"`
	Type  string `json:"type,omitempty"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Role  string `json:"role,omitempty"`
}

// Target is an entity the action affected.
type Target struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Source says where the request came from.
type Source struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Changes holds the state of the target before and after an update. Each side
// is any JSON value, kept in canonical form; nil means absent.
type Changes struct {
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}
