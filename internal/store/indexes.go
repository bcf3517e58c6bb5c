package store

import (
	"context"
	"time"

	"github.com/trail-audit/trail/event"
)

// Indexes answers searches and counts over a log's committed events. A
// backend derives what it needs (search indexes, counts) from the events
// after they are committed, by an indexer of its own that follows the
// log: searches are complete all the same, as they read what is not
// indexed yet from the events, while Rollup trails Commit until the
// indexer catches up. Its methods are safe for concurrent use, also
// beside other Stores sharing the database.
type Indexes interface {
	// Search returns up to q.Limit events matching q, in seq order (newest
	// first unless q.Asc). An event it meets that cannot be decoded, or
	// that is missing (an index proposes it, or later events are stored),
	// fails the search with a *DamagedError: results never skip one.
	// ErrNotFound if there is no such log.
	Search(ctx context.Context, log int64, q Query) ([]*event.Event, error)
	// SeqAtTime returns the smallest seq whose received_at >= t, or the
	// log's size if there is none; a *DamagedError if an event it reads is
	// damaged or missing. ErrNotFound if there is no such log.
	SeqAtTime(ctx context.Context, log int64, t time.Time) (int64, error)

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

	// IndexStatus reports how far indexing has got and whether it is
	// failing. It reads little: it is called by every metrics scrape and
	// readiness check.
	IndexStatus(ctx context.Context) (IndexStatus, error)
}

// IndexStatus is how far a store's background indexing has got.
type IndexStatus struct {
	// Lag is, per log id, how many committed events the search indexes
	// do not cover yet.
	Lag map[int64]int64
	// Failures counts the indexer's failed attempts since the store was
	// opened.
	Failures int64
	// Err is why the indexer's latest attempt failed; nil once one has
	// succeeded (or before the first). The indexer retries by itself.
	Err error
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
	// Limit is the page size: 0 or less means DefaultLimit, and none is
	// larger than MaxLimit (see PageSize).
	Limit int
	// Asc returns oldest first instead.
	Asc bool
}

// Search's page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// PageSize returns how many events a search of q returns at most: Limit,
// DefaultLimit when Limit is 0 or less, and at most MaxLimit.
func (q Query) PageSize() int {
	if q.Limit <= 0 {
		return DefaultLimit
	}
	return min(q.Limit, MaxLimit)
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
