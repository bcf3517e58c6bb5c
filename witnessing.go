package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/witnessing"
	"github.com/trail-audit/trail/policy"
)

// Witnessing: with Options.WitnessPolicy, a DB opened for writing submits
// the newest checkpoint of each log the policy covers to the policy's
// witnesses (C2SP tlog-witness), in the background until Close, and
// stores each checkpoint whose cosignatures meet the policy's quorum
// (internal/witnessing). Log.WitnessedCheckpoint serves the newest. A
// policy covers every log of the store when it has no `log` line, and
// else the logs whose verifier keys its `log` lines list: OpenStore
// refuses a store holding a log a policy with `log` lines does not list,
// so that no log is served unwitnessed by mistake (a log created later,
// whose key no policy could list yet, is served unwitnessed, and a
// warning says so, until the policy lists it and the DB is opened again).

// witnessRescan is how often the DB looks for logs created since it began
// witnessing.
const witnessRescan = 2 * time.Second

// witnessHTTP makes the submissions to witnesses; each has its own
// timeout too (witnessing.Config.Timeout).
var witnessHTTP = &http.Client{Timeout: 15 * time.Second}

// witnessors are the DB's witnessing followers, one per log covered.
type witnessors struct {
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex
	followers map[string]*witnessing.Follower // by log name
	warned    map[string]bool                 // logs the policy does not cover, warned of
}

// covers reports whether p covers a log with verifier key vkey.
func covers(p *policy.Policy, vkey string) bool {
	if len(p.Logs) == 0 {
		return true
	}
	for _, l := range p.Logs {
		if l.VerifierKey == vkey {
			return true
		}
	}
	return false
}

// checkWitnessPolicy refuses db, closing it, when its witness policy has
// `log` lines that do not list one of its logs, or, unless db is
// read-only, a quorum that the witnesses with a URL cannot meet.
func checkWitnessPolicy(ctx context.Context, db *DB, err error) (*DB, error) {
	if err != nil || db.opts.WitnessPolicy == nil {
		return db, err
	}
	if p := db.opts.WitnessPolicy; !db.opts.ReadOnly && !p.None() {
		var reachable []string
		for _, w := range p.Witnesses {
			if w.URL != "" {
				reachable = append(reachable, w.Name)
			}
		}
		if !p.Satisfied(reachable) {
			db.Close()
			return nil, fmt.Errorf("the witness policy's quorum (%s) needs witnesses that have no URL to submit checkpoints to: give their witness lines a URL", p.Quorum())
		}
	}
	if len(db.opts.WitnessPolicy.Logs) == 0 {
		return db, nil
	}
	infos, err := db.st.Logs(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, li := range infos {
		if !covers(db.opts.WitnessPolicy, li.VerifierKey) {
			db.Close()
			return nil, fmt.Errorf("the witness policy's log lines do not list log %q (its verifier key is %s): add a line \"log %s\", or remove every log line to witness all logs", li.Name, li.VerifierKey, li.VerifierKey)
		}
	}
	return db, nil
}

// startWitnessing starts witnessing the DB's logs if it has a policy and
// may write.
func (db *DB) startWitnessing() {
	if db.opts.WitnessPolicy == nil || db.opts.ReadOnly || db.opts.WitnessPolicy.None() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.witness = &witnessors{stop: cancel, done: make(chan struct{}), followers: map[string]*witnessing.Follower{}, warned: map[string]bool{}}
	db.ObserveCommits(func(c CommitStats) {
		if c.Err == nil && c.Events > 0 {
			db.witness.notify()
		}
	})
	go db.witnessLoop(ctx)
}

// stopWitnessing stops the followers and waits for them.
func (db *DB) stopWitnessing() {
	if db.witness != nil {
		db.witness.stop()
		<-db.witness.done
	}
}

func (w *witnessors) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.followers {
		f.Notify()
	}
}

// witnessLoop runs a follower for each log the policy covers, looking for
// new logs every witnessRescan, until ctx ends.
func (db *DB) witnessLoop(ctx context.Context) {
	defer close(db.witness.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	p := db.opts.WitnessPolicy
	ws := make([]witnessing.Witness, len(p.Witnesses))
	for i, w := range p.Witnesses {
		ws[i] = witnessing.Witness{Name: w.Name, URL: w.URL, Verifier: w.Verifier}
	}
	tick := time.NewTicker(witnessRescan)
	defer tick.Stop()
	openErrs := map[string]string{} // by log name, the last error opening it ("": listing them)
	for {
		infos, err := db.st.Logs(ctx)
		if err != nil && ctx.Err() == nil && openErrs[""] != err.Error() {
			openErrs[""] = err.Error()
			db.opts.Logger.WarnContext(ctx, "cannot list the logs to witness", "err", err)
		}
		for _, li := range infos {
			db.witness.mu.Lock()
			_, running := db.witness.followers[li.Name]
			warned := db.witness.warned[li.Name]
			db.witness.mu.Unlock()
			if running || warned {
				continue
			}
			if !covers(p, li.VerifierKey) {
				db.opts.Logger.WarnContext(ctx, "the witness policy does not list the log: its checkpoints are not witnessed", "log", li.Name, "verifier_key", li.VerifierKey)
				db.witness.mu.Lock()
				db.witness.warned[li.Name] = true
				db.witness.mu.Unlock()
				continue
			}
			l, err := db.Log(ctx, li.Name)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, ErrClosed) && openErrs[li.Name] != err.Error() {
					openErrs[li.Name] = err.Error() // logged once, retried every witnessRescan
					db.opts.Logger.WarnContext(ctx, "cannot open the log to witness it", "log", li.Name, "err", err)
				}
				continue
			}
			f := witnessing.New(witnessLog{l}, witnessing.Config{
				Witnesses: ws,
				Satisfied: p.Satisfied,
				Client:    witnessHTTP,
				Logger:    db.opts.Logger,
				LogName:   li.Name,
				Poll:      followIdle,
				Interval:  db.opts.WitnessInterval,
			})
			db.witness.mu.Lock()
			db.witness.followers[li.Name] = f
			db.witness.mu.Unlock()
			wg.Go(func() { f.Run(ctx) })
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// witnessLog is a Log as its witnessing follower sees it.
type witnessLog struct{ l *Log }

func (w witnessLog) Latest() (witnessing.Checkpoint, bool) {
	w.l.mu.RLock()
	defer w.l.mu.RUnlock()
	if w.l.latest == nil {
		return witnessing.Checkpoint{}, false
	}
	return witnessing.Checkpoint{Size: w.l.latest.Size, Note: w.l.latest.Note, SignedAt: w.l.latest.SignedAt}, true
}

func (w witnessLog) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	return w.l.ProveConsistency(ctx, from, to)
}

func (w witnessLog) Cosigned(ctx context.Context) (witnessing.Checkpoint, bool, error) {
	c, err := w.l.witnessed(ctx)
	if errors.Is(err, ErrNotFound) {
		return witnessing.Checkpoint{}, false, nil
	}
	if err != nil {
		return witnessing.Checkpoint{}, false, err
	}
	return witnessing.Checkpoint{Size: c.Size, Note: c.Note, SignedAt: c.SignedAt}, true, nil
}

func (w witnessLog) PutCosigned(ctx context.Context, c witnessing.Checkpoint) error {
	return w.l.db.st.PutCosigned(ctx, w.l.info.ID, store.Checkpoint{Size: c.Size, Note: c.Note, SignedAt: c.SignedAt})
}

// WitnessPolicy returns the policy the DB's checkpoints are witnessed
// under (Options.WitnessPolicy), or nil.
func (db *DB) WitnessPolicy() *policy.Policy { return db.opts.WitnessPolicy }

// Witnessed reports whether the DB's witness policy covers the log (see
// Options.WitnessPolicy); false without a policy.
func (l *Log) Witnessed() bool {
	p := l.db.opts.WitnessPolicy
	return p != nil && covers(p, l.info.VerifierKey)
}

// WitnessedCheckpoint returns the newest cosigned checkpoint of the log
// that meets the DB's witness policy: the log's signed checkpoint note
// with the witnesses' cosignature lines (C2SP tlog-cosignature). It is an
// error wrapping ErrNotFound when the log has none yet, or without a
// policy (Options.WitnessPolicy). With a policy that needs no witness
// (`quorum none`), it is the latest signed checkpoint.
func (l *Log) WitnessedCheckpoint(ctx context.Context) ([]byte, error) {
	c, err := l.witnessed(ctx)
	if err != nil {
		return nil, err
	}
	return c.Note, nil
}

// witnessed returns the newest stored cosigned checkpoint of the log if
// it meets the policy and carries the log's own valid signature; an error
// wrapping ErrNotFound if not.
func (l *Log) witnessed(ctx context.Context) (store.Checkpoint, error) {
	p := l.db.opts.WitnessPolicy
	if !l.Witnessed() {
		return store.Checkpoint{}, fmt.Errorf("witnessed checkpoint of log %q: %w (no witness policy covers it)", l.info.Name, ErrNotFound)
	}
	if p.None() {
		l.mu.RLock()
		defer l.mu.RUnlock()
		if l.latest == nil {
			return store.Checkpoint{}, fmt.Errorf("witnessed checkpoint of log %q: %w (the log is empty)", l.info.Name, ErrNotFound)
		}
		return *l.latest, nil
	}
	c, err := l.db.st.Cosigned(ctx, l.info.ID)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("witnessed checkpoint of log %q: %w", l.info.Name, err)
	}
	signed, ok := l.wcheck.met(c.Note, func() (int64, bool) {
		oc, err := l.OpenCheckpoint(c.Note)
		return oc.Size, err == nil && p.Check(c.Note).Met
	})
	if !ok {
		// Stored under another policy (the server was restarted with a
		// stricter one): the next one cosigned under this one replaces it.
		return store.Checkpoint{}, fmt.Errorf("witnessed checkpoint of log %q: %w (the newest stored does not meet the policy)", l.info.Name, ErrNotFound)
	}
	if signed != c.Size {
		// A row copied or edited in the database: trusting its size
		// would stop witnessing, and deny events it does not cover.
		return store.Checkpoint{}, &DamagedError{Seq: min(signed, c.Size), Problem: fmt.Sprintf("a cosigned checkpoint is stored as size %d but signed for size %d: it was changed outside Trail", c.Size, signed)}
	}
	l.followPast(ctx, c.Size) // another server's commits, witnessed already
	if size := l.Size(); c.Size > size {
		return store.Checkpoint{}, &DamagedError{Seq: size, Problem: fmt.Sprintf("a cosigned checkpoint is stored for size %d, past the log's %d events", c.Size, size)}
	}
	return c, nil
}

// WitnessedAt returns the newest witnessed checkpoint of the log (as
// WitnessedCheckpoint) if it covers the event at seq; else the latest
// signed checkpoint, as CheckpointCosigned has it. met reports which: true
// for the witnessed one.
func (l *Log) WitnessedAt(ctx context.Context, seq int64) (signed []byte, met bool, err error) {
	c, err := l.witnessed(ctx)
	if err == nil && c.Size > seq {
		return c.Note, true, nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	// The newest checkpoint some witnesses cosigned, if it covers the
	// event: often not the latest, which a read's own record (trail.get)
	// has just moved on.
	if p, ok := l.partial(); ok && p.Size > seq {
		return bytes.Clone(p.Note), false, nil
	}
	signed, err = l.CheckpointCosigned()
	return signed, false, err
}

// partial returns the newest checkpoint of the log that witnesses of the
// DB's policy have cosigned, too few to meet it, as this server
// submitted it.
func (l *Log) partial() (witnessing.Checkpoint, bool) {
	if l.db.witness == nil {
		return witnessing.Checkpoint{}, false
	}
	l.db.witness.mu.Lock()
	f := l.db.witness.followers[l.info.Name]
	l.db.witness.mu.Unlock()
	if f == nil {
		return witnessing.Checkpoint{}, false
	}
	return f.Partial()
}

// CheckpointCosigned is Checkpoint, followed by the cosignature lines
// that witnesses of the DB's witness policy have given the latest
// checkpoint so far, too few to meet the policy. It opens with the log's
// verifier key as Checkpoint does. Without such lines (no witness
// cosigned it yet, another server of the log submitted it, or the DB
// does not witness its logs) it is Checkpoint.
func (l *Log) CheckpointCosigned() ([]byte, error) {
	signed, err := l.Checkpoint()
	if err != nil {
		return signed, err
	}
	if c, ok := l.partial(); ok && bytes.HasPrefix(c.Note, signed) {
		return bytes.Clone(c.Note), nil
	}
	return signed, nil
}

// policyCheck remembers the last cosigned note checked against the
// policy, which every read of the witnessed checkpoint meets again.
type policyCheck struct {
	mu   sync.Mutex
	note []byte
	ok   bool
	size int64 // the size the note is signed for, when ok
}

// met returns what check returned for note, and the size it gave,
// calling it only for a note other than the last one.
func (pc *policyCheck) met(note []byte, check func() (int64, bool)) (int64, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !bytes.Equal(pc.note, note) {
		pc.note = bytes.Clone(note)
		pc.size, pc.ok = check()
	}
	return pc.size, pc.ok
}

// WitnessStatus is how far the witnessing of one log has got.
type WitnessStatus struct {
	Log string
	// Size is the size of the log's newest checkpoint, Witnessed that of
	// the newest cosigned checkpoint meeting the policy (0 if none).
	Size, Witnessed int64
	// Since is when the log signed the first checkpoint the witnessed one
	// does not cover; zero while Witnessed is Size.
	Since time.Time
	// Witnesses are the policy's witnesses that take submissions.
	Witnesses []WitnessState
}

// WitnessState is how one witness has answered a log's submissions.
type WitnessState struct {
	Name string
	// Size is the size of the latest checkpoint it is known to have
	// cosigned, -1 while unknown.
	Size int64
	// Submissions and Failures count the submissions made to it since
	// the DB was opened, and those that failed.
	Submissions, Failures int64
	// Err is why its latest submission failed (it could not be reached,
	// timed out, or refused the checkpoint); nil once one succeeded.
	Err error
}

// WitnessStatus reports, for each log the DB witnesses, sorted by name,
// how far its witnessing has got. It is empty unless the DB witnesses
// (Options.WitnessPolicy, not read-only).
func (db *DB) WitnessStatus() []WitnessStatus {
	if db.witness == nil {
		return nil
	}
	db.witness.mu.Lock()
	defer db.witness.mu.Unlock()
	out := make([]WitnessStatus, 0, len(db.witness.followers))
	for name, f := range db.witness.followers {
		st := f.Status()
		ws := WitnessStatus{Log: name, Size: st.Size, Witnessed: st.Witnessed, Since: st.Since}
		for _, w := range st.Witnesses {
			ws.Witnesses = append(ws.Witnesses, WitnessState(w))
		}
		out = append(out, ws)
	}
	slices.SortFunc(out, func(a, b WitnessStatus) int { return strings.Compare(a.Log, b.Log) })
	return out
}
