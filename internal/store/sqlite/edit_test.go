package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/trail-audit/trail/event"
)

// editEvents changes the stored events of log whose seqs are in [from, to)
// directly in the database behind db, bypassing every check of Trail's: it
// lets this package's tests play someone who can write the database file
// (the tests of other packages do it through package sqlitetest). edit gets those
// events in seq order and returns the events to store instead, each at its
// Seq (unique); it may change, drop, move or add events. Nothing else
// changes: not the tiles, checkpoints, log sizes or indexes.
//
// It takes the write lock first (BEGIN IMMEDIATE), waiting up to ten
// seconds for a running Trail to let go of it.
func editEvents(db *sql.DB, log, from, to int64, edit func([]*event.Event) []*event.Event) (err error) {
	ctx := context.Background()
	tx, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer tx.Close()
	for _, q := range []string{"PRAGMA busy_timeout = 10000", "BEGIN IMMEDIATE"} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	defer func() {
		end := "COMMIT"
		if err != nil {
			end = "ROLLBACK"
		}
		if _, e := tx.ExecContext(ctx, end); err == nil {
			err = e
		}
	}()
	lo, hi := bundleRange(log, from, to)
	var keep, in []*event.Event
	err = eventsAround(ctx, tx, log, from, to, func(e *event.Event) {
		if e.Seq >= from && e.Seq < to {
			in = append(in, e)
		} else {
			keep = append(keep, e)
		}
	})
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM events WHERE k >= ? AND k < ?", lo, hi); err != nil {
		return err
	}
	all := append(keep, edit(in)...)
	slices.SortFunc(all, func(a, b *event.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, run := range runs(all) {
		if run[0].Seq < 0 || run[len(run)-1].Seq >= 1<<seqBits {
			return fmt.Errorf("seqs %d to %d out of range", run[0].Seq, run[len(run)-1].Seq)
		}
		first, data := packBundles(run)
		for i := range first {
			if _, err := tx.ExecContext(ctx, "INSERT INTO events (k, data) VALUES (?, ?)", eventKey(log, first[i]), data[i]); err != nil {
				return fmt.Errorf("seq %d: %w", first[i], err)
			}
		}
	}
	return nil
}
