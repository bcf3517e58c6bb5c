package trail

import (
	"context"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A DB keeps two kinds of secrets beside its store, each behind an
// interface so that a store shared by many servers can keep them where
// every server finds them: the logs' signing keys (signerSource) and what
// the web viewer's sessions need (sessionKeeper). A sqlite store keeps
// both as files in its data directory (dirKeys, in keys.go and
// sessions.go).

// signerSource keeps the signing keys of a store's logs: one Ed25519 key
// per log, made when the log is created, needed by every DB that appends
// to it, and never replaced (a log cannot be continued with a new key).
// Its methods are safe for concurrent use, also by other processes on the
// same store.
type signerSource interface {
	// Signer returns the signing key of log. It fails with an error
	// wrapping ErrMissingKey when the source holds no key for log.Name,
	// and with another error when the key it holds is malformed or is not
	// the one whose verifier key is log.VerifierKey. The error names
	// where the key is, for the operator to restore it.
	Signer(ctx context.Context, log logRef) (note.Signer, error)
	// Create makes and durably keeps the signing key of the new log
	// log.Name, named log.Origin, and returns its verifier key
	// (log.VerifierKey is not used). A key already kept for log.Name, left
	// by a CreateLog that stopped before storing its log, is returned
	// again if it has that name: it never signed anything. Kept for
	// another origin, it is an error.
	Create(ctx context.Context, log logRef) (verifierKey string, err error)
}

// logRef is what a signerSource is told about a log.
type logRef struct {
	Name        string // the log's name, unique in its store
	Origin      string // its checkpoint origin, the name of its key
	VerifierKey string // the verifier key stored with the log
}

// sessionKeeper keeps what lets every server on a store accept the web
// viewer's session cookies, whichever server signed the user in: the
// secret the cookies are signed with, and the sessions signed out before
// they expired. Its methods are safe for concurrent use, also by other
// processes on the same store.
type sessionKeeper interface {
	// SessionSecret returns the store's session secret, 32 random bytes,
	// made and durably kept on first use. Every caller on the store gets
	// the same secret, including first uses that race; one made by one
	// process is seen by the others at once.
	SessionSecret(ctx context.Context) ([]byte, error)
	// EndSession durably records that the session id (1 to 64 of
	// A-Z a-z 0-9 '-' '_') was signed out. The record may be dropped
	// once expires, when the session ends anyway, has passed.
	EndSession(ctx context.Context, id string, expires time.Time) error
	// SessionEnded reports whether EndSession recorded id, in any
	// process on the store, and the record is kept.
	SessionEnded(ctx context.Context, id string) (bool, error)
}

var (
	_ signerSource  = dirKeys{}
	_ sessionKeeper = dirKeys{}
)
