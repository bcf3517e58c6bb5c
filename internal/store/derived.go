package store

import (
	"context"
	"strconv"
)

// Index names one of a log's search indexes. Each files events under
// values: its posting lists (action, outcome, actor, ip, target) one value
// per field, the free-text index one per word.
type Index int

// The search indexes, as package derive defines their entries.
const (
	IndexAction  Index = iota // the action
	IndexOutcome              // the outcome, for events that did not succeed
	IndexActor                // the actor id
	IndexIP                   // the source IP, for events that have one
	IndexTarget               // each target's type and id
	IndexText                 // each word of the event's searchable text
)

var indexNames = [...]string{"action", "outcome", "actor", "ip", "target", "text"}

// String returns the index's name: "action", "outcome", "actor", "ip",
// "target" or "text".
func (ix Index) String() string {
	if ix < 0 || int(ix) >= len(indexNames) {
		return "index " + strconv.Itoa(int(ix))
	}
	return indexNames[ix]
}

// Posting is what a search index files under one value in a range of a
// log's events: the seqs of the events it lists there.
type Posting struct {
	Index Index
	// Value is the action, the outcome ("failure", "denied" or "error"),
	// the actor id, the source IP, the target type, or the word.
	Value string
	// ID is the target id, for IndexTarget.
	ID string
	// Seqs are the events listed, ascending, each once.
	Seqs []int64
	// Damaged says that some of what is stored under this value cannot
	// be decoded: Seqs holds only what could be. Value and ID are empty
	// when even they could not be read.
	Damaged bool
}

// CountDim is what a log's counts (see Rollup) group events by.
type CountDim int

// The dimensions of a log's counts.
const (
	CountOutcome  CountDim = iota // every event, by outcome; Value is ""
	CountAction                   // the action
	CountActor                    // the actor id
	CountFailedIP                 // the source IP of events that did not succeed
)

var dimNames = [...]string{"events", "action", "actor", "failed ip"}

// String names the dimension: "events", "action", "actor" or "failed ip".
func (d CountDim) String() string {
	if d < 0 || int(d) >= len(dimNames) {
		return "dimension " + strconv.Itoa(int(d))
	}
	return dimNames[d]
}

// Span is the stretch of time one stored count covers.
type Span int

// The spans of stored counts.
const (
	SpanHour Span = iota // the hour starting at the key's Hour (HourOf)
	SpanDay              // the UTC day starting at the key's Hour
	SpanAll              // all time: the per-action counts behind Actions; Hour is 0
)

// CountKey names one count a log keeps: of its events whose Dim is Value,
// over Span from Hour.
type CountKey struct {
	Dim   CountDim
	Span  Span
	Hour  int64
	Value string
}

// CountRow is one stored count.
type CountRow struct {
	CountKey
	Counts
}

// CountsTo says how far a log's stored counts go.
type CountsTo struct {
	// Indexed: the SpanAll counts cover the events with seq < Indexed,
	// which is also how far the search indexes went at that instant.
	Indexed int64
	// Rolled: the SpanHour and SpanDay counts cover the events with seq <
	// Rolled (<= Indexed).
	Rolled int64
}

// Derived is implemented by stores whose background indexer keeps derived
// data: search indexes and counts, which package derive defines from the
// events. It exposes that data as stored, so that Log.VerifyIndex can
// check it against the events, and lets Log.Reindex rebuild it.
//
// Every method but ResetIndex only reads, and may run beside the store's
// own indexer and beside other processes using the same database.
type Derived interface {
	// Postings returns what the log's search indexes list for its events
	// with from <= seq < to, as a search would read them: for every
	// index but IndexText, each value with the seqs filed under it in the
	// range; for IndexText, the seqs filed under each of words, and no
	// other word (a store need not be able to list the words of an
	// event). Everything is read at one instant. A value appears at most
	// once per index, in no particular order; values listing no seq in
	// the range are left out, unless Damaged. Memory grows with to-from:
	// callers go a segment of events at a time.
	Postings(ctx context.Context, log, from, to int64, words []string) ([]Posting, error)

	// Words calls fn with each word the free-text index files an event
	// of the log with seq < to under, and the event's seq, in no
	// particular order, each pair once, and stops at fn's first error,
	// which it returns. It streams: memory does not grow with the log.
	Words(ctx context.Context, log, to int64, fn func(word string, seq int64) error) error

	// Counts calls fn with each of the log's stored counts, all read at
	// one instant, and returns how far they go. Counts of zero may be
	// passed or left out.
	Counts(ctx context.Context, log int64, fn func(CountRow) error) (CountsTo, error)

	// ResetIndex drops the log's derived data, atomically: its search
	// index entries and its counts, and sets how far they go to 0, so
	// that the indexer derives them all again from the events (and
	// WaitIndexed waits for that). Searches stay complete meanwhile, as
	// they scan what is not indexed; Rollup counts again from 0. A store
	// that cannot drop one log's entries of an index it shares between
	// logs rebuilds the other logs' entries of it in the same
	// transaction. ErrNotFound if there is no such log.
	//
	// It is safe beside the store's own indexer and searches, not beside
	// another process indexing the same database, whose progress in
	// memory it cannot reset: callers keep those out (trail.Options.Lock).
	ResetIndex(ctx context.Context, log int64) error
}
