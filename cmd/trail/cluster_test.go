package main

import (
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
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

	// Every node has every event, with a valid proof.
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
	// The reads above are recorded in the log; the nodes catch up on them.
	cp := c.sameCheckpoint(size, time.Second)
	if n, _ := checkpointSize(cp); n != size {
		t.Errorf("the nodes serve a checkpoint of %d events, the store holds %d", n, size)
	}
}
