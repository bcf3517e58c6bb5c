package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/trail-audit/trail"
)

// indexResult is what verify --index found, as --json prints it.
type indexResult struct {
	Matches bool `json:"matches"`
	// Events is the log's size as the check began; events [0, IndexedTo)
	// had their indexes compared, [0, CountedTo) their hourly and daily
	// counts.
	Events      int64             `json:"events"`
	IndexedTo   int64             `json:"indexed_to"`
	CountedTo   int64             `json:"counted_to"`
	Differences []trail.IndexDiff `json:"differences"`
	Unlisted    int64             `json:"unlisted,omitempty"`
}

// errIndexDiffers is verify --index's error once it has listed the
// differences: exit 1.
type errIndexDiffers struct{ n int64 }

func (e errIndexDiffers) Error() string {
	what := "differences"
	if e.n == 1 {
		what = "difference"
	}
	return fmt.Sprintf("index check FAILED: %d %s between the indexes and the events; trail reindex rebuilds them from the events", e.n, what)
}

// checkIndex runs Log.VerifyIndex with a progress bar on a terminal.
func (c *verifyCommand) checkIndex(ctx context.Context, l *trail.Log) (*indexResult, error) {
	bar := newProgress(c.env, "index")
	rep, err := l.VerifyIndex(ctx, trail.VerifyIndexOptions{
		Progress: func(done, total int64) { bar.update(done, total, "events") },
	})
	bar.clear()
	if err != nil && !errors.Is(err, trail.ErrIndexMismatch) {
		return nil, fmt.Errorf("index check: %w", err)
	}
	return &indexResult{
		Matches:     err == nil,
		Events:      rep.Size,
		IndexedTo:   rep.IndexedTo,
		CountedTo:   rep.CountedTo,
		Differences: rep.Diffs,
		Unlisted:    rep.Unlisted,
	}, nil
}

// printIndex prints what verify --index found, and returns
// errIndexDiffers if it found differences.
func printIndex(w io.Writer, log string, r *indexResult) error {
	size := r.Events
	what := fmt.Sprintf("all %s compared", counted(size, "event"))
	switch {
	case r.IndexedTo == 0 && size > 0:
		what = fmt.Sprintf("none of its %s indexed yet, so none compared (trail serve indexes them as it runs; trail reindex does now), and searches read them from the events themselves",
			counted(size, "event"))
	case r.IndexedTo < size:
		what = fmt.Sprintf("events 0 to %s compared; the indexer had not reached the last %s, which searches read from the events themselves",
			commas(r.IndexedTo-1), commas(size-r.IndexedTo))
	}
	if r.CountedTo < r.IndexedTo {
		what += fmt.Sprintf("; hourly and daily counts up to event %s", commas(r.CountedTo-1))
	}
	if r.Matches {
		fmt.Fprintf(w, "Indexes and counts of log %q match its events: %s.\n", log, what)
		return nil
	}
	fmt.Fprintf(w, "Indexes and counts of log %q DIFFER from its events (%s):\n", log, what)
	for _, d := range r.Differences {
		fmt.Fprintf(w, "  %s\n", d)
	}
	if r.Unlisted > 0 {
		fmt.Fprintf(w, "  and %s more differences not listed\n", commas(r.Unlisted))
	}
	return errIndexDiffers{int64(len(r.Differences)) + r.Unlisted}
}
