package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// The tests in this file run several trail serve processes on one
// PostgreSQL store, as a cluster behind a load balancer would, and check
// that together they are one log: every acknowledged event is stored once,
// at the seq its receipt gave, the tree has no gap, and each node serves
// what the others committed.

// Three nodes, started at once on an empty database while trail migrate
// runs too, take appends to one log from 16 writers at once; one node is
// killed (SIGKILL) midway and restarted. The others keep acknowledging,
// the restarted node serves and appends again, and afterwards the log
// holds exactly the acknowledged events (plus, possibly, those of requests
// the killed node never answered), each readable with a valid proof from
// every node, which all serve the same checkpoint.
func TestClusterAppends(t *testing.T) {
	t.Parallel()
	store, keyFile := pgStore(t)
	if err := trail.CreateMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, store: store, keyFile: keyFile}
	migrated := make(chan result, 1)
	go func() {
		// Not ok: it must not call t.Fatal outside the test's goroutine.
		migrated <- run(t, "", "migrate", "--store", store)
	}()
	c.startNodes(3)
	if r := <-migrated; r.code != 0 {
		t.Fatalf("trail migrate beside three trail serve --migrate: exit %d, stderr %s", r.code, r.stderr)
	}
	c.initLog()
	for _, nd := range c.nodes {
		within(t, 2*time.Second, "node "+nd.name+" serves the log init created after it started", func() (bool, string) {
			st, b, _, err := c.do(nd, "GET", "/v1/log", c.key, "")
			return err == nil && st == 200, string(b)
		})
	}

	led := newLedger()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writers(16, stop, led, 10*time.Millisecond)
	}()
	stopWriters := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()

	time.Sleep(1500 * time.Millisecond)
	victim := c.nodes[1]
	victim.proc.kill(t)
	led.markAfter()
	time.Sleep(1500 * time.Millisecond)
	_, during := led.acks()
	for _, nd := range []*node{c.nodes[0], c.nodes[2]} {
		if during[nd.name] == 0 {
			t.Errorf("node %s acknowledged no append while node %s was down", nd.name, victim.name)
		}
	}
	if during[victim.name] != 0 {
		t.Errorf("the killed node %s acknowledged %d appends", victim.name, during[victim.name])
	}
	c.restart(victim)
	led.markAfter()
	within(t, 10*time.Second, "the restarted node acknowledges appends again", func() (bool, string) {
		_, after := led.acks()
		return after[victim.name] > 0, "no append acknowledged by it yet"
	})
	time.Sleep(1500 * time.Millisecond)
	stopWriters()
	n, after := led.acks()
	t.Logf("%d events acknowledged; after the restart, acknowledged requests by node %v", n, after)
	if n < 1000 {
		t.Errorf("only %d events acknowledged in about 5 s by three nodes", n)
	}

	c.checkAll(led)
}

// What one node does, the others see: an event appended through node A is
// found, counted (by action, and in the overview) and streamed on node B
// within 1 s; a key revoked through A is refused by B and C, and ends a
// stream open on C, within 2 s; a request retried with its
// Idempotency-Key through other nodes gets the first receipts and stores
// nothing again; a viewer session started on A works on B until it is
// signed out on A.
func TestClusterVisibility(t *testing.T) {
	t.Parallel()
	store, keyFile := pgStore(t)
	c := newCluster(t, store, keyFile, 3)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	read, readID := c.createKey("read", "viewer")

	t.Run("append on A, read on B", func(t *testing.T) {
		c := *c
		c.t = t
		actor := fmt.Sprintf("vis-%d", time.Now().UnixNano())
		action := fmt.Sprintf("vis.e%d", time.Now().UnixNano())
		tail := c.openTail(b, "/v1/tail?actor="+actor, c.key)
		st, body, _, err := c.do(a, "POST", "/v1/events", c.key, fmt.Sprintf(`{"action":%q,"actor":{"id":%q,"type":"user"},"outcome":"success"}`, action, actor))
		if err != nil || st != http.StatusCreated {
			t.Fatalf("POST /v1/events on node A = %d %s (%v)", st, body, err)
		}
		start := time.Now()
		var rs api.Receipts
		if err := json.Unmarshal(body, &rs); err != nil || len(rs.Events) != 1 {
			t.Fatalf("POST /v1/events answered %s (%v)", body, err)
		}
		id := rs.Events[0].ID
		within(t, time.Second-time.Since(start), "node B's search finds the event appended through node A", func() (bool, string) {
			var p api.Page
			b := c.get(b, "/v1/events?actor="+actor, c.key)
			if err := json.Unmarshal(b, &p); err != nil {
				return false, err.Error()
			}
			return len(p.Events) == 1 && p.Events[0].ID == id, string(b)
		})
		within(t, time.Second-time.Since(start), "node B's overview counts the event appended through node A", func() (bool, string) {
			var st api.Stats
			b := c.get(b, "/v1/stats", c.key)
			if err := json.Unmarshal(b, &st); err != nil {
				return false, err.Error()
			}
			return st.IndexedTo > rs.Events[0].Seq, string(b)
		})
		within(t, time.Second-time.Since(start), "node B counts the event appended through node A", func() (bool, string) {
			var acts api.Actions
			b := c.get(b, "/v1/actions", c.key)
			if err := json.Unmarshal(b, &acts); err != nil {
				return false, err.Error()
			}
			for _, ac := range acts.Actions {
				if ac.Value == action {
					return ac.Count == 1, string(b)
				}
			}
			return false, string(b)
		})
		select {
		case msg, ok := <-tail:
			if !ok || !strings.Contains(msg, `"id":"`+id+`"`) {
				t.Fatalf("the tail on node B sent %q (open %t), want the event %s", msg, ok, id)
			}
			t.Logf("node B's tail streams the event after %v", time.Since(start).Round(time.Millisecond))
		case <-time.After(time.Second - time.Since(start)):
			t.Fatal("node B's tail did not stream the event appended through node A within 1 s")
		}
	})

	t.Run("idempotent retry through other nodes", func(t *testing.T) {
		c := *c
		c.t = t
		actor := fmt.Sprintf("idem-%d", time.Now().UnixNano())
		body := fmt.Sprintf(`{"events":[{"action":"idem.one","actor":{"id":%q}},{"action":"idem.two","actor":{"id":%q}}]}`, actor, actor)
		key := "retry-" + actor
		var first []byte
		for i, nd := range []*node{a, b, cc} {
			st, got, h, err := c.do(nd, "POST", "/v1/events", c.key, body, "Idempotency-Key", key)
			if err != nil || st != http.StatusCreated {
				t.Fatalf("POST /v1/events with Idempotency-Key on node %s = %d %s (%v), want 201", nd.name, st, got, err)
			}
			if i == 0 {
				first = got
				continue
			}
			if string(got) != string(first) || h.Get("Idempotent-Replayed") != "true" {
				t.Errorf("retry on node %s answered %s (Idempotent-Replayed %q); want node A's receipts %s, replayed", nd.name, got, h.Get("Idempotent-Replayed"), first)
			}
		}
		for _, nd := range c.nodes {
			var p api.Page
			if err := json.Unmarshal(c.get(nd, "/v1/events?actor="+actor, c.key), &p); err != nil || len(p.Events) != 2 {
				t.Errorf("node %s finds %d events of the request sent three times (%v), want 2", nd.name, len(p.Events), err)
			}
		}
	})

	t.Run("viewer session", func(t *testing.T) {
		c := *c
		c.t = t
		cookie := c.signIn(a, c.key)
		if st := c.withSession(b, "GET", "/v1/events?limit=1", cookie); st != http.StatusOK {
			t.Fatalf("GET /v1/events on node B with node A's session = %d, want 200", st)
		}
		if st := c.withSession(a, "POST", "/signout", cookie); st != http.StatusSeeOther {
			t.Fatalf("POST /signout on node A = %d, want 303", st)
		}
		within(t, 2*time.Second, "node B refuses the session signed out on node A", func() (bool, string) {
			st := c.withSession(b, "GET", "/v1/events?limit=1", cookie)
			return st == http.StatusUnauthorized, fmt.Sprintf("GET /v1/events = %d", st)
		})
	})

	// Last: it revokes the read key.
	t.Run("revoke on A", func(t *testing.T) {
		c := *c
		c.t = t
		for _, nd := range c.nodes {
			c.get(nd, "/v1/log", read) // cached now
		}
		tail := c.openTail(cc, "/v1/tail", read)
		st, body, _, err := c.do(a, "DELETE", "/v1/keys/"+readID, c.admin, "")
		if err != nil || st != http.StatusNoContent {
			t.Fatalf("DELETE /v1/keys/%s on node A = %d %s (%v), want 204", readID, st, body, err)
		}
		start := time.Now()
		if st, _, _, _ := c.do(a, "GET", "/v1/log", read, ""); st != http.StatusUnauthorized {
			t.Errorf("GET /v1/log on node A with the key it revoked = %d, want 401", st)
		}
		for _, nd := range []*node{b, cc} {
			within(t, 2*time.Second-time.Since(start), "node "+nd.name+" refuses the key revoked through node A", func() (bool, string) {
				st, body, _, err := c.do(nd, "GET", "/v1/log", read, "")
				return st == http.StatusUnauthorized, fmt.Sprintf("%d %s %v", st, body, err)
			})
		}
		deadline := time.After(2*time.Second - time.Since(start))
		last := ""
		for {
			select {
			case msg, ok := <-tail:
				if ok {
					last = msg
					continue
				}
				t.Logf("node C ended the revoked key's stream after %v", time.Since(start).Round(time.Millisecond))
				if !strings.Contains(last, "revoked") {
					t.Errorf("node C's stream of the revoked key ended with %q, want an error event saying the key was revoked", last)
				}
				return
			case <-deadline:
				t.Fatal("node C's stream of the key revoked through node A is still open after 2 s")
			}
		}
	})
}

// openTail opens path, a stream, on nd with key, waits until it started,
// and returns a channel of its messages' data lines ("event: error"
// included as such); the channel is closed when the stream ends.
func (c *cluster) openTail(nd *node, path, key string) <-chan string {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", nd.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		c.t.Fatalf("GET %s on node %s: %v", path, nd.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.t.Fatalf("GET %s on node %s = %s, want 200", path, nd.name, resp.Status)
	}
	r := bufio.NewReader(resp.Body)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, ":") {
		c.t.Fatalf("stream %s on node %s began %q (%v), want a comment", path, nd.name, l, err)
	}
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(l, "data: ") || strings.HasPrefix(l, "event: error") {
				ch <- strings.TrimSpace(l)
			}
		}
	}()
	return ch
}

// signIn signs in to the viewer on nd with key and returns the session
// cookie's value.
func (c *cluster) signIn(nd *node, key string) string {
	c.t.Helper()
	req, _ := http.NewRequest("POST", nd.url+"/signin", strings.NewReader(url.Values{"key": {key}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", nd.url)
	resp, err := c.noRedirect().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "trail_session" && ck.Value != "" {
			return ck.Value
		}
	}
	c.t.Fatalf("sign-in on node %s = %s, set no session cookie", nd.name, resp.Status)
	return ""
}

// withSession sends method path to nd with the session cookie and returns
// the status.
func (c *cluster) withSession(nd *node, method, path, cookie string) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, nd.url+path, nil)
	req.AddCookie(&http.Cookie{Name: "trail_session", Value: cookie})
	if method == "POST" {
		req.Header.Set("Origin", nd.url)
	}
	resp, err := c.noRedirect().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// noRedirect is the cluster's HTTP client, not following redirects.
func (c *cluster) noRedirect() *http.Client {
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// When PostgreSQL goes down under three nodes taking appends, appends and
// /readyz answer 503 and nothing acknowledged is lost; when it is back,
// the nodes take appends again by themselves, none restarted. PostgreSQL
// is a private server of this test's, crashed with pg_ctl stop -m
// immediate and started again about 2 s later.
func TestClusterRestartPostgres(t *testing.T) {
	t.Parallel()
	pg := startPrivatePG(t)
	c := newCluster(t, pg.url, filepath.Join(t.TempDir(), "master.key"), 3)

	led := newLedger()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writers(16, stop, led, 50*time.Millisecond)
	}()
	stopWriters := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()

	time.Sleep(1500 * time.Millisecond)
	pg.crash()
	down := time.Now()
	for i, nd := range c.nodes {
		within(t, 5*time.Second, "node "+nd.name+" refuses appends with 503 while PostgreSQL is down", func() (bool, string) {
			st, err := c.send(nd, "probe", []string{fmt.Sprintf("probe-down-%d-%d", i, time.Now().UnixNano())}, led)
			return err == nil && st == http.StatusServiceUnavailable, fmt.Sprintf("status %d (%v)", st, err)
		})
		st, body, _, err := c.do(nd, "GET", "/readyz", "", "")
		if err != nil || st != http.StatusServiceUnavailable {
			t.Errorf("GET /readyz on node %s while PostgreSQL is down = %d %s (%v), want 503", nd.name, st, body, err)
		}
	}
	time.Sleep(time.Until(down.Add(2 * time.Second)))
	pg.start()
	led.markAfter()
	for i, nd := range c.nodes {
		within(t, 15*time.Second, "node "+nd.name+" takes appends again after PostgreSQL restarted", func() (bool, string) {
			st, err := c.send(nd, "probe", []string{fmt.Sprintf("probe-up-%d-%d", i, time.Now().UnixNano())}, led)
			return err == nil && st == http.StatusCreated, fmt.Sprintf("status %d (%v)", st, err)
		})
		st, body, _, err := c.do(nd, "GET", "/readyz", "", "")
		if err != nil || st != http.StatusOK {
			t.Errorf("GET /readyz on node %s after PostgreSQL restarted = %d %s (%v), want 200", nd.name, st, body, err)
		}
	}
	time.Sleep(time.Second)
	stopWriters()
	_, after := led.acks()
	for _, nd := range c.nodes {
		if after[nd.name] == 0 {
			t.Errorf("node %s acknowledged no append after PostgreSQL restarted", nd.name)
		}
	}
	led.mu.Lock()
	for st, n := range led.statuses {
		if st != http.StatusCreated && st != http.StatusServiceUnavailable {
			example := ""
			for _, why := range led.refused {
				if strings.HasPrefix(why, fmt.Sprint(st)) {
					example = why
				}
			}
			t.Errorf("%d appends answered %d, such as %q; want only 201 or, while PostgreSQL was down, 503", n, st, example)
			for _, nd := range c.nodes {
				logged := 0
				for _, l := range lines(nd.proc.stderr.String()) {
					if strings.Contains(l, `"level":"ERROR"`) && logged < 3 {
						t.Logf("node %s: %s", nd.name, l)
						logged++
					}
				}
			}
		}
	}
	led.mu.Unlock()
	c.checkAll(led)
}

// The commands of a PostgreSQL store: init needs --master-key-file and
// creates it (mode 0600), the schema and the log; migrate creates the
// schema of an empty database and then has nothing to do; rekey seals the
// secrets under a new master key, after which the old one no longer
// opens the store for writing; verify, search, export and logs read the
// store without a master key.
func TestPostgresCommands(t *testing.T) {
	t.Parallel()
	store, keyFile := pgStore(t)

	r := run(t, "", "init", "--store", store, "--log", "default")
	if r.code != 2 || !strings.Contains(r.stderr, "--master-key-file") {
		t.Errorf("trail init --store postgres://… without --master-key-file: exit %d, stderr %q; want 2, naming --master-key-file", r.code, r.stderr)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatalf("the refused init made the master key file: %v", err)
	}
	r = ok(t, "", "init", "--store", store, "--master-key-file", keyFile, "--log", "default", "--origin", "example.com/trail/pg")
	for _, want := range []string{"Created the master key " + keyFile, "Created Trail's schema", `Created log "default"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trail init printed %q, want it to say %q", r.stdout, want)
		}
	}
	m := verifierKeyRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("trail init printed no verifier key:\n%s", r.stdout)
	}
	vkey := m[1]
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master key file after init: %v, %v; want mode 0600", info, err)
	}
	r = ok(t, "", "init", "--store", store, "--master-key-file", keyFile, "--log", "second")
	if strings.Contains(r.stdout, "Created the master key") || strings.Contains(r.stdout, "schema") {
		t.Errorf("a second init on the store printed %q; want only the new log", r.stdout)
	}
	if r := ok(t, "", "logs", "--store", store); !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "second") {
		t.Errorf("trail logs on the store = %q, want both logs", r.stdout)
	}
	if r := ok(t, "", "migrate", "--store", store); !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("trail migrate on the store init made = %q, want nothing to do", r.stdout)
	}

	t.Run("migrate", func(t *testing.T) {
		empty := pgtest.DB(t)
		r := ok(t, "", "migrate", "--store", empty)
		if !strings.Contains(r.stdout, "Created Trail's schema") {
			t.Errorf("trail migrate on an empty database = %q, want the schema created", r.stdout)
		}
		r = ok(t, "", "migrate", "--store", empty, "--json")
		var mr struct{ From, To int64 }
		if err := json.Unmarshal([]byte(r.stdout), &mr); err != nil || mr.From != mr.To || mr.To == 0 {
			t.Errorf("trail migrate --json again = %q (%v), want from = to, nothing to do", r.stdout, err)
		}
		if r := ok(t, "", "migrate", "--store", empty); !strings.Contains(r.stdout, "nothing to do") {
			t.Errorf("trail migrate again = %q, want nothing to do", r.stdout)
		}
		// The migrated database takes a log and events.
		ok(t, "", "init", "--store", empty, "--master-key-file", filepath.Join(t.TempDir(), "k"))
	})

	first := ok(t, events(t), "append", "--store", store, "--master-key-file", keyFile)
	n := len(lines(first.stdout))
	if n == 0 {
		t.Fatal("trail append printed no receipts")
	}
	if r := run(t, "", "keys", "create", "--store", store, "--scope", "read"); r.code == 0 || !strings.Contains(r.stderr, "master key") {
		t.Errorf("trail keys create without the master key: exit %d, stderr %q; want a failure naming the master key", r.code, r.stderr)
	}
	ok(t, "", "keys", "create", "--store", store, "--master-key-file", keyFile, "--scope", "read")

	// A rekey that fails (from a key that opens nothing) leaves no new
	// key file, which would pass for one that sealed the store.
	stray := filepath.Join(t.TempDir(), "master.key.stray")
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, err := ensureMasterKey(otherKey); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "rekey", "--store", store, "--master-key-file", otherKey, "--new-master-key-file", stray); r.code == 0 {
		t.Errorf("trail rekey from a master key that seals nothing of the store: exit 0")
	}
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed rekey left its new master key file: %v", err)
	}
	if r := run(t, "", "init", "--store", store, "--log", "second", "--master-key-file", stray); r.code == 0 {
		t.Errorf("trail init of a log with a new master key on a store sealed by another: exit 0")
	}
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused init left the master key file it made: %v", err)
	}

	newKey := filepath.Join(t.TempDir(), "master.key.new")
	r = ok(t, "", "rekey", "--store", store, "--master-key-file", keyFile, "--new-master-key-file", newKey)
	if !strings.Contains(r.stdout, "Sealed") {
		t.Errorf("trail rekey printed %q", r.stdout)
	}
	if info, err := os.Stat(newKey); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("new master key file after rekey: %v, %v; want mode 0600", info, err)
	}
	r = run(t, events(t), "append", "--store", store, "--master-key-file", keyFile)
	if r.code == 0 || !strings.Contains(r.stderr, "master key") {
		t.Errorf("trail append with the master key replaced by rekey: exit %d, stderr %q; want a failure about the master key", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("trail append with the old master key printed receipts %q", r.stdout)
	}
	again := ok(t, events(t), "append", "--store", store, "--master-key-file", newKey)
	if len(lines(again.stdout)) != n {
		t.Errorf("trail append with the new master key printed %d receipts, want %d", len(lines(again.stdout)), n)
	}

	// Reads need no master key. The log holds the appended events and
	// the record of the key's creation.
	total := 2*n + 1
	r = ok(t, "", "verify", "--store", store, "--verifier-key", vkey, "--index")
	if !strings.Contains(r.stdout, "verified") {
		t.Errorf("trail verify on the store = %q", r.stdout)
	}
	if evs := searchJSONArgs(t, "--store", store, "--limit", "10000"); len(evs) != total {
		t.Errorf("trail search on the store found %d events, want %d", len(evs), total)
	}
	if r := ok(t, "", "export", "--store", store); len(lines(r.stdout)) != total {
		t.Errorf("trail export on the store printed %d lines, want %d", len(lines(r.stdout)), total)
	}
	if r := ok(t, "", "logs", "--store", store, "--json"); !strings.Contains(r.stdout, vkey) {
		t.Errorf("trail logs --json on the store = %q, want the verifier key", r.stdout)
	}
}

// searchJSONArgs runs trail search --json with args and returns the events.
func searchJSONArgs(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	r := ok(t, "", append([]string{"search", "--json"}, args...)...)
	var out []map[string]any
	for _, l := range lines(r.stdout) {
		if l == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("trail search --json printed %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

// checkAll checks the cluster after a run: every node serves one
// checkpoint covering every acknowledged event, and 200 of them with valid
// proofs; the log holds each at its seq (checkLog); and the nodes catch up
// on the reads those checks recorded in the log.
func (c *cluster) checkAll(led *ackLedger) {
	c.t.Helper()
	last := int64(0)
	led.mu.Lock()
	for _, r := range led.acked {
		last = max(last, r.Seq+1)
	}
	led.mu.Unlock()
	c.sameCheckpoint(last, time.Second)
	for _, nd := range c.nodes {
		c.spotCheck(nd, led, 200)
	}
	size := c.checkLog(led)
	cp := c.sameCheckpoint(size, time.Second)
	if n, _ := checkpointSize(cp); n != size {
		c.t.Errorf("the nodes serve a checkpoint of %d events, the store holds %d", n, size)
	}
}

// TestServeWaitsForPostgres: a node started while PostgreSQL is down
// waits for it, saying so, and serves once it is up, rather than exit.
func TestServeWaitsForPostgres(t *testing.T) {
	t.Parallel()
	pg := startPrivatePG(t)
	c := newCluster(t, pg.url, filepath.Join(t.TempDir(), "master.key"), 0)
	pg.crash()
	cmd := exec.Command(trailBin, "serve", "--store", c.store, "--master-key-file", c.keyFile, "--addr", "127.0.0.1:0")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-exited:
		t.Fatalf("trail serve with PostgreSQL down exited (%v); want it to wait. stderr:\n%s", waitErr, stderr)
	case <-time.After(2 * time.Second):
	}
	if !strings.Contains(stderr.String(), "trying again") {
		t.Errorf("trail serve waiting for PostgreSQL says nothing of it; stderr:\n%s", stderr)
	}
	pg.start()
	var addr string
	select {
	case addr = <-urls:
	case <-exited:
		t.Fatalf("trail serve exited (%v) once PostgreSQL was back; stderr:\n%s", waitErr, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("trail serve did not listen within 30 s of PostgreSQL's start; stderr:\n%s", stderr)
	}
	within(t, 10*time.Second, "the node ready", func() (bool, string) {
		resp, err := http.Get(addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}
