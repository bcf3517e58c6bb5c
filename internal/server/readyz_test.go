package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/store/storetest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// /readyz says whether appends could commit now: not while another
// connection holds the database's write lock, again once it lets go.
func TestReadyzChecksWritable(t *testing.T) {
	backends.Run(t, testReadyzChecksWritable)
}

func testReadyzChecksWritable(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	e.ok(200, "GET", "/readyz", "", "", nil, nil)

	unlock, err := b.Tamper(t, e.loc).LockWrites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.fails(503, "unavailable", "", "GET", "/readyz", "", "", nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %v to say not ready", d)
	}
	e.ok(200, "GET", "/healthz", "", "", nil, nil) // the process is up all the same
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	e.ok(200, "GET", "/readyz", "", "", nil, nil)
}

// waitReady polls /readyz until it answers want, for up to ten seconds,
// and returns the last answer.
func (e *env) waitReady(want int) response {
	e.t.Helper()
	var r response
	within(e.t, 10*time.Second, fmt.Sprintf("GET /readyz answers %d", want), func() (bool, string) {
		r = e.do("GET", "/readyz", "", "", nil)
		return r.status == want, fmt.Sprintf("%d %s", r.status, r.body)
	})
	return r
}

// unwritable makes files unwritable until the returned function is
// called: by their mode for an ordinary user, and for root, whom modes do
// not stop, with the immutable attribute (chattr +i), which stops writes
// through descriptors opened before too.
func unwritable(t *testing.T, paths ...string) (undo func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		for _, p := range paths {
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
		}
		undo = func() {
			for _, p := range paths {
				os.Chmod(p, 0o600)
			}
		}
		t.Cleanup(undo)
		return undo
	}
	undo = func() {
		for _, p := range paths {
			exec.Command("chattr", "-i", p).Run()
		}
	}
	t.Cleanup(undo) // else t.TempDir cannot remove them
	for _, p := range paths {
		if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
			t.Skipf("running as root, and chattr +i %s failed (%v: %s): no way to make a file unwritable", p, err, out)
		}
	}
	return undo
}

// While the database files cannot be written, /readyz says so, although
// no append came to fail; once they can again, it says ready by itself.
func TestReadyzUnwritableFiles(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(200, "GET", "/readyz", "", "", nil, nil)
	db := filepath.Join(e.db.Dir(), trail.DatabaseFile)
	undo := unwritable(t, db, db+"-wal")
	r := e.waitReady(503)
	var ae apiErr
	if err := json.Unmarshal(r.body, &ae); err != nil || ae.Error.Code != "unavailable" || !strings.Contains(ae.Error.Message, "cannot be written") {
		t.Errorf("GET /readyz = %s, want code unavailable and a message saying the files cannot be written", r.body)
	}
	undo()
	e.waitReady(200)
}

// An append after the data directory was removed is refused with 503 and
// a message saying what happened; /readyz says the same.
func TestDataDirectoryRemoved(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")), nil)
	var created struct {
		ID string `json:"id"`
	}
	e.ok(201, "POST", "/v1/keys", "acme-admin", "application/json", []byte(`{"name":"ci","scopes":["append"]}`), &created)
	if err := os.RemoveAll(e.db.Dir()); err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, path, key, body string }{
		{"POST", "/v1/events", "acme-append", ev("bob", "user.login")},
		{"POST", "/v1/events", "acme-append", ev("bob", "user.login")},
		{"POST", "/v1/keys", "acme-admin", `{"name":"ci2","scopes":["append"]}`},
		{"DELETE", "/v1/keys/" + created.ID, "acme-admin", ""},
		{"GET", "/readyz", "", ""},
	} {
		ae := e.fails(503, "unavailable", "", req.method, req.path, req.key, "application/json", []byte(req.body))
		if !strings.Contains(ae.Error.Message, "removed or replaced") {
			t.Errorf("%s %s: message %q, want it to say the data directory was removed or replaced", req.method, req.path, ae.Error.Message)
		}
	}
}

// When the indexer fails, /readyz says so with the reason and the
// metrics count it, until the indexer, retrying by itself, gets through.
func TestReadyzIndexerFailing(t *testing.T) {
	backends.Run(t, testReadyzIndexerFailing)
}

func testReadyzIndexerFailing(t *testing.T, b backends.Backend) {
	e := newEnvOn(t, b, server.Options{})
	// Another program refuses what only the indexer writes.
	restore, err := b.Tamper(t, e.loc).FailIndexing(context.Background())
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%s has no indexer apart from its commits, which write the indexes with the events: %v", b.Name, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.ok(201, "POST", "/v1/events", "acme-append", "application/json", []byte(ev("alice", "user.login")), nil)
	r := e.waitReady(503)
	if !strings.Contains(string(r.body), "index") || !strings.Contains(string(r.body), storetest.IndexingRefused) {
		t.Errorf("GET /readyz = %s, want the indexer's failure and its cause", r.body)
	}
	m := e.scrape()
	if m["trail_index_failures_total"] < 1 || m[`trail_index_lag_events{log="acme"}`] != 1 {
		t.Errorf("metrics: trail_index_failures_total %v, trail_index_lag_events{log=\"acme\"} %v; want at least 1 and 1",
			m["trail_index_failures_total"], m[`trail_index_lag_events{log="acme"}`])
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	e.waitReady(200)
	m = e.scrape()
	if m[`trail_index_lag_events{log="acme"}`] != 0 || m[`trail_index_lag_events{log="globex"}`] != 0 {
		t.Errorf("after recovery: trail_index_lag_events acme %v, globex %v; want 0", m[`trail_index_lag_events{log="acme"}`], m[`trail_index_lag_events{log="globex"}`])
	}
}
