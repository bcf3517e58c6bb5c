package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// fixture is a real Trail server on a loopback port with one log and a
// read+append key for it.
type fixture struct {
	db   *trail.DB
	loc  string // where the store is: a data directory, or a URL
	log  *trail.Log
	srv  *httptest.Server
	key  string
	vkey string
	// start is the log's size once the key is made: the trail.key.create
	// event that records it.
	start int64
}

// appended is how many events the log holds past start.
func (f *fixture) appended() int64 { return f.log.Size() - f.start }

func newFixture(t *testing.T, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	return newFixtureAt(t, t.TempDir(), wrap)
}

// isURL reports whether loc, a location a backends.Backend gave, is a
// store URL (PostgreSQL's) rather than a data directory.
func isURL(loc string) bool { return strings.Contains(loc, "://") }

// openAt opens the store at loc, a location a backends.Backend gave: a
// data directory (trail.Open), or a URL (trail.OpenStore, with the
// backend's master key); create makes it (trail.Init, trail.InitStore).
func openAt(ctx context.Context, loc string, create bool, opts trail.Options) (*trail.DB, error) {
	switch {
	case !isURL(loc) && create:
		return trail.Init(ctx, loc, opts)
	case !isURL(loc):
		return trail.Open(ctx, loc, opts)
	}
	opts.MasterKey = backends.Postgres.MasterKey
	if create {
		return trail.InitStore(ctx, loc, opts)
	}
	return trail.OpenStore(ctx, loc, opts)
}

// newFixtureAt is newFixture with the store created at loc, a location a
// backends.Backend gave.
func newFixtureAt(t *testing.T, loc string, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := openAt(ctx, loc, true, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _, err := db.CreateKey(ctx, testAdmin, "acme", "test", trail.ScopeAppend, trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(db, server.Options{})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{db: db, loc: loc, log: l, srv: srv, key: key, vkey: l.VerifierKey(), start: l.Size()}
}

func (f *fixture) client(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.New(f.srv.URL, f.key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ev(actor, action string) event.Event {
	return event.Event{Actor: event.Actor{ID: actor, Type: "user"}, Action: action,
		Targets: []event.Target{{Type: "user", ID: "u_7"}}, Source: event.Source{IP: "192.0.2.1"}}
}

func TestAppendSearchGetVerified(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	var want []api.Receipt
	for i := range 25 {
		rs, err := c.Append(ctx, ev(fmt.Sprintf("u_%d", i%3), "user.login"), ev("admin", "user.delete"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rs...)
	}
	if f.appended() != 50 {
		t.Fatalf("log size = %d, want %d", f.log.Size(), f.start+50)
	}
	// Search pages through every match, newest first, without gaps.
	var seqs []int64
	for e, err := range c.Search(ctx, api.Query{Action: "user.delete", Limit: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 25 {
		t.Fatalf("Search found %d user.delete events, want 25: %v", len(seqs), seqs)
	}
	for i, s := range seqs {
		if s != f.start+int64(49-2*i) {
			t.Fatalf("Search seqs = %v, want %d, %d, … %d", seqs, f.start+49, f.start+47, f.start+1)
		}
	}
	// Get verifies the proof against the pinned key.
	v, err := c.Get(ctx, want[10].ID, f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	// The tree also holds the server's record of this client's reads: four
	// search pages and this get.
	if v.Event.Seq != f.start+10 || v.Event.Actor.ID != "u_2" || v.Checkpoint.Size != f.start+55 {
		t.Errorf("Get = seq %d actor %q in tree %d, want %d, u_2, %d", v.Event.Seq, v.Event.Actor.ID, v.Checkpoint.Size, f.start+10, f.start+55)
	}
	// A key from elsewhere does not verify the log's checkpoint.
	_, otherKey, err := newKeyPair("elsewhere/acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, want[10].ID, otherKey); !errors.Is(err, client.ErrNotVerified) {
		t.Errorf("Get with another verifier key = %v, want ErrNotVerified", err)
	}
	// ULIDs ignore case: the id in lower case names the same event.
	lower := strings.ToLower(want[10].ID)
	if v, err := c.Get(ctx, lower, f.vkey); err != nil {
		t.Errorf("Get(%s): %v", lower, err)
	} else if v.Event.ID != want[10].ID || v.Event.Seq != f.start+10 {
		t.Errorf("Get(%s) = %s at seq %d, want %s at %d", lower, v.Event.ID, v.Event.Seq, want[10].ID, f.start+10)
	}
}

// The search filters that leave actions out reach the server: HideReads
// leaves out the server's records of this client's reads, and keeps the
// key's creation; ExcludeAction leaves out what it names.
func TestSearchLeavesOut(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	if _, err := c.Append(ctx, ev("u_1", "user.login"), ev("admin", "user.delete")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SearchPage(ctx, api.Query{}); err != nil { // a read, recorded as trail.search
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    api.Query
		want string
	}{
		{api.Query{HideReads: true}, "user.delete user.login trail.key.create"},
		{api.Query{ExcludeAction: "trail.*"}, "user.delete user.login"},
	} {
		page, err := c.SearchPage(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.Action)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("SearchPage(%+v) = %v, want %s", tc.q, got, tc.want)
		}
	}
}

func TestAppendRejectedEventNamesField(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	_, err := c.Append(context.Background(), ev("a", "user.login"), event.Event{Action: "user.login"})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field != "actor.id" || apiErr.Index != 1 {
		t.Fatalf("Append with a second event lacking actor.id = %#v, want a 400 naming the field and index 1", err)
	}
	if f.appended() != 0 {
		t.Errorf("log size = %d after a rejected batch, want %d", f.log.Size(), f.start)
	}
}

// A 503 with Retry-After is retried, and the retry is the same request.
func TestAppendRetriesUnavailable(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	var keys sync.Map
	f := newFixture(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				keys.Store(r.Header.Get("Idempotency-Key"), true)
				if failures.Add(-1) >= 0 {
					w.Header().Set("Retry-After", "0")
					http.Error(w, `{"error":{"code":"unavailable","message":"try later"}}`, http.StatusServiceUnavailable)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	var retried []string
	c := f.client(t, client.Options{MinBackoff: time.Millisecond, Retry: func(err error, wait time.Duration) {
		retried = append(retried, err.Error())
	}})
	rs, err := c.Append(context.Background(), ev("a", "user.login"))
	if err != nil || len(rs) != 1 {
		t.Fatalf("Append after two 503s = %v, %v", rs, err)
	}
	if len(retried) != 2 || !strings.Contains(retried[0], "try later") {
		t.Errorf("Options.Retry was called with %q, want the two 503s", retried)
	}
	n := 0
	keys.Range(func(k, v any) bool { n++; return k != "" })
	if n != 1 {
		t.Errorf("three attempts carried %d idempotency keys, want the same one", n)
	}
	if f.appended() != 1 {
		t.Errorf("log size = %d, want %d", f.log.Size(), f.start+1)
	}
}

// A request stored by the server whose answer is lost is retried with the
// same idempotency key and not stored twice.
func TestAppendRetryAfterLostAnswerStoresOnce(t *testing.T) {
	var lost atomic.Bool
	f := newFixture(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && lost.CompareAndSwap(false, true) {
				h.ServeHTTP(httptest.NewRecorder(), r) // stored, answer dropped
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"error":{"code":"unavailable","message":"proxy timeout"}}`, http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := f.client(t, client.Options{MinBackoff: time.Millisecond})
	rs, err := c.Append(context.Background(), ev("a", "user.login"), ev("b", "user.delete"))
	if err != nil || len(rs) != 2 || rs[0].Seq != f.start || rs[1].Seq != f.start+1 {
		t.Fatalf("Append = %v, %v; want the receipts of seqs %d and %d", rs, err, f.start, f.start+1)
	}
	if f.appended() != 2 {
		t.Errorf("log holds %d events after a retried append, want 2", f.log.Size())
	}
}

func TestBatcherFlushCloseAndBackpressure(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	var failed atomic.Int32
	b := c.NewBatcher(client.BatcherOptions{MaxBatch: 40, MaxDelay: 20 * time.Millisecond, OnError: func(evs []event.Event, err error) { failed.Add(int32(len(evs))) }})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := b.Append(ctx, ev(fmt.Sprintf("g%d", g), "user.login")); err != nil {
					t.Error(err)
					return
				}
				_ = i
			}
		}()
	}
	wg.Wait()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f.appended() != 400 {
		t.Fatalf("after Flush the log holds %d events, want 400", f.log.Size())
	}
	// One bad event fails alone and is reported; the rest are stored.
	b.Append(ctx, ev("x", "user.login"))
	b.Append(ctx, event.Event{Action: "user.login"})
	b.Append(ctx, ev("y", "user.login"))
	if err := b.Close(ctx); err == nil {
		t.Error("Close after a rejected event = nil, want its error")
	}
	if f.appended() != 402 || failed.Load() != 1 {
		t.Errorf("log holds %d events and %d failed, want 402 and 1", f.log.Size(), failed.Load())
	}
	if _, err := b.Append(ctx, ev("z", "user.login")); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

// A full buffer refuses with ErrBufferFull instead of dropping silently.
func TestBatcherNoBlockRefusesWhenFull(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release // the server is stuck
			h.ServeHTTP(w, r)
		})
	})
	c := f.client(t, client.Options{})
	ctx := context.Background()
	b := c.NewBatcher(client.BatcherOptions{MaxBatch: 1, MaxDelay: time.Millisecond, Buffer: 3, NoBlock: true})
	var refused int
	for range 10 {
		if _, err := b.Append(ctx, ev("a", "user.login")); errors.Is(err, client.ErrBufferFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if refused == 0 || f.appended()+int64(refused) != 10 {
		t.Errorf("refused %d, stored %d: want some refused and every other one stored", refused, f.log.Size())
	}
}

func TestMonitorDetectsFork(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "checkpoint")
	m, err := c.NewMonitor(f.vkey, state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, ev("a", "user.login"), ev("b", "user.login")); err != nil {
		t.Fatal(err)
	}
	if cp, err := m.Check(ctx); err != nil || cp.Size != f.start+2 {
		t.Fatalf("first Check = %v, %v", cp, err)
	}
	for range 3 {
		if _, err := c.Append(ctx, ev("c", "user.update")); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Check(ctx); err != nil {
			t.Fatalf("Check after growth = %v", err)
		}
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	// Another server with the same signing key and a different history of
	// more events: each checkpoint is validly signed, but it does not
	// extend the one the monitor saw.
	forkURL, forkKey := forkedServer(t, f.loc, 6)
	fc, err := client.New(forkURL, forkKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fm, err := fc.NewMonitor(f.vkey, state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fm.Check(ctx); !errors.Is(err, client.ErrFork) {
		t.Fatalf("Check against a forked history = %v, want ErrFork", err)
	}
	if b, _ := os.ReadFile(state); string(b) != string(saved) {
		t.Error("the saved checkpoint was replaced after a fork; it is the evidence")
	}
}

// forkedServer starts a server whose log "acme" is signed with the key of
// the log in the store at loc but holds n other events, and returns its
// URL and a key.
func forkedServer(t *testing.T, loc string, n int) (string, string) {
	t.Helper()
	ctx := context.Background()
	orig, err := openAt(ctx, loc, false, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ol, err := orig.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	origin := ol.Origin()
	keys := loc
	if isURL(loc) {
		// The key is sealed in the database: a copy of the log in a
		// data directory holds it in a file. The copy stops at an
		// event tampered with, with the log and its key made.
		keys = filepath.Join(t.TempDir(), "copy")
		cp, err := trail.Init(ctx, keys, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trail.Copy(ctx, orig, cp, trail.CopyOptions{Logs: []string{"acme"}}); err != nil {
			t.Logf("copy the log to read its key: %v", err)
		}
		if err := cp.Close(); err != nil {
			t.Fatal(err)
		}
	}
	orig.Close()
	fork := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fork, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(keys, "keys", "acme.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fork, "keys", "acme.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := trail.Init(ctx, fork, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "acme", origin) // reuses the copied key
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := l.Append(ctx, ev(fmt.Sprintf("other%d", i), "user.delete")); err != nil {
			t.Fatal(err)
		}
	}
	secret, _, err := db.CreateKey(ctx, testAdmin, "acme", "fork", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(db, server.Options{}))
	t.Cleanup(srv.Close)
	return srv.URL, secret
}

func newKeyPair(name string) (string, string, error) { return merkle.NewKey(name) }

func TestVerifyLog(t *testing.T) {
	backends.Run(t, testVerifyLog)
}

func testVerifyLog(t *testing.T, b backends.Backend) {
	f := newFixtureAt(t, b.New(t), nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	for i := range 30 {
		if _, err := c.Append(ctx, ev(fmt.Sprintf("u%d", i), "user.login"), ev("admin", "user.delete")); err != nil {
			t.Fatal(err)
		}
	}
	saved, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, ev("late", "user.update")); err != nil {
		t.Fatal(err)
	}
	cp, err := c.Verify(ctx, f.vkey, saved, nil)
	if err != nil || cp.Size != f.start+61 {
		t.Fatalf("Verify = %v, %v; want a checkpoint of %d events", cp, err, f.start+61)
	}
	// Another key's signature does not verify.
	_, otherKey, _ := newKeyPair("elsewhere/acme")
	if _, err := c.Verify(ctx, otherKey, nil, nil); !errors.Is(err, client.ErrNotVerified) {
		t.Errorf("Verify with another key = %v, want ErrNotVerified", err)
	}
	// A server whose events were rewritten after signing is caught.
	err = b.Tamper(t, f.loc).EditEvents(ctx, "acme", 7, 8, func(evs []*event.Event) []*event.Event {
		evs[0].Actor.ID = "mallory"
		return evs
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, f.vkey, nil, nil); !errors.Is(err, client.ErrNotVerified) {
		t.Errorf("Verify of a rewritten log = %v, want ErrNotVerified", err)
	}
	// A history that does not extend the saved checkpoint is a fork.
	forkURL, forkKey := forkedServer(t, f.loc, 70)
	fc, err := client.New(forkURL, forkKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Verify(ctx, f.vkey, saved, nil); !errors.Is(err, client.ErrFork) {
		t.Errorf("Verify of a forked log against the saved checkpoint = %v, want ErrFork", err)
	}
}

// Each filter of api.Query reaches the server through its URL and selects
// there what it selects in the library.
func TestSearchFiltersReachServer(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	failed := ev("u_2", "user.login.failed")
	failed.Outcome, failed.Reason, failed.Source = event.Failure, "account locked", event.Source{IP: "203.0.113.7"}
	if _, err := c.Append(ctx, ev("u_1", "user.login"), failed); err != nil {
		t.Fatal(err)
	}
	mid := time.Now()
	rs, err := c.Append(ctx, ev("u_1", "user.delete"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    api.Query
		want string
	}{
		{api.Query{Actor: "u_1"}, "user.delete user.login"},
		{api.Query{Action: "user.login.*"}, "user.login.failed"},
		{api.Query{Outcome: event.Failure}, "user.login.failed"},
		{api.Query{IP: "203.0.113.7"}, "user.login.failed"},
		{api.Query{TargetType: "user", TargetID: "u_7"}, "user.delete user.login.failed user.login"},
		{api.Query{Text: "locked"}, "user.login.failed"},
		{api.Query{Since: mid, ExcludeAction: "trail.*"}, "user.delete"},
		{api.Query{Until: mid, Actor: "u_1"}, "user.login"},
		{api.Query{Cursor: strconv.FormatInt(rs[0].Seq, 10), ExcludeAction: "trail.*", Limit: 1}, "user.login.failed"},
	} {
		page, err := c.SearchPage(ctx, tc.q)
		if err != nil {
			t.Fatalf("SearchPage(%+v) = %v", tc.q, err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.Action)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("SearchPage(%+v) = %v, want %s", tc.q, got, tc.want)
		}
	}

	// A filter the server refuses is an *APIError naming it, not damage.
	_, err = c.SearchPage(ctx, api.Query{Limit: 20000})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "invalid_parameter" || apiErr.Field != "limit" || errors.Is(err, client.ErrDamaged) {
		t.Errorf("SearchPage(limit 20000) = %#v, want a 400 invalid_parameter naming limit, not ErrDamaged", err)
	}
}

// An event whose metadata is not JSON is refused before anything is sent,
// naming its position.
func TestAppendNamesUnencodableEvent(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	bad := ev("a", "user.login")
	bad.Metadata = []byte("{")
	_, err := c.Append(context.Background(), ev("a", "user.login"), bad)
	if err == nil || !strings.HasPrefix(err.Error(), "event 1: ") {
		t.Errorf("Append(good, bad metadata) = %v, want an error naming event 1", err)
	}
	if f.appended() != 0 {
		t.Errorf("%d events stored, want none", f.appended())
	}
}

// endless is a body without end.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// A server whose answer has no end is refused once the answer passes
// what the API ever sends, rather than read until memory runs out.
func TestAnswerWithoutEnd(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, endless{})
	}))
	defer srv.Close()
	defer client.SetMaxAnswer(1 << 20)() // 256 MiB takes long under the race detector
	c, err := client.New(srv.URL, "trail_k_s", client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than any answer") {
		t.Errorf("Checkpoint from an endless answer = %v, want an error saying it is too large", err)
	}
	if _, err := c.Log(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than any answer") {
		t.Errorf("Log from an endless answer = %v, want an error saying it is too large", err)
	}
}

// A search page whose events are not stored events (a server that
// answers {} for each, say) is refused, not printed as events.
func TestSearchPageNotStored(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"events":[{"action":"A","seq":-1}]}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "trail_k_s", client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.SearchPage(context.Background(), api.Query{}); err == nil || !strings.Contains(err.Error(), "not a stored event") {
		t.Errorf("SearchPage of a page of non-events = %+v, %v; want an error saying so", p, err)
	}
}

// AppendIdempotent: the same key and events store once, whoever retries;
// the same key with other events is refused.
func TestAppendIdempotentKey(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	first, err := c.AppendIdempotent(ctx, "order-77", ev("a", "user.login"), ev("b", "user.login"))
	if err != nil {
		t.Fatal(err)
	}
	other := f.client(t, client.Options{})
	again, err := other.AppendIdempotent(ctx, "order-77", ev("a", "user.login"), ev("b", "user.login"))
	if err != nil || !slices.Equal(again, first) {
		t.Errorf("retry under the same key = %v, %v; want the first receipts %v", again, err, first)
	}
	var apiErr *client.APIError
	if _, err := c.AppendIdempotent(ctx, "order-77", ev("c", "user.login")); !errors.As(err, &apiErr) || apiErr.Code != "idempotency_conflict" {
		t.Errorf("same key, other events = %v, want idempotency_conflict", err)
	}
	for _, bad := range []string{"", "has space", "line\n", strings.Repeat("k", 256)} {
		if _, err := c.AppendIdempotent(ctx, bad, ev("d", "user.login")); err == nil || !strings.Contains(err.Error(), "idempotency key") {
			t.Errorf("AppendIdempotent with key %q = %v, want an error naming the idempotency key", bad, err)
		}
	}
	if f.appended() != 2 {
		t.Errorf("log holds %d events, want 2", f.appended())
	}
}

// A key no server could have issued, such as one read from a file with
// its line end, is refused at once rather than retried.
func TestNewRefusesMalformedKey(t *testing.T) {
	for _, key := range []string{"trail_abc\n", "trail abc", "trail_\x00"} {
		if _, err := client.New("http://127.0.0.1:1", key, client.Options{}); err == nil || !strings.Contains(err.Error(), "API key") {
			t.Errorf("New with key %q = %v, want an error naming the API key", key, err)
		}
	}
}

// A batch too large for one request is sent in parts, not lost.
func TestBatcherSplitsTooLarge(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	b := c.NewBatcher(client.BatcherOptions{MaxBatch: 100, MaxDelay: time.Second})
	big := `{"blob":"` + strings.Repeat("x", 30000) + `"}`
	for i := range 100 {
		e := ev(fmt.Sprintf("u%d", i), "user.login")
		e.Metadata = []byte(big)
		if _, err := b.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want every event stored", err)
	}
	if f.appended() != 100 {
		t.Errorf("log holds %d events, want 100", f.appended())
	}
}

// Without OnError, a failure is logged, not dropped silently; Close may
// be called twice at once, and returns when its context ends.
func TestBatcherReportsAndCloses(t *testing.T) {
	release := make(chan struct{})
	var stuck atomic.Bool
	f := newFixture(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stuck.Load() {
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	defer close(release)
	c := f.client(t, client.Options{})
	ctx := context.Background()
	var logs syncBuffer
	b := c.NewBatcher(client.BatcherOptions{MaxDelay: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b.Append(ctx, event.Event{Action: "user.login"})
	if err := b.Flush(ctx); err == nil {
		t.Error("Flush after a rejected event = nil")
	}
	if !strings.Contains(logs.String(), "events not stored") || !strings.Contains(logs.String(), "actor.id") {
		t.Errorf("logs = %q, want the failure", logs.String())
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close = %v", err)
			}
		})
	}
	wg.Wait()

	stuck.Store(true)
	b = c.NewBatcher(client.BatcherOptions{MaxDelay: time.Millisecond})
	b.Append(ctx, ev("a", "user.login"))
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with the server stuck = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v past its context", d)
	}
}

// syncBuffer is a strings.Builder safe for a logger's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A server that cannot be reached is named in the error, which keeps its
// cause, and not as the request the client happened to make.
func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New("http://"+addr, "trail_0123456789abcdef_key", client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(context.Background(), event.Event{Actor: event.Actor{ID: "a"}, Action: "x.y"})
	if err == nil || !strings.HasPrefix(err.Error(), "trail server http://"+addr+" cannot be reached: ") ||
		!errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "Post ") {
		t.Errorf("Append to a server that is not there = %v, want it named, connection refused, without the request", err)
	}
}
