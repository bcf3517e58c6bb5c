package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// Log is one tenant's append-only event log. It is safe for concurrent use.
type Log struct {
	db       *DB
	info     store.LogInfo
	signer   note.Signer // nil when read-only
	verifier note.Verifier

	// State published after each commit, and by reload. It never moves
	// back. app is nil when read-only.
	mu       sync.RWMutex
	size     int64
	app      *merkle.Appender
	lastRecv time.Time
	latest   *store.Checkpoint
	// damage, when the log is open for writing, is why the stored state
	// cannot be appended to (checkTip): appends fail with it, reads go
	// on. app is nil then.
	damage error
	// tipNote is the last checkpoint note checkTip verified, or that
	// this log's writer signed, and tipRoot its root: a state read again
	// under the same checkpoint is not verified twice.
	tipNote []byte
	tipRoot tlog.Hash

	// checked is when follow last read the log's committed size, on
	// clock's scale.
	checked atomic.Int64
	// followMu is held by the one follow that checks at a time;
	// followErr is the error it last logged ("" since one succeeded).
	followMu  sync.Mutex
	followErr string

	tiles tileCache
	// wcheck remembers whether the last witnessed checkpoint read meets
	// the witness policy (witnessing.go).
	wcheck policyCheck
}

// logKeys reads the verifier key stored for the log and, unless the DB
// is read-only, the log's signing key, which must match it. A stored
// verifier key that cannot be read, or a signing key that does not match
// it, is a *LogDamagedError.
func (db *DB) logKeys(ctx context.Context, info store.LogInfo) (note.Verifier, note.Signer, error) {
	v, err := note.NewVerifier(info.VerifierKey)
	if err != nil {
		return nil, nil, &LogDamagedError{Log: info.Name, Problem: "the verifier key stored for it cannot be read",
			Err: fmt.Errorf("log %q: stored verifier key %q: %w", info.Name, info.VerifierKey, err)}
	}
	if db.opts.ReadOnly {
		return v, nil, nil
	}
	signer, err := db.signers.Signer(ctx, logRef{Name: info.Name, Origin: info.Origin, VerifierKey: info.VerifierKey})
	if err != nil {
		return nil, nil, err
	}
	return v, signer, nil
}

func openLog(ctx context.Context, db *DB, info store.LogInfo) (*Log, error) {
	v, signer, err := db.logKeys(ctx, info)
	if err != nil {
		return nil, err
	}
	l := &Log{db: db, info: info, verifier: v, signer: signer}
	l.checked.Store(clock())
	if err := l.reload(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// reload reads the log's state from the store and publishes it, unless
// the state published meanwhile (by a commit, or another reload) is
// newer.
func (l *Log) reload(ctx context.Context) error {
	st, err := l.db.st.State(ctx, l.info.ID)
	if err != nil {
		return fmt.Errorf("log %q: %w", l.info.Name, err)
	}
	return l.setState(st)
}

// setState makes st, read from the store, the log's state, unless the
// log's state is newer.
func (l *Log) setState(st store.State) error {
	var app *merkle.Appender
	var damage error
	if !l.db.opts.ReadOnly {
		// Appending needs an intact right edge that its latest signed
		// checkpoint covers; reading does not, so that a damaged log can
		// still be opened, read and verified.
		var err error
		if app, err = merkle.NewAppender(st.Size, st.Rightmost); err != nil {
			seq := max(st.Size-1, 0)
			if st.Rightmost == nil && st.Uncovered < st.Size {
				seq = st.Uncovered
			}
			damage = &DamagedError{Seq: seq, Problem: fmt.Sprintf("the stored Merkle tiles of the log's %d events end before it: it, or its hashes, are missing or damaged", st.Size), Err: err}
		} else {
			damage = l.checkTip(st, app)
		}
		if damage != nil {
			app = nil
			l.db.opts.Logger.Error("log damaged: appends refused until it is repaired; run trail verify", "log", l.info.Name, "err", damage)
		}
	}
	l.mu.Lock()
	if st.Size >= l.size {
		l.size, l.app, l.lastRecv, l.latest, l.damage = st.Size, app, st.LastReceivedAt, st.Checkpoint, damage
		if app != nil && st.Checkpoint != nil {
			l.tipNote, l.tipRoot = st.Checkpoint.Note, app.Root()
		}
	}
	l.mu.Unlock()
	return nil
}

// checkTip checks the state read from the store against its latest
// signed checkpoint before anything is appended to it: the checkpoint
// must verify with the log's key and be for the log's size, and the
// stored Merkle tiles, with the events they are rebuilt from, must hash
// to its root. Otherwise events were added, removed or changed outside
// Trail since it was signed, and a checkpoint signed over them would
// vouch for them: it returns a *DamagedError. A note verified before
// (tipNote) is not verified again.
func (l *Log) checkTip(st store.State, app *merkle.Appender) error {
	last := max(st.Size-1, 0)
	switch {
	case l.info.Origin != l.verifier.Name():
		// Checkpoints are signed under the key's name.
		return &DamagedError{Seq: last, Problem: fmt.Sprintf("the log's stored origin %q is not the name of its key, %q: it was changed outside Trail", l.info.Origin, l.verifier.Name())}
	case st.Checkpoint == nil && st.Size == 0:
		return nil
	case st.Checkpoint == nil:
		return &DamagedError{Seq: last, Problem: fmt.Sprintf("no signed checkpoint covers the log's %d events: they were added outside Trail, or its checkpoints removed", st.Size)}
	case st.Checkpoint.Size != st.Size:
		return &DamagedError{Seq: min(st.Size, st.Checkpoint.Size), Problem: fmt.Sprintf("the log holds %d events but its latest checkpoint was signed for %d: events were added or removed outside Trail", st.Size, st.Checkpoint.Size)}
	}
	l.mu.RLock()
	root, known := l.tipRoot, bytes.Equal(st.Checkpoint.Note, l.tipNote)
	l.mu.RUnlock()
	if !known {
		c, _, err := merkle.Open(st.Checkpoint.Note, l.verifier)
		if err != nil {
			return &DamagedError{Seq: last, Problem: "its latest checkpoint does not verify with the log's key", Err: err}
		}
		if c.Size != st.Size {
			return &DamagedError{Seq: last, Problem: fmt.Sprintf("the checkpoint stored for size %d is signed for size %d", st.Size, c.Size)}
		}
		root = c.Hash
	}
	if app.Root() != root {
		return &DamagedError{Seq: last, Problem: fmt.Sprintf("the stored events and Merkle tiles do not hash to the root of the latest checkpoint (size %d): they were changed outside Trail", st.Size)}
	}
	return nil
}

// How soon a DB sees what other DBs commit to its logs: other processes on
// its data directory (trail append beside trail serve) or, with a store
// that many nodes share, the other nodes. A read checks the log's size in
// the store if no read did for followReads; every followIdle, DB.followLoop
// checks every open log.
const (
	followReads = 50 * time.Millisecond
	followIdle  = 500 * time.Millisecond
)

// clockStart anchors clock.
var clockStart = time.Now()

// clock reads the monotonic clock, in nanoseconds since clockStart.
func clock() int64 { return int64(time.Since(clockStart)) }

// follow brings the log's state up to the commits of other DBs: unless a
// call did within every, it reads the log's committed size from the
// store, one cheap read, and reloads the log's state if it grew. It never
// waits for a check under way in another call, and returns no error: the
// state stays as it was, a failure is logged once, and the caller's read
// meets what is wrong with the store, if it is the store.
//
// A reload between the writer's sequencing of a group and its commit makes
// that commit conflict, and the writer reloads and sequences it again; a
// reload just after the commit reads the state the commit published, or
// a newer one, as neither ever moves the published state back.
func (l *Log) follow(ctx context.Context, every time.Duration) {
	if clock()-l.checked.Load() < int64(every) || !l.followMu.TryLock() {
		return
	}
	defer l.followMu.Unlock()
	now := clock()
	if now-l.checked.Load() < int64(every) || l.db.closing.Load() {
		return // checked by the call that held followMu, or closed
	}
	l.checked.Store(now)
	size, err := l.db.st.Size(ctx, l.info.ID)
	if err == nil && size > l.Size() {
		err = l.reload(ctx)
	}
	switch {
	case err == nil:
		l.followErr = ""
	case ctx.Err() == nil && err.Error() != l.followErr:
		l.followErr = err.Error()
		l.db.opts.Logger.WarnContext(ctx, "cannot read what other processes appended to the log", "log", l.info.Name, "err", err)
	}
}

// catchUp reads the store's size now, waiting for a follow under way,
// and the log's state if another DB appended: for a read that must see
// what another process has just committed.
func (l *Log) catchUp(ctx context.Context) error {
	l.followMu.Lock()
	defer l.followMu.Unlock()
	l.checked.Store(clock())
	size, err := l.db.st.Size(ctx, l.info.ID)
	if err == nil && size > l.Size() {
		err = l.reload(ctx)
	}
	return err
}

// followPast is follow for a read of the first n events: when the log,
// as last read, is shorter, it reads the store's size at once rather than
// answering "not found" for what another DB may have just committed (an
// event acknowledged by another server behind the same load balancer).
func (l *Log) followPast(ctx context.Context, n int64) {
	l.follow(ctx, followReads)
	if n > l.Size() {
		// Waiting for a follow under way, which may have read the size
		// before that commit: a read after it is sure to see it.
		l.catchUp(ctx)
	}
}

// SizeFor returns the log's size for a request that names its first n
// events, such as a stream resumed after an event another server has
// just acknowledged: when the log, as last read, is shorter, the store's
// size is read at once.
func (l *Log) SizeFor(ctx context.Context, n int64) int64 {
	l.followPast(ctx, n)
	return l.Size()
}

// Name returns the log's name.
func (l *Log) Name() string { return l.info.Name }

// Origin returns the log's checkpoint origin line.
func (l *Log) Origin() string { return l.info.Origin }

// VerifierKey returns the signed-note verifier key (name+hash+base64) that
// checks the log's checkpoints.
func (l *Log) VerifierKey() string { return l.info.VerifierKey }

// Size returns the number of committed events: at once those appended
// through this DB; those appended through another DB (another process on
// the data directory, such as trail append beside trail serve) within
// about half a second, or at the next read that takes a context (Get,
// Search, the proofs, DB.Log) if none did within 50 ms.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Append validates ev and commits it. When Append returns nil the event is
// durable: it survives a crash or power loss. Concurrent Appends are
// committed together (group commit). An invalid event gives a
// *event.Error and stores nothing; a store failure gives an error
// wrapping ErrUnavailable and stores nothing. If ctx ends first, Append
// returns ctx.Err() and the event may or may not have been committed.
func (l *Log) Append(ctx context.Context, ev event.Event) (api.Receipt, error) {
	rs, err := l.AppendBatch(ctx, []event.Event{ev})
	if err != nil {
		var ve *event.Error
		if errors.As(err, &ve) {
			ve.Index = -1
		}
		return api.Receipt{}, err
	}
	return rs[0], nil
}

// AppendBatch validates and commits events atomically: all of them or,
// if any is invalid (a *event.Error naming its position) or the commit
// fails, none. Seqs are consecutive in slice order.
func (l *Log) AppendBatch(ctx context.Context, events []event.Event) ([]api.Receipt, error) {
	rs, _, err := l.appendBatch(ctx, events, nil)
	return rs, err
}

// Idempotency makes an append safe to retry. The first append under
// (Scope, Key) is stored together with its receipts, atomically; for
// IdempotencyWindow after it, an append under the same Scope and Key with
// the same Fingerprint stores nothing and returns those receipts, and one
// with another Fingerprint fails with ErrIdempotencyConflict.
type Idempotency struct {
	Scope       string // whose keys these are, e.g. an API key id: at most 255 bytes
	Key         string // the client's idempotency key: 1 to 255 bytes
	Fingerprint []byte // identifies the request, e.g. a SHA-256 of its body: 1 to 64 bytes
}

// check says what is wrong with id, naming the field.
func (id *Idempotency) check() error {
	switch {
	case id.Key == "":
		return errors.New("idempotency key is empty")
	case len(id.Key) > 255:
		return fmt.Errorf("idempotency key is %d bytes, over 255", len(id.Key))
	case len(id.Scope) > 255:
		return fmt.Errorf("idempotency scope is %d bytes, over 255", len(id.Scope))
	case len(id.Fingerprint) == 0:
		return errors.New("idempotency fingerprint is empty: give one that identifies the request, such as a SHA-256 of its body")
	case len(id.Fingerprint) > 64:
		return fmt.Errorf("idempotency fingerprint is %d bytes, over 64: give a hash of the request", len(id.Fingerprint))
	}
	return nil
}

// ErrIdempotencyConflict: an idempotency key was reused for another
// request.
var ErrIdempotencyConflict = errors.New("idempotency key already used for a different request")

// AppendIdempotent is AppendBatch made safe to retry with id. replayed
// reports that the events had been stored by an earlier call, whose
// receipts are returned.
func (l *Log) AppendIdempotent(ctx context.Context, events []event.Event, id Idempotency) (rs []api.Receipt, replayed bool, err error) {
	if err := id.check(); err != nil {
		return nil, false, err
	}
	return l.appendBatch(ctx, events, &id)
}

func (l *Log) appendBatch(ctx context.Context, events []event.Event, id *Idempotency) ([]api.Receipt, bool, error) {
	rs, replayed, err := l.appendOnce(ctx, events, id)
	if de := (*DamagedError)(nil); errors.As(err, &de) {
		l.db.refused.Store(l.info.Name, err)
	} else if err == nil && len(rs) > 0 {
		l.db.refused.Delete(l.info.Name)
	}
	return rs, replayed, err
}

// RefusedAppends returns, by log name, the damage that refused the latest
// append of each log whose latest append through this DB was refused for
// damage (a *DamagedError), until an append succeeds again, and that of
// each log that could not be opened for damage (a *LogDamagedError) or
// because its signing key is sealed under another master key (an
// *UnavailableError), until it opens: for a server's readiness to report.
func (db *DB) RefusedAppends() map[string]error {
	out := map[string]error{}
	db.refused.Range(func(k, v any) bool {
		out[k.(string)] = v.(error)
		return true
	})
	return out
}

func (l *Log) appendOnce(ctx context.Context, events []event.Event, id *Idempotency) ([]api.Receipt, bool, error) {
	if l.db.w == nil {
		return nil, false, ErrReadOnly
	}
	if len(events) == 0 {
		return nil, false, nil
	}
	now := l.db.opts.Now()
	evs := make([]event.Event, len(events))
	ptrs := make([]*event.Event, len(events))
	for i := range events {
		evs[i] = events[i]
		e := &evs[i]
		if e.ID != "" || e.Seq != 0 || e.Log != "" || !e.ReceivedAt.IsZero() {
			return nil, false, &event.Error{Index: i, Field: assignedField(e), Reason: "assigned by Trail; must not be set"}
		}
		err := e.Prepare(now, l.db.opts.Limits)
		if err == nil {
			err = canon.CheckSize(e, l.db.opts.Limits)
		}
		if err != nil {
			var ve *event.Error
			if errors.As(err, &ve) {
				ve.Index = i
			}
			return nil, false, err
		}
		ptrs[i] = e
	}
	req := &appendReq{log: l, events: ptrs, idem: id, err: make(chan error, 1)}
	if err := l.db.w.submit(ctx, req); err != nil {
		return nil, false, err
	}
	if req.replayed {
		// The first request may have been committed by another DB (a
		// retry through another node): catch up with it, so that what
		// this DB acknowledges it also serves at once.
		var n int64
		for _, r := range req.receipts {
			n = max(n, r.Seq+1)
		}
		l.followPast(ctx, n)
		return req.receipts, true, nil
	}
	return receiptsOf(ptrs), false, nil
}

func assignedField(e *event.Event) string {
	switch {
	case e.ID != "":
		return "id"
	case e.Seq != 0:
		return "seq"
	case e.Log != "":
		return "log"
	}
	return "received_at"
}

// Get returns the event with the given id, an error wrapping ErrNotFound,
// or a *DamagedError when the event the id names (by its seq) is damaged:
// its record cannot be decoded, or it was altered so that its id changed.
// Ids are ULIDs, which are case-insensitive: an id in lower case names the
// same event, whose ID is in upper case.
func (l *Log) Get(ctx context.Context, id string) (*event.Event, error) {
	seq, err := eventid.Parse(l.info.Name, id)
	if err != nil {
		return nil, fmt.Errorf("event %q: %w", id, ErrNotFound)
	}
	e, err := l.GetSeq(ctx, seq)
	if err != nil {
		return nil, err
	}
	if !eventid.Equal(e.ID, id) {
		// Another receipt time than the id's: a wrong id, or the stored
		// event was altered, which its leaf in the tree tells.
		if err := l.checkLeaf(ctx, e); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("event %q: %w", id, ErrNotFound)
	}
	return e, nil
}

// GetSeq returns the event at seq, an error wrapping ErrNotFound, or a
// *DamagedError when its stored record cannot be decoded or is missing.
// An event altered so that it still decodes is returned: ProveEvent tells.
func (l *Log) GetSeq(ctx context.Context, seq int64) (*event.Event, error) {
	if l.db.closing.Load() {
		return nil, ErrClosed
	}
	l.followPast(ctx, seq+1)
	if seq < 0 || seq >= l.Size() {
		return nil, fmt.Errorf("seq %d: %w", seq, ErrNotFound)
	}
	e, err := l.db.st.Get(ctx, l.info.ID, seq)
	if errors.Is(err, ErrNotFound) { // below the log's size: it was stored
		return nil, &DamagedError{Seq: seq, Problem: store.ProblemMissing}
	}
	return e, damaged(err)
}

// Search returns events matching q, newest first. Pages are keyset
// pages: events appended while paging never shift, repeat or hide results.
// A damaged event the search meets fails it with a *DamagedError naming
// the event: results never leave it out.
func (l *Log) Search(ctx context.Context, q api.Query) (api.Page, error) {
	sq, err := l.storeQuery(ctx, q)
	if err != nil {
		return api.Page{}, damaged(err)
	}
	if sq.From > sq.To {
		return api.Page{}, nil
	}
	evs, err := l.db.st.Search(ctx, l.info.ID, sq)
	if err != nil {
		return api.Page{}, damaged(err)
	}
	p := api.Page{Events: evs}
	if len(evs) == sq.Limit && evs[len(evs)-1].Seq > sq.From {
		p.NextCursor = strconv.FormatInt(evs[len(evs)-1].Seq, 10)
	}
	return p, nil
}

// Events yields every event matching q (Limit and Cursor ignored) oldest
// first, streaming in constant memory. It is what export uses. Each event
// is checked against its leaf in the tree of the log's latest signed
// checkpoint (leafCheck). A damaged event ends it with a *DamagedError,
// after the events before it.
func (l *Log) Events(ctx context.Context, q api.Query) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		q.Cursor, q.Limit = "", 0
		sq, err := l.storeQuery(ctx, q)
		if err != nil {
			yield(nil, damaged(err))
			return
		}
		// Read after the size that bounds sq, so that it covers it.
		lc, err := l.newLeafCheck(ctx)
		if err != nil {
			yield(nil, damaged(err))
			return
		}
		sq.Asc, sq.Limit = true, 1000
		if sq.From > sq.To {
			return
		}
		// Each chunk's leaves are hashed while the next one is read.
		cur := l.eventChunk(ctx, sq)
		for {
			if cur.err != nil {
				yield(nil, damaged(cur.err))
				return
			}
			hashed := make(chan []tlog.Hash, 1)
			go func(evs []*event.Event) { hashed <- leafHashes(evs) }(cur.evs)
			var next *chunk
			if cur.bad == nil && len(cur.evs) == sq.Limit {
				if sq.From = cur.evs[len(cur.evs)-1].Seq + 1; sq.From <= sq.To {
					next = l.eventChunk(ctx, sq)
				}
			}
			hs := <-hashed
			for i, e := range cur.evs {
				if err := lc.check(e, hs[i]); err != nil {
					yield(nil, err)
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if cur.bad != nil {
				yield(nil, damaged(cur.bad))
				return
			}
			if next == nil {
				return
			}
			cur = next
		}
	}
}

// chunk is a part of Events: the matches of one store search, and the
// damage the search met past them, if any.
type chunk struct {
	evs      []*event.Event
	bad, err error
}

// eventChunk runs a search of Events. On damage, the matches before it
// first: the chunk holds those and the damage in bad.
func (l *Log) eventChunk(ctx context.Context, sq store.Query) *chunk {
	evs, err := l.db.st.Search(ctx, l.info.ID, sq)
	var bad error
	before := sq
	for de := (*store.DamagedError)(nil); errors.As(err, &de) && de.Seq > before.From && de.Seq <= before.To; {
		bad, before.To = err, de.Seq-1
		evs, err = l.db.st.Search(ctx, l.info.ID, before)
	}
	return &chunk{evs: evs, bad: bad, err: err}
}

// MaxTextTerms is how many words a search's free text (api.Query.Text)
// may hold: each is looked up in the index of words on its own.
const MaxTextTerms = 64

// CheckQuery returns the error Search would give for q's form (a
// malformed filter, limit or cursor, as an *event.Error naming the
// parameter) without searching: for a stream (Tail) to refuse a bad
// filter before it starts.
func CheckQuery(q api.Query) error {
	_, err := checkQuery(q)
	return err
}

func (l *Log) storeQuery(ctx context.Context, q api.Query) (store.Query, error) {
	if l.db.closing.Load() {
		return store.Query{}, ErrClosed
	}
	// Searches and exports read the store's size first (one indexed
	// read), so that they find what another server acknowledged a moment
	// ago; a size read up to followReads before missed it. A store that
	// fails here fails the search below.
	_ = l.catchUp(ctx)
	sq, err := checkQuery(q)
	if err != nil {
		return sq, err
	}
	sq.To = min(sq.To, l.Size()-1)
	if !q.Since.IsZero() {
		from, err := l.db.st.SeqAtTime(ctx, l.info.ID, q.Since)
		if err != nil {
			return sq, err
		}
		sq.From = from
	}
	if !q.Until.IsZero() {
		to, err := l.db.st.SeqAtTime(ctx, l.info.ID, q.Until)
		if err != nil {
			return sq, err
		}
		sq.To = min(sq.To, to-1)
	}
	return sq, nil
}

// checkQuery checks the form of q and turns it into a store.Query of
// what does not need the log: To is below the cursor, or the greatest
// seq there is; storeQuery bounds it by the log's size and the times.
func checkQuery(q api.Query) (store.Query, error) {
	sq := store.Query{
		Actor: q.Actor, TargetType: q.TargetType, TargetID: q.TargetID,
		IP: q.IP, Text: q.Text, Limit: q.Limit, From: 0, To: math.MaxInt64,
	}
	if sq.Limit <= 0 {
		sq.Limit = 100
	}
	if sq.Limit > 10000 {
		return sq, &event.Error{Index: -1, Field: "limit", Reason: "at most 10000"}
	}
	// No stored event holds text that is not UTF-8, or a NUL: such a
	// filter is a mistake (and PostgreSQL refuses to compare it).
	for _, f := range []struct{ name, val string }{
		{"actor", q.Actor}, {"target_type", q.TargetType}, {"target_id", q.TargetID},
	} {
		if !utf8.ValidString(f.val) || strings.IndexByte(f.val, 0) >= 0 {
			return sq, &event.Error{Index: -1, Field: f.name, Reason: "must be UTF-8 text without NUL, as every stored value is"}
		}
	}
	for _, f := range []struct {
		name, val string
		exact     *[]string
		prefix    *string
	}{
		{"action", q.Action, &sq.Actions, &sq.ActionLike},
		{"exclude_action", q.ExcludeAction, &sq.NotActions, &sq.NotActionLike},
	} {
		switch {
		case f.val == "":
		case strings.HasSuffix(f.val, ".*"):
			prefix := strings.TrimSuffix(f.val, "*")
			if !event.ValidAction(strings.TrimSuffix(prefix, ".")) {
				return sq, &event.Error{Index: -1, Field: f.name, Reason: "must be an action or a prefix like user.*"}
			}
			*f.prefix = prefix
		default:
			if !event.ValidAction(f.val) {
				return sq, &event.Error{Index: -1, Field: f.name, Reason: "must be an action or a prefix like user.*"}
			}
			*f.exact = []string{f.val}
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		// An empty range is a mistake (the two swapped), not a question.
		return sq, &event.Error{Index: -1, Field: "until", Reason: "is before since: the range holds no time"}
	}
	if q.HideReads {
		sq.NotActions = append(sq.NotActions, readActions...)
	}
	switch q.Outcome {
	case "", event.Success, event.Failure, event.Denied, event.Errored:
		sq.Outcome = q.Outcome
	default:
		return sq, &event.Error{Index: -1, Field: "outcome", Reason: "must be success, failure, denied or error"}
	}
	switch terms := derive.Terms(q.Text); {
	case len(terms) == 0 && strings.TrimSpace(q.Text) != "":
		// Punctuation alone: searching for nothing would find every
		// event, which is not what was asked.
		return sq, &event.Error{Index: -1, Field: "q", Reason: "has no word to search for (a word is letters or digits)"}
	case len(terms) > MaxTextTerms:
		return sq, &event.Error{Index: -1, Field: "q", Reason: fmt.Sprintf("has %d words; at most %d (an email or a dotted name counts each part)", len(terms), MaxTextTerms)}
	}
	if q.IP != "" {
		ip, err := event.CanonicalIP(q.IP)
		if err != nil {
			return sq, &event.Error{Index: -1, Field: "ip", Reason: "not an IP address"}
		}
		sq.IP = ip
	}
	if q.Cursor != "" {
		c, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || c < 0 {
			return sq, &event.Error{Index: -1, Field: "cursor", Reason: "malformed cursor"}
		}
		sq.To = c - 1
	}
	return sq, nil
}

// WaitIndexed blocks until the search indexes cover every event committed
// before the call, or ctx ends. Searches are complete without it (events
// not indexed yet are scanned); it is for benchmarks, tests and bulk loads.
func (l *Log) WaitIndexed(ctx context.Context) error { return l.db.st.WaitIndexed(ctx, l.info.ID) }

// Checkpoint returns the latest signed checkpoint (a C2SP signed note):
// for an empty log, that of the empty tree, signed for the call (Ed25519
// signs the same note the same way), or, on a read-only DB, which holds no
// signing key, an error wrapping ErrNotFound. Like Size, it shows
// another DB's appends within half a second. A stored checkpoint that
// does not verify with the log's key, or a log of events without one, is
// a *DamagedError: it is never served as the log's.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.RLock()
	latest, size, known := l.latest, l.size, l.tipNote
	l.mu.RUnlock()
	switch {
	case latest == nil && size > 0:
		return nil, &DamagedError{Seq: size - 1, Problem: fmt.Sprintf("no signed checkpoint covers the log's %d events: they were added outside Trail, or its checkpoints removed", size)}
	case latest == nil && l.signer != nil:
		// The empty tree's checkpoint: C2SP tlog-tiles serves one for
		// every log, and it is the same note each time it is signed.
		empty, err := tlog.TreeHash(0, nil) // RFC 6962's: SHA-256 of nothing
		if err != nil {
			return nil, err
		}
		return merkle.Sign(merkle.Checkpoint{Origin: l.info.Origin, Size: 0, Hash: empty}, l.signer)
	case latest == nil:
		return nil, fmt.Errorf("checkpoint of log %q: %w (the log is empty; its empty tree's checkpoint is signed by a DB that appends, not a read-only one)", l.info.Name, ErrNotFound)
	case bytes.Equal(latest.Note, known):
		return latest.Note, nil
	}
	c, _, err := merkle.Open(latest.Note, l.verifier)
	if err == nil && c.Size != latest.Size {
		err = fmt.Errorf("signed for size %d, stored as size %d", c.Size, latest.Size)
	}
	if err != nil {
		return nil, &DamagedError{Seq: max(latest.Size-1, 0), Problem: "its latest checkpoint does not verify with the log's key", Err: err}
	}
	l.mu.Lock()
	if l.latest == latest {
		l.tipNote, l.tipRoot = latest.Note, c.Hash
	}
	l.mu.Unlock()
	return latest.Note, nil
}

// CheckpointAt returns the stored checkpoint of exactly that tree size.
func (l *Log) CheckpointAt(ctx context.Context, size int64) ([]byte, error) {
	c, err := l.db.st.CheckpointAt(ctx, l.info.ID, size)
	if err != nil {
		return nil, err
	}
	return c.Note, nil
}

// hashReader reads the log's stored Merkle hashes, the rightmost tiles
// from memory when the log appends: the store computes its partial level-0
// tile from the events on each read.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return merkle.TileHashReader(func(level int, index int64) ([]byte, error) {
		if data, ok := l.tiles.get(level, index); ok {
			return data, nil
		}
		if data := l.rightmostTile(level, index); data != nil {
			return data, nil
		}
		data, err := l.db.st.Tile(ctx, l.info.ID, level, index)
		if err == nil {
			l.tiles.put(level, index, data)
		}
		return data, err
	})
}

// rightmostTile returns a copy of the data of the log's rightmost tile at
// level if its index is index, or nil.
func (l *Log) rightmostTile(level int, index int64) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.app == nil {
		return nil
	}
	return l.app.RightmostAt(level, index)
}

// tileCache keeps recently read full tiles, which never change.
type tileCache struct {
	mu    sync.Mutex
	tiles map[[2]int64][]byte
}

const maxCachedTiles = 2048 // 16 MiB

func (c *tileCache) get(level int, index int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.tiles[[2]int64{int64(level), index}]
	return data, ok
}

func (c *tileCache) put(level int, index int64, data []byte) {
	if len(data) != tlog.HashSize<<merkle.TileHeight {
		return // partial tiles grow
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tiles == nil {
		c.tiles = map[[2]int64][]byte{}
	}
	if len(c.tiles) >= maxCachedTiles {
		for k := range c.tiles { // evict an arbitrary tile
			delete(c.tiles, k)
			break
		}
	}
	c.tiles[[2]int64{int64(level), index}] = data
}

// ProveInclusion returns the proof that the event at seq is in the tree of
// the given size (tlog.CheckRecord verifies it).
func (l *Log) ProveInclusion(ctx context.Context, seq, size int64) (tlog.RecordProof, error) {
	if l.db.closing.Load() {
		return nil, ErrClosed
	}
	l.followPast(ctx, size)
	if size <= 0 || size > l.Size() {
		return nil, fmt.Errorf("tree size %d: %w (log has %d events)", size, ErrNotFound, l.Size())
	}
	if seq < 0 || seq >= size {
		return nil, fmt.Errorf("seq %d not in tree of size %d: %w", seq, size, ErrNotFound)
	}
	proof, err := tlog.ProveRecord(size, seq, l.hashReader(ctx))
	return proof, shortTile(err)
}

// ProveConsistency returns the proof that the tree of size from is a prefix
// of the tree of size to (tlog.CheckTree verifies it).
func (l *Log) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	if l.db.closing.Load() {
		return nil, ErrClosed
	}
	l.followPast(ctx, to)
	if to > l.Size() || from < 1 || from > to {
		return nil, fmt.Errorf("sizes %d..%d: %w (log has %d events)", from, to, ErrNotFound, l.Size())
	}
	proof, err := tlog.ProveTree(to, from, l.hashReader(ctx))
	return proof, shortTile(err)
}

// TreeHash returns the root hash of the tree of the given size.
func (l *Log) TreeHash(ctx context.Context, size int64) (tlog.Hash, error) {
	if l.db.closing.Load() {
		return tlog.Hash{}, ErrClosed
	}
	l.followPast(ctx, size)
	if size < 0 || size > l.Size() {
		return tlog.Hash{}, fmt.Errorf("tree size %d: %w", size, ErrNotFound)
	}
	h, err := tlog.TreeHash(size, l.hashReader(ctx))
	return h, shortTile(err)
}

// OpenCheckpoint verifies a signed checkpoint with the log's verifier key.
func (l *Log) OpenCheckpoint(signed []byte) (Checkpoint, error) {
	c, _, err := merkle.Open(signed, l.verifier)
	return c, err
}
