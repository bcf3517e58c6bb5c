// Package store defines the boundary between Trail's log logic and the
// database that keeps events, Merkle tiles and checkpoints. Each backend lives
// in its own subpackage and passes the conformance suites in storetest.
//
// The boundary is in parts, one per concern, each in the file named after
// it: Log (log.go) keeps the logs, their events, tiles and checkpoints;
// Indexes (indexes.go) answers searches and counts from what an indexer
// derives from the committed events; Access (access.go) keeps API keys and
// idempotency records; Witnessed (witnessed.go) keeps cosigned
// checkpoints. Store is all of them, as a backend provides them.
// Derived (derived.go) exposes the indexes' data as stored, for checking
// and rebuilding them.
package store

import (
	"errors"
	"fmt"
)

// Errors a Store returns. Callers branch on them with errors.Is.
var (
	// ErrNotFound: the log, event, tile or checkpoint does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: CreateLog was given a name already in use, or CreateKey an
	// id already in use.
	ErrExists = errors.New("already exists")
	// ErrConflict: Commit found the log's stored size differs from the
	// batch's starting seq (another writer appended, or state is stale).
	ErrConflict = errors.New("log size changed underneath the writer")
	// ErrDamaged: stored events cannot be decoded; the database was
	// changed outside Trail or damaged. Where a store knows which event,
	// it returns a *DamagedError, which matches ErrDamaged.
	ErrDamaged = errors.New("stored events are damaged")
	// ErrUnreachable: a database server cannot be reached now, or the
	// connection to it was lost. Nothing was stored (unless the error
	// says the connection broke while committing); the store reconnects
	// by itself, so callers retry. The backend's error says what to check.
	ErrUnreachable = errors.New("database server unreachable")
	// ErrCommitUnknown: the connection to the database server broke while
	// a Commit's transaction was committing, so whether its batches were
	// stored is unknown. Errors matching it match ErrUnreachable too.
	ErrCommitUnknown = errors.New("commit outcome unknown")
	// ErrIdempotencyTaken: Commit found an idempotency record of one of
	// its batches' keys committed since the caller looked (see
	// Idempotency.Replaces); nothing was stored. The caller reads the
	// record and answers that request with it.
	ErrIdempotencyTaken = errors.New("idempotency key taken by a request committed meanwhile")
)

// DamagedError is ErrDamaged at a known event: Seq is the first event found
// damaged, Problem what is wrong with it (a phrase such as
// ProblemUndecodable), Err the cause, if any.
type DamagedError struct {
	Seq     int64
	Problem string
	Err     error
}

// Problems of a DamagedError.
const (
	ProblemUndecodable = "its record cannot be decoded"
	ProblemMissing     = "it is missing from the database"
)

func (e *DamagedError) Error() string {
	msg := fmt.Sprintf("seq %d: stored event damaged: %s", e.Seq, e.Problem)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *DamagedError) Unwrap() error { return e.Err }

// Is makes a DamagedError match ErrDamaged.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// Store is a backend: every part of the boundary, over one database.
// Implementations are safe for concurrent use; Commit is called by a
// single writer per Store.
//
// Several Stores may share one database and commit to the same logs: trail
// append in another process beside trail serve, or, for a backend that
// serves a cluster, every node. A Store's reads then see the others'
// commits once they are made, and a batch built on a state they have moved
// past fails with ErrConflict. Whoever keeps a log's state in memory (Trail
// keeps its size, latest checkpoint and Merkle edge) polls Size to notice
// those commits, and reads State again when it grew.
type Store interface {
	Log
	Indexes
	Access
	Witnessed

	// Close releases the store. Pending writes have been committed or
	// failed by then.
	Close() error
}
