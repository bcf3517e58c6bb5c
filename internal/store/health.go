package store

import (
	"context"
	"errors"
)

// ErrGone: the database files a store has open are no longer the ones at
// its path: they were removed or replaced (with their directory, perhaps)
// while the store had them open. Whatever the store wrote from then on is
// in files nobody will open again, so once it notices it refuses every
// write with ErrGone; the write that noticed (a Commit, say) went to the
// old files, and counts as not stored. Only opening the path again helps.
var ErrGone = errors.New("database files removed or replaced while open")

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

// Indexer is implemented by stores that index committed events in the
// background (see Store.WaitIndexed), so that their progress and failures
// can be watched.
type Indexer interface {
	// IndexStatus reports how far indexing has got and whether it is
	// failing. It reads little: it is called by every metrics scrape and
	// readiness check.
	IndexStatus(ctx context.Context) (IndexStatus, error)
}
