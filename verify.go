package trail

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// VerifyOptions tune Log.Verify.
type VerifyOptions struct {
	// Verifier checks checkpoint signatures. Default: the log's own
	// verifier key as recorded in the database. An auditor should pin the
	// key they were given instead of trusting the database's copy.
	Verifier note.Verifier
	// Against is a signed checkpoint saved earlier; Verify proves the log
	// is consistent with it (the log only grew since).
	Against []byte
	// Progress, if set, is called now and then with the number of events
	// checked so far and the total.
	Progress func(done, total int64)
}

// VerifyReport summarises a successful verification.
type VerifyReport struct {
	Size        int64     // events checked
	Root        tlog.Hash // root of the whole log
	Checkpoints int       // checkpoints whose signature and root were checked
	Against     *Checkpoint
}

// VerifyError says what verification found wrong. Seq is the first bad
// event, or -1 when the fault is not tied to one event.
type VerifyError struct {
	Seq     int64
	Problem string
}

func (e *VerifyError) Error() string {
	if e.Seq >= 0 {
		return fmt.Sprintf("seq %d: %s", e.Seq, e.Problem)
	}
	return e.Problem
}

func verifyErr(seq int64, format string, args ...any) error {
	return &VerifyError{Seq: seq, Problem: fmt.Sprintf(format, args...)}
}

// Verify recomputes the log from its stored events: each event's canonical
// form and leaf hash, every stored Merkle tile, and the root at every stored
// checkpoint, whose signature it checks too. With opts.Against it also
// proves consistency with an earlier checkpoint. It returns a *VerifyError
// for the first thing that does not hold, and other errors when it cannot
// read the store.
func (l *Log) Verify(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	v := opts.Verifier
	if v == nil {
		v = l.verifier
	}
	var rep VerifyReport
	st, err := l.db.st.State(ctx, l.info.ID)
	if err != nil {
		return rep, fmt.Errorf("read log state: %w", err)
	}
	size := st.Size

	// Every checkpoint: signature, origin, and the size it claims.
	type ckpt struct {
		size  int64
		root  tlog.Hash
		saved bool // the checkpoint verified against, not a stored one
	}
	var ckpts []ckpt
	var batch []store.Checkpoint
	// Signatures are checked on every CPU, a batch at a time: a log fed one
	// event per commit has as many checkpoints as events.
	checkBatch := func() error {
		parsed := make([]Checkpoint, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(batch); i += workers {
					parsed[i], _, errs[i] = merkle.Open(batch[i].Note, v)
				}
			}()
		}
		wg.Wait()
		for i, c := range batch {
			if errs[i] != nil {
				return verifyErr(-1, "checkpoint of size %d: signature or format does not verify: %v", c.Size, errs[i])
			}
			if parsed[i].Size != c.Size {
				return verifyErr(-1, "checkpoint stored as size %d is signed for size %d", c.Size, parsed[i].Size)
			}
			if parsed[i].Size > size {
				return verifyErr(size, "log holds %d events but a checkpoint was signed for %d: events were deleted (truncated)", size, parsed[i].Size)
			}
			ckpts = append(ckpts, ckpt{parsed[i].Size, parsed[i].Hash, false})
		}
		batch = batch[:0]
		return nil
	}
	for c, err := range l.db.st.Checkpoints(ctx, l.info.ID) {
		if err != nil {
			return rep, fmt.Errorf("read checkpoints: %w", err)
		}
		if batch = append(batch, c); len(batch) == 4096 {
			if err := checkBatch(); err != nil {
				return rep, err
			}
		}
	}
	if err := checkBatch(); err != nil {
		return rep, err
	}
	// Events past the last checkpoint are reported after the replay, so
	// that a rewrite of earlier events is reported first.
	var covered int64
	if len(ckpts) > 0 {
		covered = ckpts[len(ckpts)-1].size
	}
	var against *Checkpoint
	if opts.Against != nil {
		c, _, err := merkle.Open(opts.Against, v)
		if err != nil {
			return rep, verifyErr(-1, "checkpoint to verify against: %v", err)
		}
		if c.Size > size {
			return rep, verifyErr(size, "log holds %d events, fewer than the %d of the checkpoint verified against: the log was truncated or forked", size, c.Size)
		}
		against = &c
		ckpts = append(ckpts, ckpt{c.Size, c.Hash, true})
	}
	slices.SortFunc(ckpts, func(a, b ckpt) int { return cmp.Compare(a.size, b.size) })

	// Replay the log: canonical form, leaf hash, tiles, roots.
	app, _ := merkle.NewAppender(0, nil)
	var signedTo int64 // size of the last stored checkpoint found to match
	next := 0
	for next < len(ckpts) && ckpts[next].size == 0 {
		next++
	}
	checkTiles := func(tiles []merkle.Tile) error {
		for _, t := range tiles {
			data, err := l.db.st.Tile(ctx, l.info.ID, t.Level, t.Index)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if len(data) < len(t.Data) || !bytes.Equal(data[:len(t.Data)], t.Data) {
				first := t.Index << (merkle.TileHeight * (t.Level + 1)) // first seq under the tile
				for i := 0; i < len(t.Data)/32; i++ {
					if len(data) < (i+1)*32 || !bytes.Equal(data[i*32:(i+1)*32], t.Data[i*32:(i+1)*32]) {
						first += int64(i) << (merkle.TileHeight * t.Level)
						break
					}
				}
				return verifyErr(first, "stored Merkle hashes (tile %d/%d) do not match the events: an event or a stored hash was altered", t.Level, t.Index)
			}
		}
		return nil
	}
	// Leaf hashes are computed in parallel a window at a time (reading and
	// canonicalising events is most of the work), the next window while
	// the tree is grown from the leaves of this one.
	type window struct {
		from, to int64
		leaves   []tlog.Hash
		last     time.Time // received_at of the window's last event
		err      error
		done     chan struct{}
	}
	start := func(from int64, prev time.Time, buf []tlog.Hash) *window {
		w := &window{from: from, to: min(size, from+verifyWindow), done: make(chan struct{})}
		w.leaves = buf[:w.to-from]
		go func() {
			defer close(w.done)
			w.last, w.err = l.leafHashes(ctx, w.from, w.to, prev, w.leaves)
		}()
		return w
	}
	var bufs [2][]tlog.Hash
	for i := range bufs {
		bufs[i] = make([]tlog.Hash, min(size, verifyWindow))
	}
	var cur, ahead *window
	defer func() {
		if ahead != nil {
			<-ahead.done
		}
	}()
	if size > 0 {
		cur = start(0, time.Time{}, bufs[0])
	}
	for i := 1; cur != nil; i++ {
		<-cur.done
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ahead = nil
		if cur.err == nil && cur.to < size {
			ahead = start(cur.to, cur.last, bufs[i%2])
		}
		// An event out of place (missing, or received before the one
		// before it) may be a symptom of an earlier one: check the leaves
		// before it against the checkpoints and tiles first, so that the
		// error names the first bad event.
		w, wend := cur.from, cur.to
		end := wend
		var fault *VerifyError
		if cur.err != nil {
			if !errors.As(cur.err, &fault) {
				return rep, cur.err
			}
			end = min(max(fault.Seq, w), wend)
		}
		for i, h := range cur.leaves[:end-w] {
			app.Append(h)
			n := w + int64(i) + 1
			for next < len(ckpts) && ckpts[next].size == n {
				if got := app.Root(); got != ckpts[next].root {
					if err := checkTiles(app.Flush()); err != nil {
						return rep, err
					}
					if ckpts[next].saved {
						return rep, verifyErr(-1, "not consistent with the checkpoint verified against: the first %d events differ from the history it signed (the log was rewritten or forked)", n)
					}
					// The checkpoints before it matched, so the change is
					// in the events after the last of them.
					what := fmt.Sprintf("root of the first %d events does not match the signed checkpoint of that size", n)
					if signedTo > 0 {
						what += fmt.Sprintf(", while that of the first %d does", signedTo)
					}
					if n-signedTo == 1 {
						return rep, verifyErr(signedTo, "%s: event %d was altered", what, signedTo)
					}
					return rep, verifyErr(-1, "%s: history was rewritten among events %d to %d", what, signedTo, n-1)
				}
				if !ckpts[next].saved {
					rep.Checkpoints++
					signedTo = n
				}
				next++
			}
			if n%(1<<merkle.TileHeight) == 0 {
				if err := checkTiles(app.Flush()); err != nil {
					return rep, err
				}
			}
		}
		if fault != nil {
			if err := checkTiles(app.Flush()); err != nil {
				return rep, err
			}
			return rep, fault
		}
		if opts.Progress != nil {
			opts.Progress(wend, size)
		}
		cur = ahead
	}
	if err := checkTiles(app.Flush()); err != nil {
		return rep, err
	}
	if covered != size {
		return rep, verifyErr(covered, "no signed checkpoint covers events %d to %d: they were added outside Trail", covered, size-1)
	}
	if err := l.verifyEnd(ctx, size); err != nil {
		return rep, err
	}
	if against != nil {
		proof, err := l.ProveConsistency(ctx, max(against.Size, 1), size)
		if err == nil && against.Size > 0 {
			err = tlog.CheckTree(proof, size, app.Root(), against.Size, against.Hash)
		}
		if err != nil {
			return rep, verifyErr(-1, "not consistent with the checkpoint of size %d verified against: %v", against.Size, err)
		}
	}
	rep.Size, rep.Root, rep.Against = size, app.Root(), against
	return rep, nil
}

// verifyEnd reports an event stored past the end of the log, which has
// size events: added outside Trail, it would clash with the next append
// (which refuses to commit while it is there) and be read in its place.
func (l *Log) verifyEnd(ctx context.Context, size int64) error {
	for e, err := range l.db.st.Scan(ctx, l.info.ID, size, math.MaxInt64) {
		var de *store.DamagedError
		switch {
		case errors.As(err, &de):
			return verifyErr(max(de.Seq, size), "an event that cannot be decoded is stored past the end of the log (%d events), outside Trail; appends fail until it is removed", size)
		case err != nil:
			return fmt.Errorf("read events past the end of the log: %w", err)
		}
		return verifyErr(e.Seq, "an event is stored past the end of the log (%d events), outside Trail; appends fail until it is removed", size)
	}
	return nil
}

// verifyWindow is how many leaf hashes Verify computes before growing the
// tree with them (32 bytes each).
const verifyWindow = 1 << 18

// leafHashes computes the leaf hashes of events [from, to) into out, using
// every CPU, and checks that the events are all there, in order, with
// received_at never decreasing (prev is received_at of event from-1). It
// returns received_at of event to-1.
func (l *Log) leafHashes(ctx context.Context, from, to int64, prev time.Time, out []tlog.Hash) (time.Time, error) {
	const part = 1 << 14
	type result struct {
		first, last time.Time
		err         error
	}
	parts := int((to - from + part - 1) / part)
	results := make([]result, parts)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			lo := from + int64(p)*part
			hi := min(to, lo+part)
			r := &results[p]
			var buf []byte
			n := lo
			err := l.db.st.Walk(ctx, l.info.ID, lo, hi, func(e *event.Event) error {
				if e.Seq != n {
					return verifyErr(n, "event missing (next stored event is seq %d): events were deleted", e.Seq)
				}
				if n == lo {
					r.first = e.ReceivedAt
				} else if e.ReceivedAt.Before(r.last) {
					return verifyErr(n, "received_at %s is earlier than the previous event's", e.ReceivedAt.Format(time.RFC3339Nano))
				}
				r.last = e.ReceivedAt
				buf = canon.Append(buf[:0], e)
				out[n-from] = tlog.RecordHash(buf)
				n++
				return nil
			})
			var fault *VerifyError
			switch {
			case errors.As(err, &fault):
				r.err = err
				return
			case errors.Is(err, store.ErrDamaged):
				r.err = verifyErr(n, "stored events cannot be read: %v", err)
				return
			case err != nil:
				r.err = fmt.Errorf("read events: %w", err)
				return
			}
			if n != hi {
				r.err = verifyErr(n, "event missing: the log should hold %d events but ends at %d", l.Size(), n)
			}
		}()
	}
	wg.Wait()
	for p, r := range results {
		// Parts are in seq order, so the first fault found is the lowest.
		if !r.first.IsZero() && r.first.Before(prev) {
			return prev, verifyErr(from+int64(p)*part, "received_at %s is earlier than the previous event's", r.first.Format(time.RFC3339Nano))
		}
		if r.err != nil {
			return prev, r.err
		}
		prev = r.last
	}
	return prev, nil
}
