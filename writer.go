package trail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// writer is the single goroutine that sequences, hashes and commits events
// for every log of a DB (group commit). Appends from any number of
// goroutines queue requests; the writer takes all that are waiting, assigns
// seq, received_at and id, extends each log's Merkle tree, signs one
// checkpoint per log, and commits everything in one transaction, so one
// fsync acknowledges the whole group.
type writer struct {
	db   *DB
	reqs chan *appendReq
	stop chan struct{}
	done chan struct{}

	lastGroup  int          // requests in the previous commit; writer goroutine only
	carry      []*appendReq // taken from reqs by absorb, for the next group; writer goroutine only
	lastExpire time.Time    // when idempotency records were last expired
	recordSize int          // the mean size of the records last sequenced; writer goroutine only
}

type appendReq struct {
	log    *Log
	events []*event.Event
	idem   *Idempotency // optional
	err    chan error   // buffered, receives exactly once

	// timeless lists the events that came without a time, which get
	// their received_at: set by the writer when it first sequences them
	// (stamped), so that it can sequence them again.
	timeless []int
	stamped  bool

	// Set by the writer before it answers on err: the outcome, the
	// receipts of a replayed request (nil for one stored now), and whether
	// it was one.
	result   error
	receipts []api.Receipt
	replayed bool
}

// answer gives r its outcome. Only the writer goroutine calls it.
func (r *appendReq) answer(err error) {
	r.result = err
	r.err <- err
}

func newWriter(db *DB) *writer {
	w := &writer{db: db, reqs: make(chan *appendReq, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// submit queues r and waits for its commit.
func (w *writer) submit(ctx context.Context, r *appendReq) error {
	// Neither a closed writer nor a caller gone already takes requests:
	// the select below picks among ready cases at random.
	select {
	case <-w.stop:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case w.reqs <- r:
	case <-w.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-w.done:
		// The writer stopped. It answered every request it took before
		// it did; one queued after its last look was never taken.
		select {
		case err := <-r.err:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		// The commit may still happen; the caller cannot know.
		return ctx.Err()
	}
}

func (w *writer) close() {
	close(w.stop)
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	max := w.db.opts.MaxCommitEvents
	for {
		// Requests absorb took but could not add to its commit go first.
		group := w.carry
		w.carry = nil
		if len(group) == 0 {
			select {
			case first := <-w.reqs:
				group = append(group, first)
			case <-w.stop:
				// Commit what was queued before Close, then refuse the rest.
				for {
					select {
					case r := <-w.reqs:
						w.commit([]*appendReq{r})
					default:
						return
					}
				}
			}
		}
		n := countEvents(group)
		// Gather what is queued. When the previous commit had company,
		// callers it answered are probably submitting again right now:
		// waiting a moment for them doubles the group for a fraction of
		// one fsync.
		var wait <-chan time.Time
		if w.lastGroup > 1 {
			wait = time.After(gatherDelay)
		}
	gather:
		for n < max {
			var r *appendReq
			if wait == nil {
				select {
				case r = <-w.reqs:
				default:
					break gather
				}
			} else {
				select {
				case r = <-w.reqs:
				case <-wait:
					break gather
				}
			}
			group = append(group, r)
			n += len(r.events)
			if len(group) >= w.lastGroup {
				wait = nil // as many as last time: go
			}
		}
		w.lastGroup = len(group)
		w.commit(group)
	}
}

// gatherDelay bounds how long the writer waits for more appends to join a
// group commit, and only when the previous group had several.
const gatherDelay = 300 * time.Microsecond

// pending is one log's share of a group commit.
type pending struct {
	log      *Log
	app      *merkle.Appender
	lastRecv time.Time
	batch    store.Batch
	root     tlog.Hash
}

func (w *writer) commit(group []*appendReq) {
	now := w.db.opts.Now().UTC()
	start := time.Now()
	group, followers := w.resolveIdempotency(group, now)
	defer func() { answerFollowers(followers) }()
	if len(group) == 0 {
		return
	}
	var order []*pending
	var err error
	for attempt := 0; ; attempt++ {
		if locking, ok := w.db.st.(store.LockingLog); ok {
			order, group, err = w.sequenceLocked(locking, group, now)
		} else {
			order, err = w.sequence(group, now)
			if err == nil {
				err = w.db.st.Commit(context.Background(), batchesOf(order))
			}
		}
		if errors.Is(err, store.ErrIdempotencyTaken) && time.Since(start) <= conflictBudget {
			// Another server committed a request under one of the
			// group's idempotency keys since resolveIdempotency looked:
			// that request is answered with its record, and the rest
			// of the group is committed again.
			var more []follower
			group, more = w.resolveIdempotency(group, now)
			followers = append(followers, more...)
			if len(group) == 0 {
				return
			}
			continue
		}
		if !errors.Is(err, store.ErrConflict) || time.Since(start) > conflictBudget {
			break
		}
		// Another process appended to one of the logs since this one
		// last read them (trail append beside trail serve): read their
		// state again and sequence the group after those events.
		w.db.opts.Logger.Info("log appended to by another process; sequencing the commit again", "attempt", attempt+1, "err", err)
		for _, p := range order {
			if rerr := p.log.reload(context.Background()); rerr != nil {
				err = fmt.Errorf("reload log state: %w", rerr)
				break
			}
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		// The other process commits as fast as this one; a random pause
		// that grows with each lost race lets this one in.
		time.Sleep(conflictPause(attempt))
	}
	if err != nil {
		err = w.db.unavailable(err)
		w.db.opts.Logger.Error("commit failed; appends refused", "events", countEvents(group), "err", err)
		// Damage refuses its log's appends, named by Log.appendBatch;
		// it says nothing of the store's health.
		if de := (*DamagedError)(nil); !errors.As(err, &de) {
			w.db.commits.record(err)
		}
		// Observed before answering, so that whoever got the answer sees
		// the commit counted.
		w.db.observe(CommitStats{Requests: len(group), Duration: time.Since(start), Err: err})
		for _, r := range group {
			r.answer(err)
		}
		return
	}
	w.db.commits.record(nil)
	w.lastGroup = len(group)
	for _, p := range order {
		l := p.log
		l.mu.Lock()
		// A reload (Log.follow) may have published a newer state since
		// the commit: this one's events and another process's after
		// them.
		if p.app.Size() >= l.size {
			l.size, l.app, l.lastRecv = p.app.Size(), p.app, p.lastRecv
			l.latest = &p.batch.Checkpoint
			l.tipNote, l.tipRoot = p.batch.Checkpoint.Note, p.root
		}
		l.mu.Unlock()
	}
	w.db.observe(CommitStats{Events: countEvents(group), Requests: len(group), Duration: time.Since(start)})
	for _, r := range group {
		r.answer(nil)
	}
}

// sequenceLocked sequences the group and commits it under the store's
// lock on its logs (store.LockingLog): a log another server appended to
// since this one last read it is read again inside the lock, so that the
// group goes after those events at the first try, however many servers
// share the logs. While the commit waited for the lock, other servers'
// commits going first, the group's callers and others queued more
// appends: those that can join it do (absorb), so that the servers take
// turns with commits as large as their callers make them. It returns
// the group as committed, with the requests that joined it.
func (w *writer) sequenceLocked(st store.LockingLog, group []*appendReq, now time.Time) ([]*pending, []*appendReq, error) {
	known := map[int64]int64{}
	for _, r := range group {
		known[r.log.info.ID] = r.log.Size()
	}
	var order []*pending
	err := st.CommitLocked(context.Background(), known, func(sizes map[int64]int64, moved map[int64]store.State) ([]store.Batch, error) {
		w.absorb(&group, known)
		// Requests may have joined after now, in this call or an
		// earlier one: the events are received when the commit is
		// built.
		if t := w.db.opts.Now().UTC(); t.After(now) {
			now = t
		}
		for _, r := range group {
			l := r.log
			size, ok := sizes[l.info.ID]
			switch {
			case !ok:
				return nil, fmt.Errorf("log %q: %w", l.info.Name, store.ErrNotFound)
			case size == l.Size():
				continue
			}
			if st, ok := moved[l.info.ID]; ok {
				if err := l.setState(st); err != nil {
					return nil, fmt.Errorf("reload log state: %w", err)
				}
			}
			if got := l.Size(); got != size {
				// Moved since known was read (a reload by a read), or
				// stale: the caller reads it again and retries.
				return nil, fmt.Errorf("log %q: its state says %d events, the locked log %d: %w", l.info.Name, got, size, store.ErrConflict)
			}
		}
		var err error
		order, err = w.sequence(group, now)
		if err != nil {
			return nil, err
		}
		return batchesOf(order), nil
	})
	return order, group, err
}

// absorb adds to *group, without waiting, the requests queued for logs
// that known names, up to the commit's bound. A request with an
// idempotency key, whose record must be looked up first, or for another
// log, waits for the next group (w.carry).
func (w *writer) absorb(group *[]*appendReq, known map[int64]int64) {
	n := countEvents(*group)
	for range cap(w.reqs) {
		if n >= w.db.opts.MaxCommitEvents {
			return
		}
		var r *appendReq
		select {
		case r = <-w.reqs:
		default:
			return
		}
		if _, ok := known[r.log.info.ID]; !ok || r.idem != nil {
			w.carry = append(w.carry, r)
			continue
		}
		*group = append(*group, r)
		n += len(r.events)
	}
}

// maxClockLead bounds how far ahead of a server's clock a log's last
// receipt time may be for the server to append to it.
const maxClockLead = 24 * time.Hour

// conflictBudget bounds how long one group commit keeps being sequenced
// again after other processes appended to its logs; past it the group is
// refused as unavailable.
const conflictBudget = 10 * time.Second

// conflictPause is the random pause before the next try after attempt
// lost a race with another process: up to 1 ms, doubling each time, at
// most 64 ms.
func conflictPause(attempt int) time.Duration {
	limit := time.Millisecond << min(attempt, 6)
	return rand.N(limit)
}

// sequence assigns the group's events their seq, received_at and id after
// the events of their logs as last read, extends each log's Merkle tree
// and signs its checkpoint: one pending batch per log, in the order the
// logs come. It may be called again for the same group, after a commit
// that failed or was not tried.
func (w *writer) sequence(group []*appendReq, now time.Time) ([]*pending, error) {
	var order []*pending
	byLog := map[*Log]*pending{}
	for _, r := range group {
		p := byLog[r.log]
		if p == nil {
			l := r.log
			l.mu.RLock()
			if l.damage != nil {
				err := l.damage
				l.mu.RUnlock()
				return order, err
			}
			p = &pending{log: l, app: l.app.Clone(), lastRecv: l.lastRecv}
			l.mu.RUnlock()
			if p.lastRecv.Sub(now) > maxClockLead {
				// Every later event would take this time as its
				// received_at (which never goes back).
				return order, &DamagedError{Seq: max(p.app.Size()-1, 0), Problem: fmt.Sprintf("the log's last receipt time, %s, is more than %v ahead of this server's clock: it was changed outside Trail, or the clock of the server that wrote it is wrong", p.lastRecv.Format(time.RFC3339), maxClockLead)}
			}
			p.batch.Log = l.info.ID
			byLog[l] = p
			order = append(order, p)
		}
		recv := now
		if recv.Before(p.lastRecv) {
			recv = p.lastRecv // the clock stepped back; received_at never does
		}
		p.lastRecv = recv
		// Not at attempt 0 alone: a commit may fail before it
		// sequences (its log moved since it was read, say), and be
		// sequenced first at a later attempt.
		if !r.stamped {
			for i, e := range r.events {
				if e.Time.IsZero() {
					r.timeless = append(r.timeless, i)
				}
			}
			r.stamped = true
		}
		for _, i := range r.timeless {
			r.events[i].Time = recv
		}
		// The records are cut from one buffer, which the store may keep
		// (store.Batch.Records), sized for records like the last ones.
		buf := make([]byte, 0, len(r.events)*(w.recordSize+w.recordSize/8+64))
		for _, e := range r.events {
			if e.Time.IsZero() {
				// Never stored: a record the store could not read back.
				return order, fmt.Errorf("event %d of %s has no time after sequencing", p.app.Size(), r.log.info.Name)
			}
			e.Seq = p.app.Size()
			e.Log = r.log.info.Name
			e.ReceivedAt = recv
			e.ID = eventid.Make(e.Log, e.Seq, recv)
			start := len(buf)
			buf = canon.Append(buf, e)
			rec := buf[start:len(buf):len(buf)]
			p.app.Append(tlog.RecordHash(rec))
			p.batch.Events = append(p.batch.Events, e)
			p.batch.Records = append(p.batch.Records, rec)
		}
		if len(r.events) > 0 {
			w.recordSize = len(buf) / len(r.events)
		}
		if r.idem != nil {
			p.batch.Idempotency = append(p.batch.Idempotency, store.Idempotency{
				Scope: r.idem.Scope, Key: r.idem.Key, Fingerprint: r.idem.Fingerprint,
				Receipts: marshalReceipts(receiptsOf(r.events)), CreatedAt: now,
				Replaces: now.Add(-IdempotencyWindow),
			})
		}
	}
	for _, p := range order {
		p.root = p.app.Root()
		p.batch.Tiles = p.app.Flush()
		c := merkle.Checkpoint{Origin: p.log.info.Origin, Size: p.app.Size(), Hash: p.root}
		note, err := merkle.Sign(c, p.log.signer)
		if err != nil {
			return order, fmt.Errorf("sign checkpoint: %w", err)
		}
		p.batch.Checkpoint = store.Checkpoint{Size: c.Size, Note: note, SignedAt: now}
	}
	return order, nil
}

func batchesOf(order []*pending) []store.Batch {
	batches := make([]store.Batch, len(order))
	for i, p := range order {
		batches[i] = p.batch
	}
	return batches
}

func countEvents(group []*appendReq) int {
	n := 0
	for _, r := range group {
		n += len(r.events)
	}
	return n
}

// IdempotencyWindow is how long a stored append can be replayed by its
// idempotency key.
const IdempotencyWindow = 24 * time.Hour

// follower is a request that reused the idempotency key of another request
// in the same group commit: it gets that request's outcome.
type follower struct {
	r, leader *appendReq
}

// resolveIdempotency answers the requests of group that replay a stored
// append (or conflict with one), and returns the requests left to store
// and those that repeat a key used earlier in the same group.
func (w *writer) resolveIdempotency(group []*appendReq, now time.Time) ([]*appendReq, []follower) {
	ctx := context.Background()
	if now.Sub(w.lastExpire) > time.Hour {
		if err := w.db.st.ExpireIdempotency(ctx, now.Add(-2*IdempotencyWindow)); err != nil {
			w.db.opts.Logger.Error("expire idempotency records", "err", err)
		}
		w.lastExpire = now
	}
	var keep []*appendReq
	var followers []follower
	leaders := map[[2]string]*appendReq{}
	for _, r := range group {
		if r.idem == nil {
			keep = append(keep, r)
			continue
		}
		k := [2]string{r.idem.Scope, r.idem.Key}
		if l := leaders[k]; l != nil {
			followers = append(followers, follower{r, l})
			continue
		}
		rec, err := w.db.st.Idempotency(ctx, r.idem.Scope, r.idem.Key, now.Add(-IdempotencyWindow))
		switch {
		case errors.Is(err, store.ErrNotFound):
			leaders[k] = r
			keep = append(keep, r)
		case err != nil:
			// The store's reason, as a failed commit's.
			r.answer(w.db.unavailable(err))
		case !bytes.Equal(rec.Fingerprint, r.idem.Fingerprint):
			r.answer(ErrIdempotencyConflict)
		default:
			rs, err := unmarshalReceipts(rec.Receipts)
			if err != nil {
				r.answer(fmt.Errorf("stored idempotency record: %w", err))
				continue
			}
			if err := replayMatches(ctx, w.db.st, r, rs); err != nil {
				r.answer(err)
				continue
			}
			r.receipts, r.replayed = rs, true
			r.answer(nil)
		}
	}
	return keep, followers
}

// replayMatches checks that the receipts rs of a stored idempotency
// record are those of r's events: the events they name are stored, under
// those ids, and hold what r sends, as a commit would have stored it.
// Otherwise the record was changed, or planted, in the database, and a
// replay would acknowledge events never stored with another's receipts:
// it returns a *DamagedError, wrapped with ErrUnavailable, as nothing of
// r was stored.
func replayMatches(ctx context.Context, st store.Store, r *appendReq, rs []api.Receipt) error {
	bad := func(i int, problem string, err error) error {
		seq := int64(-1)
		if i < len(rs) {
			seq = rs[i].Seq
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, &DamagedError{Seq: max(seq, 0), Problem: "the idempotency record of this request " + problem + ": it was changed in the database", Err: err})
	}
	if len(rs) != len(r.events) {
		return bad(0, fmt.Sprintf("holds %d receipts for its %d events", len(rs), len(r.events)), nil)
	}
	for i, rc := range rs {
		s, err := st.Get(ctx, r.log.info.ID, rc.Seq)
		if errors.Is(err, store.ErrNotFound) {
			return bad(i, fmt.Sprintf("names seq %d, which the log does not hold", rc.Seq), nil)
		}
		if err != nil {
			return fmt.Errorf("%w: read the events of a stored idempotency record: %w", ErrUnavailable, damaged(err))
		}
		e := *r.events[i]
		e.Seq, e.ID, e.Log, e.ReceivedAt = s.Seq, s.ID, s.Log, s.ReceivedAt
		if e.Time.IsZero() || slices.Contains(r.timeless, i) {
			e.Time = s.ReceivedAt // sent without a time (and perhaps stamped by a commit tried before)
		}
		if s.ID != rc.ID || !bytes.Equal(canon.Append(nil, &e), canon.Append(nil, s)) {
			return bad(i, fmt.Sprintf("names seq %d, which holds another event", rc.Seq), nil)
		}
	}
	return nil
}

// answerFollowers gives each follower its leader's outcome, once the
// leader has been answered.
func answerFollowers(fs []follower) {
	for _, f := range fs {
		switch err := f.leader.result; {
		case err != nil:
			f.r.answer(err)
		case !bytes.Equal(f.r.idem.Fingerprint, f.leader.idem.Fingerprint):
			f.r.answer(ErrIdempotencyConflict)
		case f.leader.replayed: // answered with another request's record
			f.r.receipts, f.r.replayed = f.leader.receipts, true
			f.r.answer(nil)
		default:
			f.r.receipts, f.r.replayed = receiptsOf(f.leader.events), true
			f.r.answer(nil)
		}
	}
}

func receiptsOf(evs []*event.Event) []api.Receipt {
	rs := make([]api.Receipt, len(evs))
	for i, e := range evs {
		rs[i] = api.Receipt{ID: e.ID, Seq: e.Seq}
	}
	return rs
}

func marshalReceipts(rs []api.Receipt) []byte {
	b, _ := json.Marshal(rs)
	return b
}

func unmarshalReceipts(b []byte) ([]api.Receipt, error) {
	var rs []api.Receipt
	err := json.Unmarshal(b, &rs)
	return rs, err
}
