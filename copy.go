package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/store"
)

// ErrDiverged: Copy found a log in the target that is not an earlier
// state of the source's log of that name (another origin or verifier key,
// another history, or more events). Copy never overwrites it.
var ErrDiverged = errors.New("the target's log is not a copy of the source's")

// CopyOptions tune Copy.
type CopyOptions struct {
	// Logs names the logs to copy, in that order. Default: every log of
	// the source, by name.
	Logs []string
	// Progress, if set, is called after each commit to the target, and
	// once as each log starts; never by two goroutines at once.
	Progress func(CopyProgress)
	// MaxCommitEvents bounds the events one commit to the target carries
	// (default 20000); a single source commit larger than that is still
	// copied in one. MaxCommitCheckpoints bounds its checkpoints (default
	// 5000): a log of many small commits is copied thousands of them per
	// target commit.
	MaxCommitEvents      int
	MaxCommitCheckpoints int
}

// CopyProgress says how far Copy is with one log.
type CopyProgress struct {
	Log   string // the log being copied
	Done  int64  // events the target's log holds now
	Total int64  // events it will hold when this log is copied
}

// CopyReport says what Copy did, one entry per log it reached.
type CopyReport struct {
	Logs []CopiedLog
}

// Events returns the events copied over all logs.
func (r CopyReport) Events() int64 {
	var n int64
	for _, l := range r.Logs {
		n += l.Events
	}
	return n
}

// CopiedLog says what Copy did for one log.
type CopiedLog struct {
	Name        string
	Created     bool  // the target had no log of that name
	From        int64 // the target log's size before the copy
	Size        int64 // its size after: the source's latest checkpoint when the copy of the log began
	Events      int64 // events copied (Size-From)
	Checkpoints int   // checkpoints copied
	Keys        int   // API keys created in the target
	Revoked     int   // API keys revoked in the target, as they are in the source
	// KeysUnrecorded counts the source's API keys left behind because
	// the copied events hold no record of their creation: created since
	// the copy began (the next run copies them with it), or added to the
	// source's keys table outside Trail. A key its log does not record
	// does not authenticate.
	KeysUnrecorded int
	Idempotency    int // idempotency records created in the target
	// IdempotencyUnreadable counts the source's idempotency records whose
	// receipts do not parse, or name events the log does not hold under
	// those seqs (changed in its database), which are left behind.
	IdempotencyUnreadable int
	Done                  bool // the log was copied whole, up to Size
}

// keyMover is a signerSource whose keys can be moved to another store:
// Copy moves each log's signing key with the log, before its events.
// dirKeys and sealedKeys are keyMovers.
type keyMover interface {
	// exportKey returns the signing key of log in note's signer key form
	// (PRIVATE+KEY+…), checked against log.VerifierKey. It fails with an
	// error wrapping ErrMissingKey when there is none.
	exportKey(ctx context.Context, log logRef) (string, error)
	// importKey durably keeps skey, the signer key of log.VerifierKey, as
	// the signing key of log.Name. Keeping the same key again is not an
	// error; another key kept for log.Name is, and stays.
	importKey(ctx context.Context, log logRef, skey string) error
}

var (
	_ keyMover = dirKeys{}
	_ keyMover = (*sealedKeys)(nil)
)

// exportKey implements keyMover.
func (k dirKeys) exportKey(ctx context.Context, log logRef) (string, error) {
	path := k.keyPath(log.Name)
	if _, vkey, err := k.load(log.Name); err != nil {
		return "", err
	} else if vkey != log.VerifierKey {
		return "", fmt.Errorf("log %q: signing key %s does not match the log's verifier key %s", log.Name, path, log.VerifierKey)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// importKey implements keyMover: it writes keys/<name>.key, mode 0600.
func (k dirKeys) importKey(ctx context.Context, log logRef, skey string) error {
	path := k.keyPath(log.Name)
	_, vkey, err := k.load(log.Name)
	switch {
	case err == nil && vkey == log.VerifierKey:
		return nil
	case err == nil:
		return fmt.Errorf("log %q: %s holds another signing key (of %s); move it away first: %w", log.Name, path, vkey, ErrDiverged)
	case !errors.Is(err, ErrMissingKey):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := durable.WriteNew(path, []byte(skey+"\n")); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	return nil
}

// exportKey implements keyMover.
func (k *sealedKeys) exportKey(ctx context.Context, log logRef) (string, error) {
	name := signerSecret(log.Name)
	if _, vkey, err := k.load(ctx, log.Name); err != nil {
		return "", err
	} else if vkey != log.VerifierKey {
		return "", fmt.Errorf("log %q: signing key in secret %q does not match the log's verifier key %s", log.Name, name, log.VerifierKey)
	}
	sealed, err := k.secrets.Secret(ctx, name)
	if err != nil {
		return "", fmt.Errorf("log %q: read signing key: %w", log.Name, err)
	}
	plain, err := k.unseal(name, sealed)
	if err != nil {
		return "", fmt.Errorf("log %q: signing key: %w", log.Name, err)
	}
	return string(plain), nil
}

// importKey implements keyMover: it stores the key sealed with this
// store's master key.
func (k *sealedKeys) importKey(ctx context.Context, log logRef, skey string) error {
	name := signerSecret(log.Name)
	err := k.secrets.PutSecret(ctx, name, k.seal(name, []byte(skey)))
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("store signing key: %w", err)
	}
	_, vkey, err := k.load(ctx, log.Name)
	if err != nil {
		return err
	}
	if vkey != log.VerifierKey {
		return fmt.Errorf("log %q: the database holds another signing key (of %s) in secret %q: %w", log.Name, vkey, name, ErrDiverged)
	}
	return nil
}

// Copy copies whole logs from one store to another: each log's signing
// key, its events, Merkle tiles and signed checkpoints, and its API keys.
// It is for moving logs between backends (sqlite to postgres, say); open
// from read-only, so that it can run beside a server of the source.
//
// For each log it first moves the signing key, and creates the log in to
// with the same name, origin and verifier key unless it is there; a log
// already in to must have the same origin and verifier key, and hold an
// earlier state of the source's log: as many events as one of the
// source's checkpoints, with a byte-identical checkpoint at that size.
// Copy then continues from there, so that a copy interrupted (by ctx, a
// crash, a lost database) is finished by running it again; it never
// changes what the target holds. Anything else is an error wrapping
// ErrDiverged.
//
// Events are copied up to the latest checkpoint the source held when the
// log's copy began (appends to the source meanwhile are copied by the next
// run), one source commit at a time but many per commit to the target.
// Copy verifies as it goes: each event's leaf hash is recomputed, and each
// checkpoint's root and signature checked with the log's verifier key
// before it is committed, with the source's exact note and signing time,
// so both ends hold identical checkpoints. A damaged source stops the
// copy with a *VerifyError naming the first bad seq (or, when it is not
// tied to one event, the checkpoint), and nothing from there on is
// copied.
//
// Then it copies the log's API keys with their ids, hashes, scopes and
// times, revoked ones revoked at the same time; keys in to already, the
// same, are kept. Last, it copies the idempotency records of the log's
// appends of the last IdempotencyWindow whose events the target holds,
// so that a client retrying such an append through the target gets its
// first receipts back rather than append it again; a record the target
// holds under the same API key and idempotency key stays.
//
// It returns what it did for each log it reached, also when it fails.
func Copy(ctx context.Context, from, to *DB, opts CopyOptions) (CopyReport, error) {
	var rep CopyReport
	if from.isClosed() {
		return rep, fmt.Errorf("source: %w", ErrClosed)
	}
	if err := to.usable(); err != nil {
		return rep, fmt.Errorf("target: %w", err)
	}
	if opts.MaxCommitEvents <= 0 {
		opts.MaxCommitEvents = 20000
	}
	if opts.MaxCommitCheckpoints <= 0 {
		opts.MaxCommitCheckpoints = 5000
	}
	srcKeys, err := from.keyMover()
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	dstKeys, ok := to.signers.(keyMover)
	if !ok {
		return rep, errors.New("target: its signing keys cannot be written for copying")
	}
	names := opts.Logs
	if len(names) == 0 {
		all, err := from.st.Logs(ctx)
		if err != nil {
			return rep, fmt.Errorf("source: list logs: %w", err)
		}
		for _, li := range all {
			names = append(names, li.Name)
		}
	}
	// A log the source lacks stops the copy before it writes anything.
	for _, name := range opts.Logs {
		if _, err := from.st.Log(ctx, name); errors.Is(err, store.ErrNotFound) {
			return rep, fmt.Errorf("the source has no log %q: %w", name, ErrNotFound)
		} else if err != nil {
			return rep, fmt.Errorf("source: log %q: %w", name, err)
		}
	}
	for _, name := range names {
		c := &logCopy{from: from, to: to, srcKeys: srcKeys, dstKeys: dstKeys, opts: opts, rep: CopiedLog{Name: name}}
		err := c.run(ctx)
		rep.Logs = append(rep.Logs, c.rep)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// keyMover returns what moves db's signing keys. A store shared by many
// servers opened read-only reads no secrets, but with its master key
// (Options.MasterKey) they can be read for copying.
func (db *DB) keyMover() (keyMover, error) {
	if m, ok := db.signers.(keyMover); ok {
		return m, nil
	}
	sec, ok := db.st.(store.Secrets)
	if !ok {
		return nil, errors.New("its signing keys cannot be read for copying")
	}
	if len(db.opts.MasterKey) == 0 {
		return nil, errors.New("its signing keys are sealed: open it with its master key to copy them")
	}
	return newSealedKeys(sec, db.opts.MasterKey)
}

// isClosed reports whether db was closed.
func (db *DB) isClosed() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.closed
}

// logCopy is the copy of one log.
type logCopy struct {
	from, to         *DB
	srcKeys, dstKeys keyMover
	opts             CopyOptions
	rep              CopiedLog

	src, dst store.LogInfo
	verifier note.Verifier
}

func (c *logCopy) run(ctx context.Context) error {
	name := c.rep.Name
	var err error
	c.src, err = c.from.st.Log(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("the source has no log %q", name)
	}
	if err != nil {
		return fmt.Errorf("source: log %q: %w", name, err)
	}
	if c.verifier, err = note.NewVerifier(c.src.VerifierKey); err != nil {
		return fmt.Errorf("source: log %q: stored verifier key: %w", name, err)
	}
	// The latest checkpoint now is as far as this run copies.
	st, err := c.from.st.State(ctx, c.src.ID)
	if err != nil {
		return fmt.Errorf("source: log %q: %w", name, err)
	}
	var limit int64
	if st.Checkpoint != nil {
		limit = st.Checkpoint.Size
	}
	c.rep.Size = limit
	if st.Size != limit {
		// Events no checkpoint covers, or a checkpoint past the events:
		// copying up to the checkpoint would leave the difference
		// behind without a word.
		return c.damagedSource(min(st.Size, limit), fmt.Sprintf("the source's log holds %d events but its latest checkpoint is for %d: events were added or removed outside Trail, or its checkpoints changed (run trail verify on it)", st.Size, limit))
	}
	// A server may go on appending to the source: what it appends after
	// st was read is left for the next run (pastEnd).
	if p, err := c.from.pastEnd(ctx, c.src.ID, st.Size); err != nil {
		return fmt.Errorf("source: log %q: read past its end: %w", name, err)
	} else if p != nil {
		return c.damagedSource(p.seq, fmt.Sprintf("the source holds an event past the end of its log (%d events), stored outside Trail (run trail verify on it)", p.size))
	}

	if err := c.prepareTarget(ctx); err != nil {
		return err
	}
	tst, err := c.to.st.State(ctx, c.dst.ID)
	if err != nil {
		return fmt.Errorf("target: log %q: %w", name, err)
	}
	c.rep.From = tst.Size
	if err := c.checkResume(ctx, tst, limit); err != nil {
		return err
	}
	if tst.Size < limit {
		if err := c.copyEvents(ctx, tst, limit); err != nil {
			return err
		}
	}
	if err := c.copyCosigned(ctx); err != nil {
		return err
	}
	if err := c.copyKeys(ctx); err != nil {
		return err
	}
	if err := c.copyIdempotency(ctx); err != nil {
		return err
	}
	c.rep.Done = true
	return nil
}

// copyCosigned stores the source's newest cosigned checkpoint (its
// witnesses' cosignatures) in the target, once the target holds the
// checkpoint of that size: signed by the log's key and of the very tree
// the target holds, or the copy fails. A target that already has one of
// that size keeps it.
func (c *logCopy) copyCosigned(ctx context.Context) error {
	cs, err := c.from.st.Cosigned(ctx, c.src.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("source: log %q: cosigned checkpoint: %w", c.rep.Name, err)
	}
	tcp, err := c.to.st.CheckpointAt(ctx, c.dst.ID, cs.Size)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the target does not reach it
	}
	if err != nil {
		return fmt.Errorf("target: log %q: checkpoint of size %d: %w", c.rep.Name, cs.Size, err)
	}
	got, _, err := merkle.Open(cs.Note, c.verifier)
	if err != nil {
		return fmt.Errorf("source: log %q: the cosigned checkpoint of size %d does not verify with the log's verifier key: %w", c.rep.Name, cs.Size, err)
	}
	want, _, err := merkle.Open(tcp.Note, c.verifier)
	if err != nil {
		return fmt.Errorf("target: log %q: checkpoint of size %d: %w", c.rep.Name, cs.Size, err)
	}
	if got.Size != want.Size || got.Hash != want.Hash {
		return fmt.Errorf("source: log %q: the cosigned checkpoint of size %d is of another tree than the log's checkpoint of that size", c.rep.Name, cs.Size)
	}
	if err := c.to.st.PutCosigned(ctx, c.dst.ID, cs); err != nil {
		return fmt.Errorf("target: log %q: store the cosigned checkpoint: %w", c.rep.Name, err)
	}
	return nil
}

// prepareTarget moves the signing key and finds or creates the log in the
// target, with the source's origin and verifier key.
func (c *logCopy) prepareTarget(ctx context.Context) error {
	name := c.rep.Name
	ref := logRef{Name: name, Origin: c.src.Origin, VerifierKey: c.src.VerifierKey}
	dst, err := c.to.st.Log(ctx, name)
	switch {
	case err == nil:
		if dst.Origin != c.src.Origin || dst.VerifierKey != c.src.VerifierKey {
			return fmt.Errorf("log %q: the target's log has origin %q and verifier key %s, the source's %q and %s: %w",
				name, dst.Origin, dst.VerifierKey, c.src.Origin, c.src.VerifierKey, ErrDiverged)
		}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("target: log %q: %w", name, err)
	}
	skey, err := c.srcKeys.exportKey(ctx, ref)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := c.dstKeys.importKey(ctx, ref, skey); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if dst.ID == 0 {
		dst, err = c.to.st.CreateLog(ctx, name, c.src.Origin, c.src.VerifierKey)
		if err != nil {
			return fmt.Errorf("target: create log %q: %w", name, err)
		}
		c.rep.Created = true
	}
	c.dst = dst
	return nil
}

// checkResume checks that the target's log, in state tst, is an earlier
// state of the source's, whose latest checkpoint is of size limit.
func (c *logCopy) checkResume(ctx context.Context, tst store.State, limit int64) error {
	name, size := c.rep.Name, tst.Size
	if size == 0 {
		return nil
	}
	if size > limit {
		return fmt.Errorf("log %q: the target's log holds %d events, the source's latest checkpoint %d: %w", name, size, limit, ErrDiverged)
	}
	if tst.Checkpoint == nil || tst.Checkpoint.Size != size {
		return fmt.Errorf("log %q: the target's log holds %d events and no checkpoint of that size (run trail verify on it): %w", name, size, ErrDiverged)
	}
	sc, err := c.from.st.CheckpointAt(ctx, c.src.ID, size)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("log %q: the target's log holds %d events, and the source has no checkpoint of that size: %w", name, size, ErrDiverged)
	}
	if err != nil {
		return fmt.Errorf("source: log %q: checkpoint of size %d: %w", name, size, err)
	}
	if !bytes.Equal(sc.Note, tst.Checkpoint.Note) {
		return fmt.Errorf("log %q: the target's checkpoint of size %d differs from the source's: the logs have different histories: %w", name, size, ErrDiverged)
	}
	return nil
}

// copyEvents copies the source's commits after the target's state tst, up
// to the checkpoint of size limit.
func (c *logCopy) copyEvents(ctx context.Context, tst store.State, limit int64) error {
	name := c.rep.Name
	app, err := merkle.NewAppender(tst.Size, tst.Rightmost)
	if err != nil {
		return fmt.Errorf("target: log %q: stored Merkle tiles do not match its %d events (run trail verify): %w", name, tst.Size, err)
	}
	if tst.Size > 0 {
		// checkResume found the target's latest checkpoint the
		// source's: its stored tiles must have that root, or the
		// events copied after them would be checked against damage
		// the target holds, and the source blamed for it.
		cp, _, err := merkle.Open(tst.Checkpoint.Note, c.verifier)
		if err != nil || app.Root() != cp.Hash {
			return fmt.Errorf("target: log %q: its stored events and Merkle tiles do not hash to the root of its latest checkpoint, of %d events: the target was changed outside Trail (run trail verify on it)", name, tst.Size)
		}
	}
	c.progress(app.Size(), limit)

	nextEvent, stop := iter.Pull2(c.from.st.Scan(ctx, c.src.ID, tst.Size, limit))
	defer stop()
	f := &flusher{c: c}
	defer f.wait()
	g := &group{}
	var buf []byte
	for cp, err := range c.from.st.Checkpoints(ctx, c.src.ID) {
		if err != nil {
			return errors.Join(f.wait(), fmt.Errorf("source: log %q: read checkpoints: %w", name, err))
		}
		if cp.Size <= app.Size() {
			continue
		}
		if cp.Size > limit {
			break
		}
		b := store.Batch{Log: c.dst.ID, Checkpoint: cp}
		for app.Size() < cp.Size {
			seq := app.Size()
			e, err, ok := nextEvent()
			switch {
			case !ok:
				err = &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
			case err == nil && e.Seq != seq:
				err = &store.DamagedError{Seq: seq, Problem: store.ProblemMissing}
			}
			if err != nil {
				// What was read before is copied, once checked.
				if ferr := f.wait(); ferr != nil {
					return ferr
				}
				if ferr := c.flush(ctx, g, nil); ferr != nil {
					return ferr
				}
				var de *store.DamagedError
				if errors.As(err, &de) {
					return c.damaged(de.Seq, "the source's stored event is damaged: "+de.Problem)
				}
				return fmt.Errorf("source: log %q: read event %d: %w", name, seq, err)
			}
			buf = canon.Append(buf[:0], e)
			app.Append(tlog.RecordHash(buf))
			b.Events = append(b.Events, e)
		}
		g.batches = append(g.batches, b)
		g.roots = append(g.roots, app.Root())
		g.events += len(b.Events)
		if g.events >= c.opts.MaxCommitEvents || len(g.batches) >= c.opts.MaxCommitCheckpoints {
			if err := f.start(ctx, g, app.Flush()); err != nil {
				return err
			}
			g = &group{}
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(f.wait(), err)
		}
	}
	if err := f.start(ctx, g, app.Flush()); err != nil {
		return err
	}
	if err := f.wait(); err != nil {
		return err
	}
	if app.Size() < limit {
		return c.damaged(-1, fmt.Sprintf("the source's checkpoint of size %d, its latest, is not among its stored checkpoints", limit))
	}
	return nil
}

// group is the source commits read and not yet committed to the target:
// batches, the root of the tree after each, and how many events they
// hold.
type group struct {
	batches []store.Batch
	roots   []tlog.Hash
	events  int
}

// flush checks the checkpoints of g, in parallel, and commits to the
// target the batches up to the first that fails (all, normally), in one
// commit. tiles are the tiles of all of g, or nil when they were not
// taken (the appender read past g), and then they are made again from the
// target's state. A checkpoint that fails is reported as damage, after
// the batches before it are committed.
func (c *logCopy) flush(ctx context.Context, g *group, tiles []merkle.Tile) error {
	if len(g.batches) == 0 {
		return nil
	}
	bad, why := c.checkAll(g)
	batches := g.batches[:bad]
	if bad < len(g.batches) {
		tiles = nil
	}
	if len(batches) > 0 {
		end := batches[len(batches)-1].Checkpoint.Size
		if tiles == nil {
			tst, err := c.to.st.State(ctx, c.dst.ID)
			if err != nil {
				return fmt.Errorf("target: log %q: %w", c.rep.Name, err)
			}
			app, err := merkle.NewAppender(tst.Size, tst.Rightmost)
			if err != nil {
				return fmt.Errorf("target: log %q: %w", c.rep.Name, err)
			}
			var buf []byte
			for _, b := range batches {
				for _, e := range b.Events {
					buf = canon.Append(buf[:0], e)
					app.Append(tlog.RecordHash(buf))
				}
			}
			tiles = app.Flush()
		}
		// The tiles of the whole group, once: the batches commit
		// together or not at all.
		batches[len(batches)-1].Tiles = tiles
		if err := c.to.st.Commit(ctx, batches); err != nil {
			return fmt.Errorf("target: log %q: commit events %d to %d: %w", c.rep.Name, batches[0].Events[0].Seq, end-1, err)
		}
		n := 0
		for _, b := range batches {
			n += len(b.Events)
		}
		c.rep.Checkpoints += len(batches)
		c.rep.Events += int64(n)
		c.progress(end, c.rep.Size)
	}
	if bad < len(g.batches) {
		// One of the events of that commit is wrong: name it, by
		// verifying the source up to there.
		return c.findDamage(ctx, g.batches[bad].Checkpoint.Size, why)
	}
	return nil
}

// flusher runs flush in the background, one group at a time, so that
// the next group is read while one is checked and committed.
type flusher struct {
	c    *logCopy
	done chan error // of the flush running, if any
}

// start waits for the flush running, then starts one of g with tiles. It
// returns the error of the one it waited for, and then starts none.
func (f *flusher) start(ctx context.Context, g *group, tiles []merkle.Tile) error {
	if err := f.wait(); err != nil {
		return err
	}
	f.done = make(chan error, 1)
	go func() { f.done <- f.c.flush(ctx, g, tiles) }()
	return nil
}

// wait waits for the flush running, if any, and returns its error.
func (f *flusher) wait() error {
	if f.done == nil {
		return nil
	}
	err := <-f.done
	f.done = nil
	return err
}

// checkAll checks each checkpoint of g against its root, on all CPUs
// (checking a signature costs more than copying an event), and returns
// the index of the first that fails and why; len(g.batches) if none.
func (c *logCopy) checkAll(g *group) (int, error) {
	n := len(g.batches)
	errs := make([]error, n)
	workers := min(runtime.GOMAXPROCS(0), (n+63)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				errs[i] = c.checkCheckpoint(g.batches[i].Checkpoint, g.roots[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return i, err
		}
	}
	return n, nil
}

// checkCheckpoint checks that cp, a source checkpoint, is signed by the
// log's key and is of the tree whose root is root.
func (c *logCopy) checkCheckpoint(cp store.Checkpoint, root tlog.Hash) error {
	got, _, err := merkle.Open(cp.Note, c.verifier)
	switch {
	case err != nil:
		return fmt.Errorf("its signature does not verify with the log's verifier key: %v", err)
	case got.Size != cp.Size:
		return fmt.Errorf("it is stored as of size %d but signs size %d", cp.Size, got.Size)
	case got.Hash != root:
		return errors.New("its root hash is not the root of the stored events")
	}
	return nil
}

// findDamage reports the first damaged event of the source up to size,
// where the checkpoint of that size failed its check with why.
func (c *logCopy) findDamage(ctx context.Context, size int64, why error) error {
	problem := fmt.Sprintf("the source's checkpoint of size %d does not hold: %v", size, why)
	l, err := c.from.Log(ctx, c.rep.Name)
	if err != nil {
		return c.damaged(-1, problem)
	}
	_, err = l.Verify(ctx, VerifyOptions{Verifier: c.verifier})
	var ve *VerifyError
	if errors.As(err, &ve) && ve.Seq >= 0 && ve.Seq < size {
		return c.damaged(ve.Seq, "the source's log does not verify: "+ve.Problem)
	}
	return c.damaged(-1, problem)
}

// damaged returns the *VerifyError for damage found in the source at seq
// (-1 for none in particular), saying how far the copy went.
func (c *logCopy) damaged(seq int64, problem string) error {
	return &VerifyError{Seq: seq, Problem: fmt.Sprintf("log %q: %s; the copy stopped, and the target's log holds the first %d events",
		c.rep.Name, problem, c.rep.From+c.rep.Events)}
}

// damagedSource is damaged for damage found in the source before the
// target was looked at.
func (c *logCopy) damagedSource(seq int64, problem string) error {
	return &VerifyError{Seq: seq, Problem: fmt.Sprintf("log %q: %s; nothing of it was copied by this run, and the target's log is as it was", c.rep.Name, problem)}
}

func (c *logCopy) progress(done, total int64) {
	if c.opts.Progress != nil {
		c.opts.Progress(CopyProgress{Log: c.rep.Name, Done: done, Total: total})
	}
}

// copyKeys copies the log's API keys, revoked ones revoked.
func (c *logCopy) copyKeys(ctx context.Context) error {
	name := c.rep.Name
	keys, err := c.from.st.Keys(ctx, c.src.ID)
	if err != nil {
		return fmt.Errorf("source: log %q: list API keys: %w", name, err)
	}
	tl, err := c.to.Log(ctx, name)
	if err != nil {
		return fmt.Errorf("target: log %q: %w", name, err)
	}
	for _, k := range keys {
		want := k
		want.Log = c.dst.ID
		have, err := c.to.st.Key(ctx, k.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r, err := tl.keyRecords(ctx, k.ID)
			if err != nil {
				return fmt.Errorf("target: log %q: %w", name, err)
			}
			if r.created < 0 {
				c.rep.KeysUnrecorded++
				continue
			}
			if err := c.to.st.CreateKey(ctx, want); err != nil {
				return fmt.Errorf("target: log %q: create API key %s: %w", name, k.ID, err)
			}
			c.rep.Keys++
			// Created revoked, if it is in the source: never usable
			// on the target, even if the copy stops here.
			if !k.RevokedAt.IsZero() {
				c.rep.Revoked++
			}
			continue
		case err != nil:
			return fmt.Errorf("target: API key %s: %w", k.ID, err)
		case !sameKey(have, want):
			return fmt.Errorf("log %q: the target holds another API key with the id %s: %w", name, k.ID, ErrDiverged)
		}
		if !k.RevokedAt.IsZero() && have.RevokedAt.IsZero() {
			if err := c.to.st.RevokeKey(ctx, k.ID, k.RevokedAt); err != nil {
				return fmt.Errorf("target: log %q: revoke API key %s: %w", name, k.ID, err)
			}
			c.rep.Revoked++
		}
	}
	return nil
}

// idempotencyChunk is how many idempotency records copyIdempotency
// reads and writes at a time.
const idempotencyChunk = 1000

// copyIdempotency copies the idempotency records of the log's appends
// created within IdempotencyWindow whose events are all in the copy
// (seqs below its size): those of appends to the source since the copy
// began go with the next run, with their events.
func (c *logCopy) copyIdempotency(ctx context.Context) error {
	name := c.rep.Name
	since := c.from.opts.Now().Add(-IdempotencyWindow)
	var after *store.Idempotency
	for {
		rs, err := c.from.st.IdempotencyOf(ctx, c.src.ID, since, after, idempotencyChunk)
		if err != nil {
			return fmt.Errorf("source: log %q: %w", name, err)
		}
		keep := rs[:0:0]
		for _, r := range rs {
			receipts, err := unmarshalReceipts(r.Receipts)
			if err != nil {
				// Not part of the log, which is copied whole: a retry
				// of that append through the target appends again.
				c.rep.IdempotencyUnreadable++
				continue
			}
			if slices.ContainsFunc(receipts, func(rc api.Receipt) bool { return rc.Seq < 0 || rc.Seq >= c.rep.Size }) {
				continue // the next run, once the copy holds its events
			}
			ok, err := c.receiptsHeld(ctx, receipts)
			if err != nil {
				return err
			}
			if !ok {
				// Names events the log does not hold under those
				// seqs: planted or changed in the source's database.
				// A replay through the target would acknowledge an
				// append never stored.
				c.rep.IdempotencyUnreadable++
				continue
			}
			keep = append(keep, r)
		}
		n, err := c.to.st.ImportIdempotency(ctx, c.dst.ID, keep)
		if err != nil {
			return fmt.Errorf("target: log %q: %w", name, err)
		}
		c.rep.Idempotency += n
		if len(rs) < idempotencyChunk {
			return nil
		}
		after = &rs[len(rs)-1]
	}
}

// receiptsHeld reports whether each receipt names the event the
// source's log holds at its seq, by id.
func (c *logCopy) receiptsHeld(ctx context.Context, receipts []api.Receipt) (bool, error) {
	if len(receipts) == 0 {
		return false, nil // an append stores one event at least
	}
	for _, rc := range receipts {
		e, err := c.from.st.Get(ctx, c.src.ID, rc.Seq)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("source: log %q: the event at seq %d: %w", c.rep.Name, rc.Seq, damaged(err))
		}
		if e.ID != rc.ID {
			return false, nil
		}
	}
	return true, nil
}

// sameKey reports whether a and b are the same key, revocation aside.
func sameKey(a, b store.Key) bool {
	return a.ID == b.ID && a.Log == b.Log && a.Name == b.Name && slices.Equal(a.Scopes, b.Scopes) &&
		bytes.Equal(a.Hash, b.Hash) && a.CreatedAt.Equal(b.CreatedAt)
}
