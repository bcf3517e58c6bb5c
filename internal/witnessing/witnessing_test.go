package witnessing_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/internal/witnessing"
)

// memLog is a real log kept in memory: an RFC 6962 tree (x/mod tlog) and
// checkpoints signed with an Ed25519 note key; what it stores as cosigned
// it keeps too.
type memLog struct {
	t      *testing.T
	signer note.Signer
	vkey   string

	mu       sync.Mutex
	hashes   []tlog.Hash // stored hashes, tlog.StoredHashes layout
	size     int64
	latest   witnessing.Checkpoint
	cosigned []witnessing.Checkpoint
}

func newMemLog(t *testing.T, origin string) *memLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &memLog{t: t, signer: signer, vkey: vkey}
}

func (l *memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = l.hashes[x]
	}
	return out, nil
}

// add appends n leaves and signs a checkpoint of the new size.
func (l *memLog) add(n int, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range n {
		hs, err := tlog.StoredHashes(l.size, fmt.Appendf(nil, "%s %d", tag, i), l)
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.size++
	}
	root, err := tlog.TreeHash(l.size, l)
	if err != nil {
		l.t.Fatal(err)
	}
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: l.signer.Name(), Size: l.size, Hash: root}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	l.latest = witnessing.Checkpoint{Size: l.size, Note: signed, SignedAt: time.Now()}
}

func (l *memLog) Latest() (witnessing.Checkpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest, l.size > 0
}

func (l *memLog) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return tlog.ProveTree(to, from, l)
}

func (l *memLog) Cosigned(ctx context.Context) (witnessing.Checkpoint, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cosigned) == 0 {
		return witnessing.Checkpoint{}, false, nil
	}
	return l.cosigned[len(l.cosigned)-1], true, nil
}

func (l *memLog) PutCosigned(ctx context.Context, c witnessing.Checkpoint) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.cosigned); n > 0 && l.cosigned[n-1].Size >= c.Size {
		return nil
	}
	l.cosigned = append(l.cosigned, c)
	return nil
}

func (l *memLog) witnessed() witnessing.Checkpoint {
	c, _, _ := l.Cosigned(context.Background())
	return c
}

func cosigVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		done, msg := ok()
		if done {
			return
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Submit speaks tlog-witness to a real witness: 200 with its cosignature,
// 409 with the size it holds, 422 for a checkpoint that does not follow,
// 404 for a log it does not know; an unreachable or silent witness is an
// error of its own.
func TestSubmit(t *testing.T) {
	ctx := context.Background()
	l := newMemLog(t, "example.com/log")
	w := witnesstest.New(t, "", l.vkey)
	v := cosigVerifier(t, w.VerifierKey)
	hc := &http.Client{}
	l.add(5, "a")
	c5, _ := l.Latest()
	sigs, err := witnessing.Submit(ctx, hc, w.URL, 0, nil, c5.Note)
	if err != nil {
		t.Fatalf("Submit(old 0, size 5) = %v", err)
	}
	if n, err := note.Open(append(c5.Note, sigs...), note.VerifierList(v)); err != nil || len(n.Sigs) != 1 {
		t.Errorf("Submit's answer %q is not the witness's cosignature: %v", sigs, err)
	}
	l.add(5, "b")
	c10, _ := l.Latest()
	var conflict *witnessing.ConflictError
	if _, err := witnessing.Submit(ctx, hc, w.URL, 0, nil, c10.Note); !errors.As(err, &conflict) || conflict.Size != 5 {
		t.Errorf("Submit(old 0, size 10) = %v, want a ConflictError of size 5", err)
	}
	bad := tlog.TreeProof{{1}, {2}}
	var se *witnessing.StatusError
	if _, err := witnessing.Submit(ctx, hc, w.URL, 5, bad, c10.Note); !errors.As(err, &se) || se.Status != 422 || !strings.Contains(err.Error(), "forked or rolled back") {
		t.Errorf("Submit(a wrong proof) = %v, want a StatusError 422 saying what it means", err)
	}
	proof, err := l.ProveConsistency(ctx, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witnessing.Submit(ctx, hc, w.URL, 5, proof, c10.Note); err != nil {
		t.Errorf("Submit(old 5, size 10, proof) = %v", err)
	}
	other := newMemLog(t, "example.com/other")
	other.add(1, "x")
	oc, _ := other.Latest()
	if _, err := witnessing.Submit(ctx, hc, w.URL, 0, nil, oc.Note); !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("Submit(a log the witness does not know) = %v, want a StatusError 404", err)
	}

	w.Stop()
	if _, err := witnessing.Submit(ctx, hc, w.URL, 10, nil, c10.Note); err == nil || errors.As(err, &se) || errors.As(err, &conflict) {
		t.Errorf("Submit(a stopped witness) = %v, want a connection error", err)
	}
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer silent.Close()
	defer close(release)
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := witnessing.Submit(sctx, hc, silent.URL, 10, nil, c10.Note); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Submit(a witness that never answers) = %v, want the deadline", err)
	}
}

// A follower stores a checkpoint only once cosignatures that check with
// the policy's keys meet the quorum: a witness whose answers do not check
// with the key the policy gives it counts for nothing, and says so.
func TestFollowerQuorum(t *testing.T) {
	l := newMemLog(t, "example.com/log")
	w1 := witnesstest.New(t, "", l.vkey)
	w2 := witnesstest.New(t, "", l.vkey)
	impostor := witnesstest.New(t, "", l.vkey) // its key is not the one the policy names for w3
	ws := []witnessing.Witness{
		{Name: "w1", URL: w1.URL, Verifier: cosigVerifier(t, w1.VerifierKey)},
		{Name: "w2", URL: w2.URL, Verifier: cosigVerifier(t, w2.VerifierKey)},
		{Name: "w3", URL: impostor.URL, Verifier: cosigVerifier(t, w2.VerifierKey)},
	}
	need := func(k int) func([]string) bool { return func(names []string) bool { return len(names) >= k } }
	run := func(t *testing.T, k int) *witnessing.Follower {
		f := witnessing.New(l, witnessing.Config{Witnesses: ws, Satisfied: need(k), Logger: testLogger(t), Poll: 20 * time.Millisecond, LogName: "log"})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		})
		return f
	}

	l.add(10, "a")
	f := run(t, 3)
	waitFor(t, 10*time.Second, "w3's answers are refused", func() (bool, string) {
		st := f.Status()
		return len(st.Witnesses) == 3 && st.Witnesses[2].Err != nil && st.Witnesses[0].Size == 10 && st.Witnesses[1].Size == 10, fmt.Sprintf("%+v", st)
	})
	st := f.Status()
	if !strings.Contains(st.Witnesses[2].Err.Error(), "without a valid cosignature") {
		t.Errorf("w3's error = %v, want it to say its cosignature does not check", st.Witnesses[2].Err)
	}
	if c := l.witnessed(); c.Size != 0 || st.Witnessed != 0 || st.Since.IsZero() {
		t.Errorf("with 2 valid cosignatures of 3 needed: stored size %d, status %+v; want nothing stored, lagging", c.Size, st)
	}

	// Two needed: stored, with both cosignatures, checked.
	f2 := run(t, 2)
	l.add(3, "b")
	waitFor(t, 10*time.Second, "a checkpoint cosigned by w1 and w2 is stored", func() (bool, string) {
		return l.witnessed().Size == 13 && f2.Status().Witnessed == 13, fmt.Sprintf("%+v", f2.Status())
	})
	c := l.witnessed()
	for _, w := range ws[:2] {
		if _, err := note.Open(c.Note, note.VerifierList(w.Verifier)); err != nil {
			t.Errorf("the stored checkpoint has no valid cosignature of %s: %v\n%s", w.Name, err, c.Note)
		}
	}
	if st := f2.Status(); !st.Since.IsZero() || st.Witnesses[0].Submissions == 0 {
		t.Errorf("status once caught up = %+v, want no lag", st)
	}
}

// With two of three witnesses needed and one down, the log is witnessed
// without it; when it comes back, it gets the newest checkpoint and
// catches up even though the log has no new commit, and its error clears.
func TestFollowerWitnessBackWhileIdle(t *testing.T) {
	l := newMemLog(t, "example.com/log")
	var ws []witnessing.Witness
	var down *witnesstest.Witness
	for i := range 3 {
		w := witnesstest.New(t, "", l.vkey)
		ws = append(ws, witnessing.Witness{Name: fmt.Sprintf("w%d", i+1), URL: w.URL, Verifier: cosigVerifier(t, w.VerifierKey)})
		down = w
	}
	down.Stop()
	f := witnessing.New(l, witnessing.Config{
		Witnesses: ws, Satisfied: func(names []string) bool { return len(names) >= 2 },
		Logger: testLogger(t), Poll: 20 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	l.add(7, "a")
	waitFor(t, 10*time.Second, "witnessed by w1 and w2, w3 failing", func() (bool, string) {
		st := f.Status()
		return st.Witnessed == 7 && st.Witnesses[2].Err != nil, fmt.Sprintf("%+v", st)
	})
	down.Restart()
	waitFor(t, 10*time.Second, "w3 catches up with no new commit", func() (bool, string) {
		st := f.Status()
		return st.Witnesses[2].Err == nil && st.Witnesses[2].Size == 7, fmt.Sprintf("%+v", st)
	})
	if got := down.Latest("example.com/log"); got == nil {
		t.Error("w3 holds no checkpoint of the log after catching up")
	}
}
