package store

import (
	"context"
	"time"
)

// Access keeps what says who may use the logs: API keys, and the
// idempotency records that let a client retry a request safely. Its
// methods are safe for concurrent use; what they store is durable when
// they return nil.
type Access interface {
	// CreateKey durably stores k, revoked at k.RevokedAt if that is set
	// (a key copied from another store). ErrExists if k.ID is taken,
	// ErrNotFound if k.Log does not exist.
	CreateKey(ctx context.Context, k Key) error
	// Key returns the key with that id, revoked or not, or ErrNotFound.
	Key(ctx context.Context, id string) (Key, error)
	// Keys lists the keys of log, or of every log when log is 0, revoked
	// ones included, oldest first.
	Keys(ctx context.Context, log int64) ([]Key, error)
	// RevokeKey durably marks the key revoked at t. Revoking a revoked key
	// keeps its first revocation time and returns nil. ErrNotFound if there
	// is no such key.
	RevokeKey(ctx context.Context, id string, t time.Time) error

	// Idempotency returns the record stored for (scope, key) no earlier
	// than since, or ErrNotFound. Records are stored by Log.Commit,
	// atomically with their events (Batch.Idempotency); older ones may be
	// deleted.
	Idempotency(ctx context.Context, scope, key string, since time.Time) (Idempotency, error)
	// ExpireIdempotency deletes the records created before cutoff.
	ExpireIdempotency(ctx context.Context, cutoff time.Time) error
	// IdempotencyOf returns up to limit of the records of log's appends
	// created at or after since, ordered by creation time, scope and key,
	// those that follow after when it is set (the last record of the
	// previous call), else from the first: what a copy of the log takes
	// along (Replaces is zero in each).
	IdempotencyOf(ctx context.Context, log int64, since time.Time, after *Idempotency, limit int) ([]Idempotency, error)
	// ImportIdempotency durably stores records of log's appends as they
	// are (a copy's), each unless a record of its Scope and Key is stored
	// already, which stays, and returns how many it stored. ErrNotFound
	// if log does not exist.
	ImportIdempotency(ctx context.Context, log int64, rs []Idempotency) (int, error)
}

// Key is a stored API key. The secret itself is never stored, only its
// SHA-256 hash.
type Key struct {
	ID   string // public, unique; part of the secret
	Log  int64  // the only log the key may use
	Name string // free-form label
	// Scopes are the key's permissions ("append", "read", "admin"); the
	// store keeps them as given, in order.
	Scopes    []string
	Hash      []byte // SHA-256 of the whole secret
	CreatedAt time.Time
	RevokedAt time.Time // zero while the key is valid
}

// Idempotency records that a request was stored: a retry of it under the
// same Scope and Key gets Receipts back instead of storing it again.
type Idempotency struct {
	Scope       string // who may replay it, e.g. an API key id
	Key         string // the client's idempotency key
	Fingerprint []byte // of the request; a different one under the same key is a conflict
	Receipts    []byte // JSON array of {"id","seq"}
	CreatedAt   time.Time
	// Replaces bounds what the record may replace: a record of the same
	// Scope and Key created before it (expired) is replaced; one created
	// at or after it was committed by another request meanwhile (another
	// server, say), and makes Commit fail with ErrIdempotencyTaken,
	// storing nothing. The zero time replaces any record.
	Replaces time.Time
}
