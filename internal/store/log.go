package store

import (
	"context"
	"iter"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
)

// LogInfo describes a log (a tenant's event stream and Merkle tree).
type LogInfo struct {
	ID          int64 // backend-assigned, stable, > 0
	Name        string
	Origin      string // checkpoint origin line
	VerifierKey string // signed-note verifier key, name+hash+base64
	CreatedAt   time.Time
}

// State is what a writer needs to resume appending to a log.
type State struct {
	Size           int64
	LastReceivedAt time.Time // received_at of the event at Size-1 (zero if empty)
	// Rightmost holds the rightmost stored tile at each tile level for
	// Size. It is nil when the stored tiles do not cover Size (the store
	// was damaged or edited): merkle.NewAppender then refuses to resume,
	// while readers can still open the log and Verify can say what is wrong.
	Rightmost []merkle.Tile
	// Uncovered is, when Rightmost is nil, the first event whose hashes
	// the stored tiles lack (a missing or damaged event, for a level-0
	// tile computed from the events).
	Uncovered  int64
	Checkpoint *Checkpoint // latest checkpoint, nil if none
}

// Checkpoint is a signed checkpoint as stored.
type Checkpoint struct {
	Size     int64
	Note     []byte // signed note text
	SignedAt time.Time
}

// Batch is what one log gains in one commit: events at seqs
// [Events[0].Seq, Events[0].Seq+len), the tiles they changed, the
// checkpoint signed over the new size, and the idempotency records of the
// requests whose events these are.
type Batch struct {
	Log    int64
	Events []*event.Event // in normal form, assigned fields set
	// Records, if set, holds the canonical form of each event
	// (canon.Append), which the writer hashed: a store that keeps that
	// form takes it from here rather than compute it again.
	Records     [][]byte
	Tiles       []merkle.Tile
	Checkpoint  Checkpoint
	Idempotency []Idempotency
}

// Log keeps logs: their events, the Merkle tiles over them and their
// signed checkpoints. Its methods are safe for concurrent use; Commit is
// called by a single writer per Store, and other Stores sharing the
// database may commit to the same logs (see Store).
type Log interface {
	// CreateLog records a new, empty log. ErrExists if the name is taken.
	CreateLog(ctx context.Context, name, origin, verifierKey string) (LogInfo, error)
	// Log returns the log with that name, or ErrNotFound.
	Log(ctx context.Context, name string) (LogInfo, error)
	// Logs lists all logs by name.
	Logs(ctx context.Context) ([]LogInfo, error)
	// State reads what a writer needs to resume the log. Its Size,
	// LastReceivedAt and Checkpoint are those of one moment, even while
	// other Stores commit to the log. ErrNotFound if there is no such log.
	State(ctx context.Context, log int64) (State, error)
	// Size returns the log's committed size: it counts every commit that
	// any Store sharing the database finished before the call, and may
	// count ones that finish during it. It is one cheap read, which
	// callers make often (up to tens of times a second per log) to notice
	// the commits of other Stores; it never blocks on a commit in
	// progress. ErrNotFound if there is no such log.
	Size(ctx context.Context, log int64) (int64, error)

	// Commit durably and atomically stores every batch: when it returns nil
	// the events, tiles and checkpoints survive power loss; when it returns
	// an error nothing of any batch is stored. ErrConflict if a batch does
	// not start at its log's current size; a *DamagedError naming the
	// first if the log holds events at or past the batch's first seq
	// (stored outside Trail, past the log's size); ErrNotFound if a
	// batch's log does not exist.
	Commit(ctx context.Context, batches []Batch) error

	// Tile returns a tile's data (possibly wider than asked), or
	// ErrNotFound. A store may compute the rightmost partial level-0 tile
	// from the events rather than store it; up to a missing or damaged
	// event, which then shows as a tile too narrow for the log.
	Tile(ctx context.Context, log int64, level int, index int64) ([]byte, error)
	// Get returns the event at seq, ErrNotFound, or a *DamagedError when
	// the stored data that should hold it cannot be decoded.
	Get(ctx context.Context, log int64, seq int64) (*event.Event, error)
	// Scan yields events with from <= seq < to in ascending seq order,
	// streaming (constant memory).
	Scan(ctx context.Context, log int64, from, to int64) iter.Seq2[*event.Event, error]
	// Walk calls fn with the events with from <= seq < to in ascending seq
	// order, like Scan, and stops at fn's first error, which it returns.
	// The event is only valid during the call: the store may reuse it and
	// the memory behind its fields for the next one. It is for reading a
	// whole log fast (Verify).
	Walk(ctx context.Context, log int64, from, to int64, fn func(*event.Event) error) error
	// Checkpoints yields the log's stored checkpoints in ascending size.
	Checkpoints(ctx context.Context, log int64) iter.Seq2[Checkpoint, error]
	// CheckpointAt returns the checkpoint of exactly that size, or
	// ErrNotFound.
	CheckpointAt(ctx context.Context, log int64, size int64) (Checkpoint, error)

	// Writable reports whether a commit could start now: it takes the
	// write lock and lets it go, storing nothing. An error wrapping ErrGone
	// once the database files were removed or replaced while open.
	Writable(ctx context.Context) error
}

// LockingLog is a Log that can sequence a commit under its own lock: a
// backend shared by many servers, whose writers would otherwise keep
// building batches on a state another server has just moved past.
type LockingLog interface {
	Log
	// CommitLocked locks the logs that known names (for every Store
	// sharing the database, as a commit does), reads their sizes, and the
	// state (as State reads it) of each whose size is not the one known
	// has for it, calls build with them (a log that does not exist has no
	// size), and stores the batches build returns as Commit does, all in
	// one transaction: the logs cannot grow between build's reading and
	// the commit. An error from build is returned as it is, with nothing
	// stored. Build may be called more than once, the first time with a
	// guess of the sizes (before the lock is granted, and checked under
	// it), and must do nothing but build: only the batches of its last
	// call are stored.
	CommitLocked(ctx context.Context, known map[int64]int64, build func(sizes map[int64]int64, moved map[int64]State) ([]Batch, error)) error
}
