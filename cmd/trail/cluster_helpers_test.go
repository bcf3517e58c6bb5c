package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// The helpers in this file run several trail serve processes, the nodes of
// a cluster, on one PostgreSQL store, drive appends through all of them at
// once and check what they acknowledged against what the store holds.

// kill ends the process with SIGKILL, as a crash would.
func (s *served) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Kill()
	s.cmd.Wait()
	close(s.done)
}

// pgStore returns a fresh PostgreSQL database for t and a path, not yet
// existing, for its master key file.
func pgStore(t *testing.T) (store, keyFile string) {
	t.Helper()
	return pgtest.DB(t), filepath.Join(t.TempDir(), "master.key")
}

// node is one trail serve of a cluster. Its address stays the same when
// it is restarted.
type node struct {
	name string
	addr string // host:port
	url  string
	mu   sync.Mutex
	proc *served
}

// cluster is a PostgreSQL store with a log, "default", and the nodes
// serving it.
type cluster struct {
	t              *testing.T
	store, keyFile string
	vkey           string // the log's verifier key
	key            string // an append and read key of the log
	admin          string // an admin key of the log
	nodes          []*node
	hc             *http.Client
}

// createdKeyRE finds the new key's id in what trail keys create prints.
var createdKeyRE = regexp.MustCompile(`Created key (\S+) `)

// createKey makes a key of the log with scopes through the CLI on the
// store, and returns its secret and id.
func (c *cluster) createKey(scopes, name string) (secret, id string) {
	c.t.Helper()
	r := ok(c.t, "", "keys", "create", "--store", c.store, "--master-key-file", c.keyFile, "--log", "default", "--scope", scopes, "--name", name)
	m := createdKeyRE.FindStringSubmatch(r.stdout)
	if m == nil {
		c.t.Fatalf("trail keys create printed %q, want the key's id", r.stdout)
	}
	ls := lines(r.stdout)
	return ls[len(ls)-1], m[1]
}

// newCluster returns the cluster of n nodes on store, started at once
// with --migrate after init made its schema and log "default".
func newCluster(t *testing.T, store, keyFile string, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, store: store, keyFile: keyFile}
	c.initLog()
	c.startNodes(n)
	return c
}

// initLog creates the log "default" with trail init, and its keys.
func (c *cluster) initLog() {
	t := c.t
	t.Helper()
	r := ok(t, "", "--store", c.store, "--master-key-file", c.keyFile, "init", "--log", "default", "--origin", "example.com/trail/cluster")
	m := verifierKeyRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("trail init printed no verifier key:\n%s", r.stdout)
	}
	c.vkey = m[1]
	c.key, _ = c.createKey("append,read", "writer")
	c.admin, _ = c.createKey("admin", "admin")
}

// startNodes starts n nodes at once, each with --migrate.
func (c *cluster) startNodes(n int) {
	c.t.Helper()
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
		c.t.Cleanup(c.hc.CloseIdleConnections)
	}
	nodes := make([]*node, n)
	var wg sync.WaitGroup
	for i := range nodes {
		nodes[i] = &node{name: string(rune('A' + i))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i].proc = c.serveNode("127.0.0.1:0", "--migrate")
		}()
	}
	wg.Wait()
	for _, nd := range nodes {
		if nd.proc == nil {
			c.t.FailNow() // serveNode failed the test
		}
		nd.url = nd.proc.url
		nd.addr = strings.TrimPrefix(nd.url, "http://")
	}
	c.nodes = nodes
}

// serveNode starts trail serve on the store at addr. It may run in a
// goroutine of its own: on failure it marks the test failed and returns nil.
func (c *cluster) serveNode(addr string, extra ...string) *served {
	args := append([]string{"serve", "--store", c.store, "--master-key-file", c.keyFile, "--addr", addr}, extra...)
	s := &served{cmd: exec.Command(trailBin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err == nil {
		err = s.cmd.Start()
	}
	if err != nil {
		c.t.Errorf("start trail serve: %v", err)
		return nil
	}
	c.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			s.cmd.Wait()
			close(s.done)
		}
	})
	out := bufio.NewReader(stdout)
	var banner strings.Builder
	for {
		line, err := out.ReadString('\n')
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			s.url = m[1]
			break
		}
		banner.WriteString(line)
		if err != nil {
			s.kill(c.t)
			c.t.Errorf("trail %s printed %q (%v), want its address; stderr:\n%s", strings.Join(args, " "), banner.String(), err, s.stderr)
			return nil
		}
	}
	s.banner = banner.String()
	go io.Copy(io.Discard, out)
	return s
}

// restart starts nd again at its address after it was killed.
func (c *cluster) restart(nd *node) {
	c.t.Helper()
	s := c.serveNode(nd.addr)
	if s == nil {
		c.t.FailNow()
	}
	nd.mu.Lock()
	nd.proc = s
	nd.mu.Unlock()
}

// do sends a request with key to nd and returns the status and body, or
// the error of a request that got no answer.
func (c *cluster) do(nd *node, method, path, key, body string, header ...string) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(method, nd.url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// get is do of a GET that must answer 200; it returns the body.
func (c *cluster) get(nd *node, path, key string) []byte {
	c.t.Helper()
	st, b, _, err := c.do(nd, "GET", path, key, "")
	if err != nil || st != http.StatusOK {
		c.t.Fatalf("GET %s on node %s = %d %s (%v), want 200", path, nd.name, st, b, err)
	}
	return b
}

// within polls ok every 20 ms until it holds, and fails the test if it
// does not within d; ok says what it saw.
func within(t *testing.T, d time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		done, msg := ok()
		if done {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ackLedger records what the writers sent and what each request got.
type ackLedger struct {
	mu sync.Mutex
	// acked maps the marker of each acknowledged event to its receipt.
	acked map[string]api.Receipt
	// unsure holds the markers of events whose request got no answer
	// (the node died) or an answer saying that whether it was stored is
	// unknown (trail.ErrOutcomeUnknown): they may be in the log.
	unsure map[string]bool
	// refused holds the markers of events whose request got an error
	// answer saying nothing was stored, with that answer.
	refused map[string]string
	// unknown counts the events of answers saying their outcome is
	// unknown.
	unknown int
	// statuses counts the answers by status; 0 for no answer.
	statuses map[int]int
	// ackedAfter counts acknowledged requests by node among those sent
	// since the last markAfter (epoch counts the calls): a request sent
	// before it may be answered, and its answer read, after it.
	ackedAfter map[string]int
	after      bool
	epoch      int
}

func newLedger() *ackLedger {
	return &ackLedger{acked: map[string]api.Receipt{}, unsure: map[string]bool{}, refused: map[string]string{},
		statuses: map[int]int{}, ackedAfter: map[string]int{}}
}

// markAfter starts counting acknowledgements anew in ackedAfter.
func (l *ackLedger) markAfter() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.after = true
	l.epoch++
	l.ackedAfter = map[string]int{}
}

// acks returns the number of acknowledged events and a copy of ackedAfter.
func (l *ackLedger) acks() (int, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for k, v := range l.ackedAfter {
		m[k] = v
	}
	return len(l.acked), m
}

// writerEvent is the event the writers append: action cluster.append, by
// the writer, with the event's unique marker as its target's id.
func writerEvent(writer, marker string) string {
	return fmt.Sprintf(`{"action":"cluster.append","actor":{"id":%q,"type":"service"},"outcome":"success","targets":[{"type":"marker","id":%q}]}`, writer, marker)
}

// writers runs n writers appending to the cluster's log until stop is
// closed: each request is one event or a batch of 2 to 6, sent to the
// nodes in turn; a request that gets no answer (its node is down) is
// followed at once by the next, to the next node. Each writer sleeps
// pause after an error answer. It returns when every writer has.
func (c *cluster) writers(n int, stop <-chan struct{}, led *ackLedger, pause time.Duration) {
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writer := fmt.Sprintf("writer-%02d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nd := c.nodes[(w+i)%len(c.nodes)]
				count := 1
				if i%2 == 1 {
					count = 2 + (w+i)%5
				}
				markers := make([]string, count)
				for j := range markers {
					markers[j] = fmt.Sprintf("%s-%d-%d", writer, i, j)
				}
				st, err := c.send(nd, writer, markers, led)
				if err != nil {
					c.t.Error(err)
					return
				}
				if st != 0 && st != http.StatusCreated {
					time.Sleep(pause)
				}
			}
		}()
	}
	wg.Wait()
}

// send appends the events of writer with markers to nd, one event alone
// or several in a batch, and records what it got in led; it returns the
// answer's status, 0 for none. Its error is a malformed 201 answer.
func (c *cluster) send(nd *node, writer string, markers []string, led *ackLedger) (int, error) {
	evs := make([]string, len(markers))
	for j, m := range markers {
		evs[j] = writerEvent(writer, m)
	}
	body := evs[0]
	if len(evs) > 1 {
		body = `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	led.mu.Lock()
	epoch := led.epoch
	led.mu.Unlock()
	st, b, _, err := c.do(nd, "POST", "/v1/events", c.key, body)
	if err != nil {
		st = 0
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	led.statuses[st]++
	switch {
	case st == 0:
		for _, m := range markers {
			led.unsure[m] = true
		}
	case st == http.StatusCreated:
		var rs api.Receipts
		if err := json.Unmarshal(b, &rs); err != nil || len(rs.Events) != len(markers) {
			return st, fmt.Errorf("POST /v1/events of %d events on node %s = 201 %s, want %d receipts", len(markers), nd.name, b, len(markers))
		}
		for j, m := range markers {
			led.acked[m] = rs.Events[j]
		}
		if led.after && epoch == led.epoch {
			led.ackedAfter[nd.name]++
		}
	default:
		// An answer saying the store lost its connection while
		// committing (trail.ErrOutcomeUnknown) leaves the events unsure;
		// any other says nothing was stored.
		for _, m := range markers {
			if strings.Contains(string(b), trail.ErrOutcomeUnknown.Error()) {
				led.unknown++
				led.unsure[m] = true
			} else {
				led.refused[m] = fmt.Sprintf("%d %s", st, bytes.TrimSpace(b))
			}
		}
	}
	return st, nil
}

// checkLog checks the store's log against led: the tree is whole and
// verifies (trail verify), every acknowledged event is in it at its seq
// with its id, each seq once, and every other event in it is either an
// event whose request may have been stored (led.unsure) or Trail's record
// of a read by one of the log's keys. It returns the log's size.
func (c *cluster) checkLog(led *ackLedger) int64 {
	c.t.Helper()
	t := c.t
	v := ok(t, "", "verify", "--store", c.store, "--log", "default", "--verifier-key", c.vkey, "--index", "--json")
	var vr struct {
		Verified bool  `json:"verified"`
		Events   int64 `json:"events"`
	}
	if err := json.Unmarshal([]byte(lines(v.stdout)[0]), &vr); err != nil || !vr.Verified {
		t.Fatalf("trail verify --index --json printed %q (%v), want the log verified", v.stdout, err)
	}
	exp := ok(t, "", "export", "--store", c.store, "--log", "default", "--format", "ndjson")
	var stored []event.Event
	for _, l := range lines(exp.stdout) {
		if l == "" {
			continue
		}
		e, err := event.DecodeStored([]byte(l))
		if err != nil {
			t.Fatalf("trail export printed %q: %v", l, err)
		}
		stored = append(stored, e)
	}
	if int64(len(stored)) != vr.Events {
		t.Fatalf("trail export printed %d events, trail verify checked %d", len(stored), vr.Events)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	bySeq := map[int64]event.Event{}
	seen := map[string]int64{}
	extra, reads := 0, 0
	for i, e := range stored {
		if e.Seq != int64(i) {
			t.Fatalf("export's event %d has seq %d: a gap or a duplicate", i, e.Seq)
		}
		bySeq[e.Seq] = e
		if e.Action != "cluster.append" {
			if !strings.HasPrefix(e.Action, "trail.") {
				t.Errorf("seq %d is %s by %s, neither a writer's event nor Trail's record of a read", e.Seq, e.Action, e.Actor.ID)
			}
			reads++
			continue
		}
		if len(e.Targets) != 1 {
			t.Fatalf("seq %d: writer's event with %d targets", e.Seq, len(e.Targets))
		}
		m := e.Targets[0].ID
		if prev, dup := seen[m]; dup {
			t.Errorf("event %s stored twice: seqs %d and %d", m, prev, e.Seq)
		}
		seen[m] = e.Seq
		if _, ok := led.acked[m]; ok {
			continue
		}
		extra++
		if why, ok := led.refused[m]; ok {
			t.Errorf("event %s is stored at seq %d, but its request was answered %s", m, e.Seq, why)
		} else if !led.unsure[m] {
			t.Errorf("event %s is stored at seq %d, but no writer sent it", m, e.Seq)
		}
	}
	seqs := map[int64]string{}
	for m, r := range led.acked {
		if other, dup := seqs[r.Seq]; dup {
			t.Errorf("seq %d acknowledged for two events: %s and %s", r.Seq, other, m)
		}
		seqs[r.Seq] = m
		e, ok := bySeq[r.Seq]
		switch {
		case !ok:
			t.Errorf("event %s acknowledged as seq %d, but the log has %d events", m, r.Seq, len(stored))
		case e.ID != r.ID || e.Action != "cluster.append" || e.Targets[0].ID != m:
			t.Errorf("event %s acknowledged as seq %d id %s; the log has there %s %s %v", m, r.Seq, r.ID, e.ID, e.Action, e.Targets)
		}
	}
	t.Logf("log of %d events: %d acknowledged, %d from requests that got no answer or one saying their outcome is unknown, %d records of reads; answers by status %v, %d events answered that their outcome is unknown",
		len(stored), len(led.acked), extra, reads, led.statuses, led.unknown)
	return int64(len(stored))
}

// sameCheckpoint waits until every node serves the same checkpoint, of at
// least size events, and returns it.
func (c *cluster) sameCheckpoint(size int64, d time.Duration) string {
	c.t.Helper()
	var cp string
	within(c.t, d, "every node serves the same checkpoint", func() (bool, string) {
		var got []string
		for _, nd := range c.nodes {
			st, b, _, err := c.do(nd, "GET", "/v1/checkpoint", c.key, "")
			if err != nil || st != http.StatusOK {
				return false, fmt.Sprintf("node %s: %d %s %v", nd.name, st, b, err)
			}
			got = append(got, string(b))
		}
		for _, g := range got[1:] {
			if g != got[0] {
				return false, fmt.Sprintf("checkpoints %q", got)
			}
		}
		cp = got[0]
		n, err := checkpointSize(cp)
		return err == nil && n >= size, fmt.Sprintf("checkpoint %q, want size %d (%v)", cp, size, err)
	})
	return cp
}

// checkpointSize reads the tree size, the second line, of a checkpoint.
func checkpointSize(cp string) (int64, error) {
	ls := strings.SplitN(cp, "\n", 3)
	if len(ls) < 3 {
		return 0, fmt.Errorf("malformed checkpoint %q", cp)
	}
	var n int64
	_, err := fmt.Sscan(ls[1], &n)
	return n, err
}

// spotCheck fetches up to n acknowledged events from nd, each with its
// inclusion proof, and verifies them against the log's verifier key.
func (c *cluster) spotCheck(nd *node, led *ackLedger, n int) {
	c.t.Helper()
	cl, err := client.New(nd.url, c.key, client.Options{MaxRetries: -1, HTTPClient: c.hc})
	if err != nil {
		c.t.Fatal(err)
	}
	led.mu.Lock()
	var sample []api.Receipt
	for _, r := range led.acked { // map order: a random sample
		if len(sample) == n {
			break
		}
		sample = append(sample, r)
	}
	led.mu.Unlock()
	for _, r := range sample {
		v, err := cl.Get(context.Background(), r.ID, c.vkey)
		if err != nil {
			c.t.Fatalf("GET /v1/events/%s (seq %d) on node %s: %v", r.ID, r.Seq, nd.name, err)
		}
		if v.Event.Seq != r.Seq {
			c.t.Fatalf("GET /v1/events/%s on node %s: seq %d, acknowledged as %d", r.ID, nd.name, v.Event.Seq, r.Seq)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// privatePG is a PostgreSQL server of a test's own, in a temporary
// directory, for a test that stops and starts it: the shared server of
// pgtest serves other tests meanwhile.
type privatePG struct {
	t        *testing.T
	bin, dir string
	port     int
	url      string
}

// startPrivatePG runs initdb in a new temporary directory and starts the
// server on a free port of 127.0.0.1, with its socket in that directory
// and fsync on. When running as root, the server runs as the user
// postgres, which owns the directory. Without initdb the test is skipped,
// or fails under CI=true.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no initdb under /usr/lib/postgresql/*/bin (CI=true requires it)")
		}
		t.Skip("no initdb under /usr/lib/postgresql/*/bin: install PostgreSQL's server to run this test")
	}
	p := &privatePG{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "trail-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.dir = dir
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown postgres %s: %v\n%s", dir, err, out)
		}
	}
	p.pg("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
	p.port = freePort(t)
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.start()
	t.Cleanup(func() {
		line := p.cmd("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop")
		exec.Command(line[0], line[1:]...).Run()
	})
	return p
}

// cmd is the command line that runs the PostgreSQL program name with
// args, as the user postgres when this process is root.
func (p *privatePG) cmd(name string, args ...string) []string {
	line := append([]string{filepath.Join(p.bin, name)}, args...)
	if os.Geteuid() == 0 {
		line = append([]string{"runuser", "-u", "postgres", "--"}, line...)
	}
	return line
}

// pg runs the PostgreSQL program name with args and fails the test if it
// fails.
func (p *privatePG) pg(name string, args ...string) {
	p.t.Helper()
	line := p.cmd(name, args...)
	if out, err := exec.Command(line[0], line[1:]...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s", strings.Join(line, " "), err, out)
	}
}

// start starts the server and waits until it accepts connections.
func (p *privatePG) start() {
	p.t.Helper()
	p.pg("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-w", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on", p.port, p.dir), "start")
}

// crash stops the server at once, as a crash would: no checkpoint, no
// waiting for clients.
func (p *privatePG) crash() {
	p.t.Helper()
	p.pg("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "-w", "stop")
}
