package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/server"
)

// checkpointTape sits in front of a real server: it records each
// GET /v1/checkpoint response the server gives and, once told to, answers
// that route with a recorded response instead, as a server that lost
// events or was rolled back to an older copy would.
type checkpointTape struct {
	mu     sync.Mutex
	last   *httptest.ResponseRecorder // the server's latest response
	replay *httptest.ResponseRecorder // when set, the answer given instead
}

func (p *checkpointTape) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/checkpoint" {
			h.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		rec := p.replay
		p.mu.Unlock()
		if rec == nil {
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			p.mu.Lock()
			p.last = rec
			p.mu.Unlock()
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// recorded returns the last checkpoint response the server gave.
func (p *checkpointTape) recorded(t *testing.T) *httptest.ResponseRecorder {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil || p.last.Code != http.StatusOK {
		t.Fatalf("no successful checkpoint response recorded: %v", p.last)
	}
	return p.last
}

// replayFrom makes every later checkpoint request get rec.
func (p *checkpointTape) replayFrom(rec *httptest.ResponseRecorder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replay = rec
}

func newMonitor(t *testing.T, c *client.Client, vkey string) (*client.Monitor, string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "checkpoint")
	m, err := c.NewMonitor(vkey, state)
	if err != nil {
		t.Fatal(err)
	}
	return m, state
}

// A log that grows passes each check, and the state file then holds the
// signed checkpoint the server gave, byte for byte. A first check, with no
// state file, trusts what it sees and saves it.
func TestMonitorFollowsGrowth(t *testing.T) {
	var tape checkpointTape
	f := newFixture(t, tape.wrap)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	m, state := newMonitor(t, c, f.vkey)

	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file before the first Check: %v, want none", err)
	}
	var prev int64
	for i := range 4 {
		if i > 0 { // the first check sees the log as the fixture left it
			for j := range i {
				if _, err := c.Append(ctx, ev(fmt.Sprintf("u%d", j), "user.update")); err != nil {
					t.Fatal(err)
				}
			}
		}
		cp, err := m.Check(ctx)
		if err != nil {
			t.Fatalf("Check %d of a growing log = %v", i, err)
		}
		if cp.Size != f.log.Size() {
			t.Errorf("Check %d size = %d, want the log's %d", i, cp.Size, f.log.Size())
		}
		if i > 0 && cp.Size <= prev {
			t.Errorf("Check %d size = %d after appends, want more than %d", i, cp.Size, prev)
		}
		prev = cp.Size
		saved, err := os.ReadFile(state)
		if err != nil {
			t.Fatalf("state after Check %d: %v", i, err)
		}
		if served := tape.recorded(t).Body.Bytes(); !bytes.Equal(saved, served) {
			t.Fatalf("state after Check %d =\n%s\nwant the checkpoint served:\n%s", i, saved, served)
		}
	}

	// Nothing appended: the same checkpoint again is no fork.
	before, _ := os.ReadFile(state)
	if cp, err := m.Check(ctx); err != nil || cp.Size != prev {
		t.Fatalf("Check with no growth = size %d, %v; want %d, nil", cp.Size, err, prev)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(before, after) {
		t.Error("Check with no growth changed the state file")
	}
}

// A server that answers with an older, smaller checkpoint of its log than
// the one the monitor saw is a fork: the history it signed lost events.
// The response replayed is one the real server gave earlier.
func TestMonitorDetectsShrink(t *testing.T) {
	var tape checkpointTape
	f := newFixture(t, tape.wrap)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	m, state := newMonitor(t, c, f.vkey)

	if _, err := c.Append(ctx, ev("a", "user.login"), ev("b", "user.login")); err != nil {
		t.Fatal(err)
	}
	old, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldResponse := tape.recorded(t)
	if _, err := c.Append(ctx, ev("c", "user.update"), ev("d", "user.delete")); err != nil {
		t.Fatal(err)
	}
	seen, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Size <= old.Size {
		t.Fatalf("sizes %d then %d, want growth", old.Size, seen.Size)
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	tape.replayFrom(oldResponse)
	cp, err := m.Check(ctx)
	if !errors.Is(err, client.ErrFork) {
		t.Fatalf("Check of a log that shrank from %d to %d = %v, want ErrFork", seen.Size, old.Size, err)
	}
	if !strings.Contains(err.Error(), "shrank") {
		t.Errorf("Check of a log that shrank = %q, want it to say so", err)
	}
	// The older checkpoint is validly signed: Check returns it.
	if cp.Size != old.Size || cp.Hash != old.Hash {
		t.Errorf("Check returned size %d, want the replayed checkpoint's %d", cp.Size, old.Size)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, saved) {
		t.Error("the saved checkpoint was replaced after the log shrank; it is the evidence")
	}
	// The evidence stays: checking again still reports the fork.
	if _, err := m.Check(ctx); !errors.Is(err, client.ErrFork) {
		t.Errorf("second Check of the shrunk log = %v, want ErrFork", err)
	}
}

// A second log with the same origin and signing key and as many events,
// but other ones, signs a checkpoint of the same size and another root:
// each is valid alone, together they are a fork.
func TestMonitorDetectsSameSizeFork(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	m, state := newMonitor(t, c, f.vkey)
	for i := range 5 {
		if _, err := c.Append(ctx, ev(fmt.Sprintf("u%d", i), "user.login")); err != nil {
			t.Fatal(err)
		}
	}
	seen, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	fc := sameSizeFork(t, f, seen.Size)
	fm, err := fc.NewMonitor(f.vkey, state)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := fm.Check(ctx)
	if !errors.Is(err, client.ErrFork) {
		t.Fatalf("Check of another tree of %d events = %v, want ErrFork", seen.Size, err)
	}
	if cp.Size != seen.Size || cp.Hash == seen.Hash {
		t.Fatalf("fork checkpoint = size %d root %v, want size %d and a root other than %v", cp.Size, cp.Hash, seen.Size, seen.Hash)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, saved) {
		t.Error("the saved checkpoint was replaced after a fork; it is the evidence")
	}
	// The original log still passes against the same state.
	if _, err := m.Check(ctx); err != nil {
		t.Errorf("Check of the original log after the fork was seen = %v", err)
	}
}

// sameSizeFork starts a second server on another data directory whose
// log "acme" has the origin and the signing key (the key file, copied) of
// f's log and size other events, and returns a read client of it.
func sameSizeFork(t *testing.T, f *fixture, size int64) *client.Client {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	key, err := os.ReadFile(filepath.Join(f.db.Dir(), "keys", "acme.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "acme.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "acme", f.log.Origin()) // signs with the copied key
	if err != nil {
		t.Fatal(err)
	}
	if l.VerifierKey() != f.vkey {
		t.Fatalf("fork verifier key = %q, want the copied %q", l.VerifierKey(), f.vkey)
	}
	secret, _, err := db.CreateKey(ctx, testAdmin, "acme", "fork", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; l.Size() < size; i++ {
		if _, err := l.Append(ctx, ev(fmt.Sprintf("other%d", i), "user.delete")); err != nil {
			t.Fatal(err)
		}
	}
	if l.Size() != size {
		t.Fatalf("fork log size = %d, want %d", l.Size(), size)
	}
	srv := httptest.NewServer(server.New(db, server.Options{}))
	t.Cleanup(srv.Close)
	fc, err := client.New(srv.URL, secret, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fc
}

// A state file that does not hold a checkpoint signed by the pinned key
// is an error naming the file, not a fork and not a first sight: Check
// neither trusts the server's checkpoint nor overwrites the file.
func TestMonitorBadState(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	if _, err := c.Append(ctx, ev("a", "user.login")); err != nil {
		t.Fatal(err)
	}
	real, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := newFixture(t, nil) // another log, another key
	otherReal, err := other.client(t, client.Options{}).Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		state []byte
	}{
		{"empty", []byte{}},
		{"garbage", []byte("not a checkpoint\n")},
		{"torn write", real[:len(real)/2]},
		{"flipped byte", flip(real, len(real)/3)},
		{"another log's key", otherReal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, state := newMonitor(t, c, f.vkey)
			if err := os.WriteFile(state, tc.state, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := m.Check(ctx)
			if err == nil || errors.Is(err, client.ErrFork) {
				t.Fatalf("Check with a %s state file = %v, want an error that is not ErrFork", tc.name, err)
			}
			if !strings.Contains(err.Error(), state) {
				t.Errorf("Check with a %s state file = %q, want it to name %s", tc.name, err, state)
			}
			if b, _ := os.ReadFile(state); !bytes.Equal(b, tc.state) {
				t.Errorf("Check with a %s state file rewrote it", tc.name)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x01
	return b
}
