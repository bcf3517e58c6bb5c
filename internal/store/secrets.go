package store

import "context"

// Secrets keeps small named secrets for a backend that serves many
// processes, where files beside one process would not be found by the
// others: for example each log's signing key, sealed by the caller. The
// store never sees a secret in the clear; it keeps the bytes it is given.
// Names ("log/<name>/signer", "session", …) are the caller's.
//
// A sqlite store does not implement Secrets: its secrets are files in its
// data directory.
//
// Its methods are safe for concurrent use, also by other processes on the
// same database; what they store is durable when they return nil.
type Secrets interface {
	// PutSecret durably stores sealed under name. A secret is never
	// replaced: if name is already taken, even by a PutSecret racing this
	// one in another process, PutSecret stores nothing and returns an
	// error wrapping ErrExists, and the first writer's secret stays; the
	// loser reads it back with Secret.
	PutSecret(ctx context.Context, name string, sealed []byte) error
	// Secret returns the bytes stored under name, or an error wrapping
	// ErrNotFound.
	Secret(ctx context.Context, name string) ([]byte, error)
	// ResealSecrets replaces every stored secret, in one transaction, with
	// what reseal returns for it (to seal them all under a new key): if
	// reseal or the store fails, no secret is changed. It is the one way a
	// secret is ever replaced. It returns how many secrets it resealed.
	ResealSecrets(ctx context.Context, reseal func(name string, sealed []byte) ([]byte, error)) (int, error)
}
