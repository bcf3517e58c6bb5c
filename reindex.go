package trail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trail-audit/trail/internal/store"
)

// ReindexOptions tune Log.Reindex.
type ReindexOptions struct {
	// Progress, if set, is called now and then with the number of the
	// log's events indexed again so far, and the log's size.
	Progress func(done, total int64)
}

// Reindex drops the log's search indexes and counts and has the indexer
// derive them again from the events, the data they are derived from; it
// returns once they cover every event committed before the call. It
// repairs what VerifyIndex finds.
//
// Searches stay complete meanwhile (they read what is not indexed yet
// from the events, more slowly), and Stats counts again from zero.
// Appends to the log through this DB meanwhile wait, as after any long
// lag, until the indexer is within 100,000 events of the log's end (they
// index chunks themselves first). The free-text index is shared by the
// DB's logs and can only be emptied as a whole, so the other logs'
// entries in it are written again too, in the same transaction as the
// reset.
//
// It is safe beside searches and appends through this DB, and beside
// other processes that append (trail append), but not beside another
// process that indexes the same data directory in the background, as
// trail serve does: that process keeps its progress in memory, where a
// reset cannot reach. Open the DB with Options.Lock, which fails while a
// server holds the data directory and keeps one from starting meanwhile.
func (l *Log) Reindex(ctx context.Context, opts ReindexOptions) error {
	if l.db.opts.ReadOnly {
		return ErrReadOnly
	}
	d, ok := l.db.st.(store.Derived)
	if !ok {
		return errors.New("this store cannot rebuild its indexes")
	}
	if err := d.ResetIndex(ctx, l.info.ID); err != nil {
		return fmt.Errorf("reset the indexes: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.db.st.WaitIndexed(ctx, l.info.ID) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("index again: %w", err)
			}
			if opts.Progress != nil {
				opts.Progress(l.Size(), l.Size())
			}
			return nil
		case <-tick.C:
			if opts.Progress == nil {
				continue
			}
			if st, err := l.db.st.IndexStatus(ctx); err == nil {
				size := l.Size()
				opts.Progress(max(size-st.Lag[l.info.ID], 0), size)
			}
		}
	}
}
