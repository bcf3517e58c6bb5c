package witnessd_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	whttp "github.com/transparency-dev/witness/client/http"
	"github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/witnessd"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	vkey, err := witnessd.Init(dir, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatalf("NewVerifierForCosignatureV1(%q) = %v", vkey, err)
	}
	if v.Name() != "witness.example/w1" {
		t.Errorf("verifier name = %q, want witness.example/w1", v.Name())
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	if len(raw) != 33 || raw[0] != 0x04 {
		t.Errorf("verifier key %q is not an Ed25519 cosignature/v1 key (type 0x04)", vkey)
	}
	fi, err := os.Stat(filepath.Join(dir, witnessd.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, witnessd.DBFile)); err != nil {
		t.Errorf("Init made no state: %v", err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, witnessd.KeyFile))
	if _, err := witnessd.Init(dir, "witness.example/w2"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Init = %v, want a refusal saying the key exists", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, witnessd.KeyFile)); string(again) != string(key) {
		t.Error("second Init changed the key")
	}
	_, got, err := witnessd.LoadKey(dir)
	if err != nil || got != vkey {
		t.Errorf("LoadKey = %q, %v; want %q", got, err, vkey)
	}
	for _, name := range []string{"", "a b", "a+b", "a\nb"} {
		if _, err := witnessd.Init(filepath.Join(t.TempDir(), "x"), name); err == nil {
			t.Errorf("Init with name %q succeeded, want an error", name)
		}
	}
	if err := os.Chmod(filepath.Join(dir, witnessd.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := witnessd.LoadKey(dir); err == nil {
		t.Error("LoadKey of a key readable by others succeeded, want an error")
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	ctx := context.Background()
	if _, err := witnessd.Open(ctx, witnessd.Config{Dir: dir, Logs: []string{testLog(t).VerifierKey()}}); !errors.Is(err, witnessd.ErrNoKey) {
		t.Errorf("Open without init = %v, want ErrNoKey", err)
	}
	if _, err := witnessd.Init(dir, "w"); err != nil {
		t.Fatal(err)
	}
	l := testLog(t)
	_, own, err := witnessd.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, logs := range [][]string{nil, {"not a key"}, {l.VerifierKey(), l.VerifierKey()}, {own}} {
		if w, err := witnessd.Open(ctx, witnessd.Config{Dir: dir, Logs: logs}); err == nil {
			w.Close()
			t.Errorf("Open with logs %q succeeded, want an error", logs)
		}
	}
	// One witness at a time on a directory: a second is refused while
	// the first is open, and opens once it is closed.
	cfg := witnessd.Config{Dir: dir, Logs: []string{l.VerifierKey()}}
	first, err := witnessd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := witnessd.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "another trail witness runs on this directory") {
		if w != nil {
			w.Close()
		}
		t.Errorf("a second Open of the directory = %v, want it refused, saying another witness runs on it", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := witnessd.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after the first witness closed = %v", err)
	}
	second.Close()
}

// testLog returns a new Trail log, in a data directory of its own.
func testLog(t *testing.T) *trail.Log {
	t.Helper()
	return newLog(t, filepath.Join(t.TempDir(), "data"), "")
}

// newLog creates the log "acme", of origin example.com/acme, in a new data
// directory dir; with keyFrom, it signs with the key of that data
// directory's log "acme" (the operator forking its log).
func newLog(t *testing.T, dir, keyFrom string) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if keyFrom != "" {
		key, err := os.ReadFile(filepath.Join(keyFrom, "keys", "acme.key"))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "keys", "acme.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := db.CreateLog(ctx, "acme", "example.com/acme")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// grow appends n events to l whose actor is actor.
func grow(t *testing.T, l *trail.Log, n int, actor string) {
	t.Helper()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Actor: event.Actor{ID: fmt.Sprintf("%s-%d", actor, i)}, Action: "user.login"}
	}
	if _, err := l.AppendBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// submission is a checkpoint of l with a consistency proof from old.
func submission(t *testing.T, l *trail.Log, old, size int64) (cp []byte, proof [][]byte) {
	t.Helper()
	ctx := context.Background()
	cp, err := l.CheckpointAt(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if old > 0 && old < size {
		p, err := l.ProveConsistency(ctx, old, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			proof = append(proof, h[:])
		}
	}
	return cp, proof
}

// post sends an add-checkpoint request with body and returns the status,
// the Content-Type and the body of the answer.
func post(t *testing.T, witnessURL, body string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(witnessURL+"/add-checkpoint", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// body is an add-checkpoint request body, made by hand as tlog-witness says.
func body(old int64, proof [][]byte, cp []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.String()
}

// checkCosigned checks that sigs holds a valid cosignature of the witness
// vkey on cp.
func checkCosigned(t *testing.T, cp []byte, sigs []byte, vkey string) {
	t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(append(append([]byte{}, cp...), sigs...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("the cosignature %q does not verify with %s: %v", sigs, vkey, err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != v.Name() {
		t.Fatalf("verified signatures = %v, want one of %s", n.Sigs, v.Name())
	}
	if _, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err != nil {
		t.Errorf("cosignature has no cosignature/v1 timestamp: %v", err)
	}
}

// The witness cosigns a real Trail log as it grows, with the client of
// transparency-dev/witness, and refuses a fork, a rollback, a bad proof, an
// unknown log and a bad signature with the statuses of tlog-witness; after
// a restart it still knows the size it cosigned.
func TestWitnessTrailLog(t *testing.T) {
	ctx := context.Background()
	dataA := filepath.Join(t.TempDir(), "a")
	l := newLog(t, dataA, "")
	w := witnesstest.New(t, "witness.example/w1", l.VerifierKey())
	u, _ := url.Parse(w.URL)
	client := whttp.NewWitness(u, http.DefaultClient)

	grow(t, l, 3, "a")
	cp3, _ := submission(t, l, 0, 3)
	sigs, _, err := client.Update(ctx, 0, cp3, nil)
	if err != nil {
		t.Fatalf("Update(0, size 3) = %v", err)
	}
	checkCosigned(t, cp3, sigs, w.VerifierKey)

	grow(t, l, 2, "a")
	grow(t, l, 298, "a") // size 303: a full tile and more
	cp303, proof := submission(t, l, 3, 303)
	sigs, _, err = client.Update(ctx, 3, cp303, proof)
	if err != nil {
		t.Fatalf("Update(3, size 303) = %v", err)
	}
	checkCosigned(t, cp303, sigs, w.VerifierKey)
	if got := w.Latest("example.com/acme"); !strings.HasPrefix(string(got), string(cp303)) {
		t.Errorf("Latest = %q, want the cosigned checkpoint of size 303", got)
	}
	// The same checkpoint again is cosigned again.
	if _, _, err := client.Update(ctx, 303, cp303, nil); err != nil {
		t.Errorf("Update(303, size 303) = %v", err)
	}

	// A fork: another tree of the same size signed with the same key.
	dataB := filepath.Join(t.TempDir(), "b")
	fork := newLog(t, dataB, dataA)
	if fork.VerifierKey() != l.VerifierKey() {
		t.Fatal("the fork does not share the log's key")
	}
	grow(t, fork, 5, "b")
	grow(t, fork, 298, "b")
	forkCP, _ := submission(t, fork, 0, 303)
	forkCP5, _ := submission(t, fork, 0, 5)
	cp5, _ := submission(t, l, 0, 5)

	grow(t, l, 20, "a")
	cp323, proof323 := submission(t, l, 303, 323)
	otherKey := testLog(t) // another log of the same origin, with another key
	grow(t, otherKey, 3, "c")
	otherCP, _ := submission(t, otherKey, 0, 3)
	unknown := newLogNamed(t, "example.com/unknown")
	grow(t, unknown, 3, "d")
	unknownCP, _ := submission(t, unknown, 0, 3)

	// refusals checks the refusals of the witness when it holds the
	// checkpoint of size; forkCP is the fork's checkpoint of that size,
	// next a checkpoint of l after size with its proof from size.
	refusals := func(t *testing.T, size int64, forkCP, next []byte, nextProof [][]byte) {
		t.Helper()
		badProof := append([][]byte{}, nextProof...)
		badProof[0] = make([]byte, 32)
		tampered := []byte(strings.Replace(string(next), "\n", "\n1", 1)) // a size 10 times larger or so
		for _, tc := range []struct {
			name       string
			body       string
			wantStatus int
			wantBody   string
		}{
			{"fork of the same size", body(size, nil, forkCP), 422, ""},
			{"rollback to 5", body(5, nil, cp5), 409, fmt.Sprintf("%d\n", size)},
			{"rollback with the witness's size", body(size, nil, cp5), 400, ""},
			{"fork rollback from 0", body(0, nil, forkCP5), 409, fmt.Sprintf("%d\n", size)},
			{"stale old size", body(3, nil, next), 409, fmt.Sprintf("%d\n", size)},
			{"bad consistency proof", body(size, badProof, next), 422, ""},
			{"unknown log", body(0, nil, unknownCP), 404, ""},
			{"another key for the origin", body(0, nil, otherCP), 403, ""},
			{"tampered checkpoint", body(size, nextProof, tampered), 403, ""},
			{"old size past the checkpoint", body(100000, nil, next), 400, ""},
			{"no old line", "\n" + string(next), 400, ""},
			{"leading zero", fmt.Sprintf("old 0%d\n\n", size) + string(next), 400, ""},
			{"not a hash", fmt.Sprintf("old %d\nAAAA\n\n", size) + string(next), 400, ""},
			{"no checkpoint", "old 0\n\n", 400, ""},
		} {
			status, ctype, got := post(t, w.URL, tc.body)
			if status != tc.wantStatus {
				t.Errorf("%s: status %d (%q), want %d", tc.name, status, got, tc.wantStatus)
				continue
			}
			if status == 409 {
				if ctype != "text/x.tlog.size" || got != tc.wantBody {
					t.Errorf("%s: 409 with %q, Content-Type %q; want %q, text/x.tlog.size", tc.name, got, ctype, tc.wantBody)
				}
			}
		}
	}
	refusals(t, 303, forkCP, cp323, proof323)
	if got := w.Latest("example.com/acme"); !strings.HasPrefix(string(got), string(cp303)) {
		t.Fatalf("after the refusals Latest = %q, want the checkpoint of size 303", got)
	}

	// The client sees a 409 as ErrCheckpointStale with the witness's size.
	if _, size, err := client.Update(ctx, 0, cp323, nil); !errors.Is(err, witness.ErrCheckpointStale) || size != 303 {
		t.Errorf("Update(0, size 323) = %d, %v; want 303, ErrCheckpointStale", size, err)
	}

	// A restart keeps the state.
	w.Stop()
	w.Restart()
	http.DefaultClient.CloseIdleConnections() // the connections to the stopped witness
	refusals(t, 303, forkCP, cp323, proof323)
	sigs, _, err = client.Update(ctx, 303, cp323, proof323)
	if err != nil {
		t.Fatalf("after a restart, Update(303, size 323) = %v", err)
	}
	checkCosigned(t, cp323, sigs, w.VerifierKey)
	grow(t, fork, 20, "b")
	forkCP323, _ := submission(t, fork, 0, 323)
	grow(t, l, 1000, "a")
	cp1323, proof1323 := submission(t, l, 323, 1323)
	refusals(t, 323, forkCP323, cp1323, proof1323)
}

// A new witness takes its first checkpoint of a log only from old size 0,
// with an empty proof.
func TestWitnessFirstCheckpoint(t *testing.T) {
	l := testLog(t)
	url, vkey, stop := witnesstest.Start(t, l.VerifierKey())
	defer stop()
	grow(t, l, 10, "a")
	cp, proof := submission(t, l, 4, 10)
	if status, ctype, got := post(t, url, body(4, proof, cp)); status != 409 || got != "0\n" || ctype != "text/x.tlog.size" {
		t.Errorf("first submission from old size 4: %d %q (%s), want 409 \"0\\n\" (text/x.tlog.size)", status, got, ctype)
	}
	if status, _, got := post(t, url, body(0, proof, cp)); status != 422 {
		t.Errorf("first submission from 0 with a proof: %d %q, want 422", status, got)
	}
	status, _, got := post(t, url, body(0, nil, cp))
	if status != 200 {
		t.Fatalf("first submission from 0: %d %q, want 200", status, got)
	}
	checkCosigned(t, cp, []byte(got), vkey)
	if !strings.HasPrefix(got, "— ") || !strings.HasSuffix(got, "\n") {
		t.Errorf("cosignature %q is not a signature line", got)
	}
}

// newLogNamed creates a log of origin origin in a data directory of its
// own.
func newLogNamed(t *testing.T, origin string) *trail.Log {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, filepath.Join(t.TempDir(), "data"), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "other", origin)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Submissions that race from the same old size are checked and stored one
// at a time: exactly one is cosigned, and every other is told the size it
// stored, so none rolls the state back (the race tlog-witness warns of).
func TestWitnessConcurrentSubmissions(t *testing.T) {
	l := testLog(t)
	w := witnesstest.New(t, "", l.VerifierKey())
	grow(t, l, 10, "a")
	cp10, _ := submission(t, l, 0, 10)
	if status, _, got := post(t, w.URL, body(0, nil, cp10)); status != 200 {
		t.Fatalf("size 10: %d %q", status, got)
	}
	const n = 16
	bodies := make([]string, n)
	sizes := make([]int64, n)
	for i := range n {
		grow(t, l, 1, "b")
		sizes[i] = int64(11 + i)
		cp, proof := submission(t, l, 10, sizes[i])
		bodies[i] = body(10, proof, cp)
	}
	type answer struct {
		status int
		body   string
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, _, got := post(t, w.URL, bodies[i])
			answers[i] = answer{status, got}
		})
	}
	wg.Wait()
	winner := -1
	for i, a := range answers {
		if a.status == 200 {
			if winner >= 0 {
				t.Fatalf("sizes %d and %d were both cosigned from old size 10", sizes[winner], sizes[i])
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no submission was cosigned: %v", answers)
	}
	for i, a := range answers {
		if i == winner {
			continue
		}
		if want := fmt.Sprintf("%d\n", sizes[winner]); a.status != 409 || a.body != want {
			t.Errorf("size %d: %d %q, want 409 %q", sizes[i], a.status, a.body, want)
		}
	}
	latest := string(w.Latest("example.com/acme"))
	if !strings.HasPrefix(latest, fmt.Sprintf("example.com/acme\n%d\n", sizes[winner])) {
		t.Errorf("the witness holds %q, want the checkpoint of size %d", latest, sizes[winner])
	}
}

// The state database is in WAL mode (its journal mode is kept in the file);
// the library opens it with synchronous=FULL, which a connection cannot see
// from outside.
func TestStateJournalMode(t *testing.T) {
	w := witnesstest.New(t, "", testLog(t).VerifierKey())
	db, err := sql.Open("sqlite", filepath.Join(w.Dir, witnessd.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}
