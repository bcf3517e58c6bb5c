// Package store defines the boundary between Trail's log logic and the
// database that keeps events, Merkle tiles and checkpoints. Each backend lives
// in its own subpackage and passes the conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
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
	Rightmost  []merkle.Tile
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
	Log         int64
	Events      []*event.Event // in normal form, assigned fields set
	Tiles       []merkle.Tile
	Checkpoint  Checkpoint
	Idempotency []Idempotency
}

// Idempotency records that a request was stored: a retry of it under the
// same Scope and Key gets Receipts back instead of storing it again.
type Idempotency struct {
	Scope       string // who may replay it, e.g. an API key id
	Key         string // the client's idempotency key
	Fingerprint []byte // of the request; a different one under the same key is a conflict
	Receipts    []byte // JSON array of {"id","seq"}
	CreatedAt   time.Time
}

// Query selects events of one log. Empty fields do not filter. Results are
// newest first (descending seq) unless Asc is set.
type Query struct {
	Actor      string
	Actions    []string // exact actions; any of them matches
	ActionLike string   // action prefix, e.g. "user." for "user.*"
	TargetType string
	TargetID   string
	Outcome    event.Outcome
	IP         string
	Text       string // free-text terms, all must match
	// NotActions and NotActionLike leave events out: those whose action
	// is one of NotActions (Trail's own reads, say) or starts with
	// NotActionLike ("trail." leaves out all of Trail's own events).
	NotActions    []string
	NotActionLike string
	// Seq bounds, both inclusive; From 0 and To -1 mean unbounded. Time
	// filters are turned into these by SeqAtTime.
	From, To int64
	Limit    int
	// Asc returns oldest first instead.
	Asc bool
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

// Counts are numbers of events: Total of any outcome, and Failure, Denied
// and Error, the non-success ones among them.
type Counts struct {
	Total, Failure, Denied, Error int64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Total += o.Total
	c.Failure += o.Failure
	c.Denied += o.Denied
	c.Error += o.Error
}

// HourOf returns the hour that Rollup counts an event of time t in: whole
// hours since the Unix epoch, rounded down (UTC).
func HourOf(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

// RollupQuery selects what Rollup returns. Hours are counted as by HourOf.
type RollupQuery struct {
	// From and To bound the hours counted: From <= hour < To. When To <=
	// From, Rollup returns only IndexedTo, First and Last.
	From, To int64
	// Bucket is the width of Series' buckets in hours, > 0. A bucket
	// starts at an hour that is a multiple of Bucket (24: a UTC day), and
	// may start before From.
	Bucket int64
	// Top is the length of each top list; 0 leaves them empty.
	Top int
	// NotActions leaves the events whose action is one of them out of
	// Series and Actions. Actors and FailedIPs still count them: the
	// counts by actor and by IP do not know the events' actions.
	NotActions []string
}

// Rollup is what a log's indexed events add up to, all read at one
// instant: every count covers exactly the events with seq < IndexedTo.
type Rollup struct {
	// IndexedTo is how far the counts go: the indexer writes them at
	// most a second or so after it indexes the events, so it may be below
	// the search indexes' watermark, never above it.
	IndexedTo int64
	// First and Last are the earliest and latest hour holding one of the
	// counted events, whatever the range; meaningless when IndexedTo is 0.
	First, Last int64
	// Series holds the buckets of the range that hold events, in
	// ascending order, with their events' counts.
	Series []BucketCounts
	// Actors and Actions are the Top actor ids and actions with the most
	// events in the range: most events first, ties in byte order of Value.
	Actors, Actions []ValueCount
	// FailedIPs are the Top source IPs with the most non-success events
	// in the range, in the same order, with First and Last set. Only
	// non-success events with a source IP count.
	FailedIPs []ValueCount
}

// BucketCounts are the counts of the events in one bucket of a Series.
type BucketCounts struct {
	Start int64 // first hour of the bucket
	Counts
}

// ValueCount is how many events have one value of a dimension: an actor
// id, an action or a source IP.
type ValueCount struct {
	Value string
	Count int64
	// First and Last are the first hours of the earliest and latest bucket
	// of the range holding such events. Only Rollup's FailedIPs have them.
	First, Last int64
}

// Store persists logs. Implementations are safe for concurrent use; Commit
// is called by a single writer per Store.
//
// Several Stores may share one database and commit to the same logs: trail
// append in another process beside trail serve, or, for a backend that
// serves a cluster, every node. A Store's reads then see the others'
// commits once they are made, and a batch built on a state they have moved
// past fails with ErrConflict. Whoever keeps a log's state in memory (Trail
// keeps its size, latest checkpoint and Merkle edge) polls Size to notice
// those commits, and reads State again when it grew.
type Store interface {
	// CreateLog records a new, empty log. ErrExists if the name is taken.
	CreateLog(ctx context.Context, name, origin, verifierKey string) (LogInfo, error)
	// Log returns the log with that name, or ErrNotFound.
	Log(ctx context.Context, name string) (LogInfo, error)
	// Logs lists all logs by name.
	Logs(ctx context.Context) ([]LogInfo, error)
	// State reads what a writer needs to resume the log. Its Size,
	// LastReceivedAt and Checkpoint are those of one moment, even while
	// other Stores commit to the log.
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
	// (stored outside Trail, past the log's size).
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
	// Search returns up to q.Limit events matching q, in seq order (newest
	// first unless q.Asc). An event it meets that cannot be decoded, or
	// that is missing (an index proposes it, or later events are stored),
	// fails the search with a *DamagedError: results never skip one.
	Search(ctx context.Context, log int64, q Query) ([]*event.Event, error)
	// SeqAtTime returns the smallest seq whose received_at >= t, or the
	// log's size if there is none; a *DamagedError if an event it reads is
	// damaged or missing.
	SeqAtTime(ctx context.Context, log int64, t time.Time) (int64, error)
	// Checkpoints yields the log's stored checkpoints in ascending size.
	Checkpoints(ctx context.Context, log int64) iter.Seq2[Checkpoint, error]
	// Idempotency returns the record stored for (scope, key) no earlier
	// than since, or ErrNotFound. Records are stored by Commit, atomically
	// with their events; older ones may be deleted.
	Idempotency(ctx context.Context, scope, key string, since time.Time) (Idempotency, error)
	// ExpireIdempotency deletes the records created before cutoff.
	ExpireIdempotency(ctx context.Context, cutoff time.Time) error

	// CheckpointAt returns the checkpoint of exactly that size, or ErrNotFound.
	CheckpointAt(ctx context.Context, log int64, size int64) (Checkpoint, error)

	// CreateKey durably stores k (RevokedAt ignored). ErrExists if k.ID is
	// taken, ErrNotFound if k.Log does not exist.
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

	// WaitIndexed blocks until the log's search indexes cover every event
	// committed before the call (searches are complete either way; this
	// only makes them as fast as they get), or ctx ends.
	WaitIndexed(ctx context.Context, log int64) error

	// Rollup counts the log's indexed events (seq < IndexedTo) by the hour
	// of their time, by outcome, and by action, actor id and (for events
	// that did not succeed) source IP, within q's range. It reads no
	// event: the counts are kept as events are indexed, so they trail
	// Commit like the search indexes, and WaitIndexed catches them up.
	// ErrNotFound if the log does not exist.
	Rollup(ctx context.Context, log int64, q RollupQuery) (Rollup, error)
	// Actions lists every action of the log's committed events with its
	// number of events, most first, ties in byte order. Unlike Rollup it
	// does not trail Commit. ErrNotFound if the log does not exist.
	Actions(ctx context.Context, log int64) ([]ValueCount, error)

	// Writable reports whether a commit could start now: it takes the
	// write lock and lets it go, storing nothing.
	Writable(ctx context.Context) error

	// Close releases the store. Pending writes have been committed or
	// failed by then.
	Close() error
}
