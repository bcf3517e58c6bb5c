// Package witnessing gets a log's checkpoints cosigned by witnesses, as
// C2SP tlog-witness (https://c2sp.org/tlog-witness) describes, and keeps
// the newest one whose cosignatures meet the log's policy.
//
// The data flow is one way: the log commits and signs a checkpoint; a
// Follower, one per log, sees the newest checkpoint, submits it to every
// witness with a consistency proof from the size that witness last
// cosigned, checks the cosignature each witness returns, and once the
// cosignatures of one checkpoint meet the quorum, stores that checkpoint
// with them (https://c2sp.org/tlog-cosignature). It never blocks a
// commit: witnesses that are down only make it fall behind, and it
// catches up by itself when they return.
package witnessing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed checkpoint note of a log, cosigned or not.
type Checkpoint struct {
	Size     int64
	Note     []byte
	SignedAt time.Time // when the log signed it
}

// Log is the log a Follower witnesses. Its methods are safe for
// concurrent use.
type Log interface {
	// Latest returns the log's newest signed checkpoint; ok is false while
	// the log is empty.
	Latest() (c Checkpoint, ok bool)
	// ProveConsistency proves that the tree of size from is a prefix of
	// the tree of size to.
	ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error)
	// Cosigned returns the newest stored cosigned checkpoint that meets
	// the policy (also one another server stored); ok is false if there is
	// none.
	Cosigned(ctx context.Context) (c Checkpoint, ok bool, err error)
	// PutCosigned durably stores a cosigned checkpoint that meets the
	// policy. Storing one older than the newest stored leaves the newest.
	PutCosigned(ctx context.Context, c Checkpoint) error
}

// Witness is one witness of the policy.
type Witness struct {
	Name     string        // the policy's name for it
	URL      string        // its submission prefix: URL + "/add-checkpoint"
	Verifier note.Verifier // checks its cosignatures
}

// Config configures a Follower.
type Config struct {
	// Witnesses are the policy's witnesses. Those without a URL are not
	// submitted to (their cosignatures may still come from elsewhere).
	Witnesses []Witness
	// Satisfied reports whether cosignatures of the witnesses named meet
	// the policy's quorum.
	Satisfied func(names []string) bool
	// Client makes the requests. Default: a client of its own.
	Client *http.Client
	// Timeout bounds each submission. Default 10 s.
	Timeout time.Duration
	// Poll is how often the Follower looks for a newer checkpoint, and
	// for cosigned checkpoints another server stored, when Notify does
	// not wake it. Default 500 ms.
	Poll time.Duration
	// Interval is the least time between the starts of two rounds, each
	// a newer checkpoint submitted to the witnesses: under steady ingest
	// a round covers every commit of the interval, so witnessing costs
	// the log (and the witnesses) a few submissions a second, whatever
	// the commit rate. Default 200 ms.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait before a witness whose
	// submission failed gets the next one; it doubles with each failure
	// in a row. Default 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the failures and recoveries of each witness.
	// Default: discard.
	Logger *slog.Logger
	// LogName names the log in logs.
	LogName string
}

func (c *Config) defaults() {
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.Interval <= 0 {
		c.Interval = 200 * time.Millisecond
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(c.MinBackoff, 30*time.Second)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Status is how far a Follower has got.
type Status struct {
	// Size is the size of the log's newest checkpoint, Witnessed that of
	// the newest stored one that meets the policy (0 if none).
	Size, Witnessed int64
	// Since is when the log first signed a checkpoint that the witnessed
	// one does not cover (zero while Witnessed is Size).
	Since time.Time
	// Witnesses are the policy's witnesses that take submissions, in the
	// policy's order.
	Witnesses []WitnessStatus
}

// WitnessStatus is how one witness has answered.
type WitnessStatus struct {
	Name string
	// Size is the size of the latest checkpoint of the log it is known to
	// have cosigned (-1 while unknown).
	Size int64
	// Submissions and Failures count the submissions made to it and
	// those that failed (unreachable, timed out, or refused).
	Submissions, Failures int64
	// Err is why its latest submission failed; nil once one succeeded.
	Err error
}

// Follower witnesses one log. Run does the work; Status and Notify may be
// called from any goroutine.
type Follower struct {
	log  Log
	cfg  Config
	kick chan struct{}

	mu      sync.Mutex
	status  Status
	partial Checkpoint // see Partial
}

// New returns a Follower of l.
func New(l Log, cfg Config) *Follower {
	cfg.defaults()
	f := &Follower{log: l, cfg: cfg, kick: make(chan struct{}, 1)}
	for _, w := range cfg.Witnesses {
		if w.URL != "" {
			f.status.Witnesses = append(f.status.Witnesses, WitnessStatus{Name: w.Name, Size: -1})
		}
	}
	return f
}

// Notify tells the Follower that the log may have a newer checkpoint.
// It never blocks.
func (f *Follower) Notify() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Partial returns the newest checkpoint submitted that witnesses
// cosigned, but not enough of them to meet the policy, with the
// cosignatures given so far, in the policy's order of the witnesses; ok
// is false if there is none newer than the newest that meets it.
func (f *Follower) Partial() (c Checkpoint, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.partial.Size <= f.status.Witnessed {
		return Checkpoint{}, false
	}
	return f.partial, true
}

// Status reports how far the Follower has got.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Witnesses = append([]WitnessStatus(nil), st.Witnesses...)
	return st
}

// witnessState is what Run knows of one witness.
type witnessState struct {
	Witness
	size     int64 // latest size it cosigned, -1 while unknown
	inFlight bool
	retryAt  time.Time // no submission before it
	failures int       // in a row
	// conflicts counts 409 answers in a row, which are followed at once
	// by a new submission unless they keep coming.
	conflicts int
	lastErr   string // the last failure logged, "" once it recovered
}

// result is the outcome of one submission.
type result struct {
	w    *witnessState
	c    Checkpoint
	sigs []byte
	err  error
}

// round is a checkpoint submitted to the witnesses and the cosignature
// lines they returned for it, by witness name.
type round struct {
	c    Checkpoint
	sigs map[string][]byte
}

// Run witnesses the log until ctx ends, then returns ctx's error once
// the submissions in flight have ended.
func (f *Follower) Run(ctx context.Context) error {
	ws := make([]*witnessState, 0, len(f.cfg.Witnesses))
	for _, w := range f.cfg.Witnesses {
		if w.URL != "" {
			ws = append(ws, &witnessState{Witness: w, size: -1})
		}
	}
	r := &runner{f: f, ws: ws, results: make(chan result), rounds: map[int64]*round{}}
	r.refresh(ctx, true)
	tick := time.NewTicker(f.cfg.Poll)
	defer tick.Stop()
	for {
		r.step(ctx)
		select {
		case <-ctx.Done():
			for r.inFlight > 0 {
				<-r.results
				r.inFlight--
			}
			return ctx.Err()
		case <-f.kick:
		case <-r.wake:
			r.wake = nil
		case <-tick.C:
			r.refresh(ctx, false)
		case res := <-r.results:
			r.inFlight--
			r.handle(ctx, res)
		}
	}
}

// runner is the state of Run, owned by its goroutine.
type runner struct {
	f        *Follower
	ws       []*witnessState
	results  chan result
	inFlight int

	// witnessed is the newest stored cosigned checkpoint that meets the
	// policy (Size 0 if none).
	witnessed Checkpoint
	// target is the checkpoint of the current round; rounds keep the
	// cosignatures of it and of a few earlier ones, which late answers
	// may still complete.
	target *round
	rounds map[int64]*round
	// started is when the current round started; wake fires when the
	// next may start (Config.Interval), while a newer checkpoint waits.
	started time.Time
	wake    <-chan time.Time
	// readErr is the last error reading the stored cosigned checkpoint,
	// logged once.
	readErr string
	// putErr is the last error storing a cosigned checkpoint, logged once.
	putErr string
	// pending are the sizes and signing times of the checkpoints seen
	// that witnessed does not cover, oldest first, for Status.Since.
	pending []Checkpoint
}

// refresh reads the newest stored cosigned checkpoint, which another
// server may have stored; first, it also learns from its cosignatures
// what each witness cosigned at least.
func (r *runner) refresh(ctx context.Context, first bool) {
	c, ok, err := r.f.log.Cosigned(ctx)
	if err != nil {
		if ctx.Err() == nil && err.Error() != r.readErr {
			r.readErr = err.Error() // logged once until a read succeeds
			r.f.cfg.Logger.WarnContext(ctx, "cannot read the log's cosigned checkpoint", "log", r.f.cfg.LogName, "err", err)
		}
		return
	}
	r.readErr = ""
	if !ok || c.Size <= r.witnessed.Size {
		return
	}
	r.witnessed = c
	if first {
		for _, w := range r.ws {
			if cosignedBy(c.Note, w.Witness) {
				w.size = max(w.size, c.Size)
			}
		}
	}
}

// step starts the submissions the current round needs, first starting a
// new round when the last one is over and the log has a newer checkpoint.
func (r *runner) step(ctx context.Context) {
	defer r.publish()
	latest, ok := r.f.log.Latest()
	if !ok {
		return
	}
	if latest.Size > r.witnessed.Size && (len(r.pending) == 0 || r.pending[len(r.pending)-1].Size < latest.Size) {
		r.pending = append(r.pending, Checkpoint{Size: latest.Size, SignedAt: latest.SignedAt})
		if len(r.pending) > 1024 { // keep the oldest, thin the rest
			thin := r.pending[:1]
			for i := 1; i < len(r.pending); i += 2 {
				thin = append(thin, r.pending[i])
			}
			r.pending = thin
		}
	}
	if latest.Size <= r.witnessed.Size && (r.target == nil || r.target.c.Size != latest.Size) {
		return
	}
	// Witnessed up to the newest checkpoint, the round goes on all the
	// same for the witnesses that have not cosigned it: one that failed
	// gets it again when its backoff ends, so that it catches up, and
	// says so, without waiting for the next commit.
	if r.target != nil {
		r.complete(ctx, r.target) // stores it if storing failed before
	}
	now := time.Now()
	wait := r.f.cfg.Interval - now.Sub(r.started)
	if r.target != nil && latest.Size > r.target.c.Size && r.roundOver(now) && wait > 0 {
		if r.wake == nil {
			r.wake = time.After(wait)
		}
	} else if r.target == nil || (latest.Size > r.target.c.Size && r.roundOver(now)) {
		r.started = now
		r.target = &round{c: latest, sigs: map[string][]byte{}}
		r.rounds[latest.Size] = r.target
		for n := range r.rounds {
			if n <= r.witnessed.Size || len(r.rounds) > 4 && n < r.target.c.Size {
				delete(r.rounds, n)
			}
		}
	}
	for _, w := range r.ws {
		if w.inFlight || now.Before(w.retryAt) || r.target.sigs[w.Name] != nil || w.size > r.target.c.Size {
			continue
		}
		r.submit(ctx, w, r.target.c)
	}
}

// roundOver reports whether the current round has nothing more to wait
// for: its checkpoint met the quorum, or every witness has answered it,
// is busy with an earlier one, is waiting to retry, or is past it.
func (r *runner) roundOver(now time.Time) bool {
	if r.target.c.Size <= r.witnessed.Size {
		return true
	}
	for _, w := range r.ws {
		if r.target.sigs[w.Name] == nil && !w.inFlight && !now.Before(w.retryAt) && w.size <= r.target.c.Size {
			return false
		}
	}
	return true
}

// submit starts the submission of c to w, with a consistency proof from
// the size w last cosigned.
func (r *runner) submit(ctx context.Context, w *witnessState, c Checkpoint) {
	old := max(w.size, 0)
	var proof tlog.TreeProof
	if old > 0 && old < c.Size {
		var err error
		if proof, err = r.f.log.ProveConsistency(ctx, old, c.Size); err != nil {
			r.failed(ctx, w, fmt.Errorf("prove size %d consistent with %d: %w", old, c.Size, err))
			return
		}
	}
	w.inFlight = true
	r.inFlight++
	r.f.mu.Lock()
	r.witnessStatus(w).Submissions++
	r.f.mu.Unlock()
	go func() {
		sctx, cancel := context.WithTimeout(ctx, r.f.cfg.Timeout)
		defer cancel()
		sigs, err := Submit(sctx, r.f.cfg.Client, w.URL, old, proof, c.Note)
		r.results <- result{w: w, c: c, sigs: sigs, err: err}
	}()
}

// handle takes in the answer of a witness.
func (r *runner) handle(ctx context.Context, res result) {
	w := res.w
	w.inFlight = false
	if ctx.Err() != nil {
		return
	}
	var conflict *ConflictError
	switch {
	case errors.As(res.err, &conflict):
		w.size = conflict.Size
		r.f.mu.Lock()
		r.witnessStatus(w).Size = w.size
		r.f.mu.Unlock()
		if w.conflicts++; w.conflicts > 3 {
			r.failed(ctx, w, fmt.Errorf("the witness keeps changing its size: %w", res.err))
		}
		if conflict.Size > res.c.Size {
			// Past this checkpoint: another server of the log submitted a
			// newer one, or this server's log was rolled back or forked.
			r.f.cfg.Logger.InfoContext(ctx, "witness has cosigned a larger size than the checkpoint submitted", "log", r.f.cfg.LogName, "witness", w.Name, "witness_size", conflict.Size, "size", res.c.Size)
		}
		return
	case res.err != nil:
		r.failed(ctx, w, res.err)
		return
	}
	w.conflicts = 0
	lines := cosignatures(res.c.Note, res.sigs, w.Witness)
	if len(lines) == 0 {
		r.failed(ctx, w, fmt.Errorf("the witness answered 200 without a valid cosignature of its key %s", w.Verifier.Name()))
		return
	}
	w.size = max(w.size, res.c.Size)
	w.failures, w.retryAt = 0, time.Time{}
	if w.lastErr != "" {
		r.f.cfg.Logger.InfoContext(ctx, "witness cosigns again", "log", r.f.cfg.LogName, "witness", w.Name, "size", res.c.Size)
		w.lastErr = ""
	}
	r.f.mu.Lock()
	st := r.witnessStatus(w)
	st.Size, st.Err = w.size, nil
	r.f.mu.Unlock()
	rd := r.rounds[res.c.Size]
	if rd == nil || !bytes.Equal(rd.c.Note, res.c.Note) {
		return // a round forgotten since
	}
	rd.sigs[w.Name] = lines
	r.complete(ctx, rd)
}

// complete stores rd's checkpoint with its cosignatures once they meet
// the quorum, unless a checkpoint as new is stored.
func (r *runner) complete(ctx context.Context, rd *round) {
	if rd.c.Size <= r.witnessed.Size {
		return
	}
	names := make([]string, 0, len(rd.sigs))
	cosigned := bytes.Clone(rd.c.Note)
	for _, w := range r.f.cfg.Witnesses { // in the policy's order
		if lines := rd.sigs[w.Name]; lines != nil {
			names = append(names, w.Name)
			cosigned = append(cosigned, lines...)
		}
	}
	c := Checkpoint{Size: rd.c.Size, Note: cosigned, SignedAt: rd.c.SignedAt}
	if !r.f.cfg.Satisfied(names) {
		r.f.mu.Lock()
		if len(names) > 0 && c.Size >= r.f.partial.Size {
			r.f.partial = c
		}
		r.f.mu.Unlock()
		return
	}
	if err := r.f.log.PutCosigned(ctx, c); err != nil {
		// The cosignatures stay in the round: the next answer, or the
		// next step, tries again.
		if err.Error() != r.putErr {
			r.putErr = err.Error()
			r.f.cfg.Logger.ErrorContext(ctx, "cannot store the cosigned checkpoint", "log", r.f.cfg.LogName, "size", c.Size, "err", err)
		}
		return
	}
	r.putErr = ""
	r.witnessed = c
	r.publish()
}

// failed records a failed submission to w and makes it wait before the
// next.
func (r *runner) failed(ctx context.Context, w *witnessState, err error) {
	w.failures++
	backoff := r.f.cfg.MinBackoff << min(w.failures-1, 16)
	w.retryAt = time.Now().Add(min(backoff, r.f.cfg.MaxBackoff))
	w.conflicts = 0
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		r.f.cfg.Logger.ErrorContext(ctx, "witness submission failed; retrying later", "log", r.f.cfg.LogName, "witness", w.Name, "url", w.URL, "err", err)
	}
	r.f.mu.Lock()
	st := r.witnessStatus(w)
	st.Failures++
	st.Err = err
	r.f.mu.Unlock()
}

// witnessStatus returns w's entry in the published status; f.mu is held.
func (r *runner) witnessStatus(w *witnessState) *WitnessStatus {
	for i := range r.f.status.Witnesses {
		if r.f.status.Witnesses[i].Name == w.Name {
			return &r.f.status.Witnesses[i]
		}
	}
	panic("witnessing: unknown witness " + w.Name) // New listed them all
}

// publish makes the state of the log's witnessing visible to Status.
func (r *runner) publish() {
	latest, _ := r.f.log.Latest()
	for len(r.pending) > 0 && r.pending[0].Size <= r.witnessed.Size {
		r.pending = r.pending[1:]
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.status.Size = latest.Size
	r.f.status.Witnessed = r.witnessed.Size
	r.f.status.Since = time.Time{}
	if latest.Size > r.witnessed.Size && len(r.pending) > 0 {
		r.f.status.Since = r.pending[0].SignedAt
	}
}

// cosignatures returns the lines, among the signature lines sigs, that
// are valid cosignatures by w of the signed note n.
func cosignatures(n, sigs []byte, w Witness) []byte {
	var lines []byte
	for _, line := range strings.SplitAfter(string(sigs), "\n") {
		if !strings.HasSuffix(line, "\n") {
			continue
		}
		opened, err := note.Open(append(bytes.Clone(n), line...), note.VerifierList(w.Verifier))
		if err == nil && len(opened.Sigs) == 1 {
			lines = append(lines, line...)
		}
	}
	return lines
}

// cosignedBy reports whether the signed note n carries a valid
// cosignature by w.
func cosignedBy(n []byte, w Witness) bool {
	opened, err := note.Open(n, note.VerifierList(w.Verifier))
	return err == nil && len(opened.Sigs) > 0
}
