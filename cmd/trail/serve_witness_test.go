package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// get sends a GET with key ("" for none) and returns the status, the
// Trail-Witnessed header and the body.
func get(t *testing.T, url, key string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Trail-Witnessed"), b
}

// sizeOf is the tree size a checkpoint states.
func sizeOf(t *testing.T, cp []byte) int64 {
	t.Helper()
	ls := strings.SplitN(string(cp), "\n", 3)
	if len(ls) < 3 {
		t.Fatalf("not a checkpoint: %q", cp)
	}
	n, err := strconv.ParseInt(ls[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// postEvents appends n events with action and returns the log's size
// after them, as the answer's last seq tells.
func postEvents(t *testing.T, url, key string, n int, action string) int64 {
	t.Helper()
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"actor":{"id":"u%d"},"action":%q}`, i, action))
	}
	code, body, err := request(t, "POST", url+"/v1/events", key, `{"events":[`+strings.Join(evs, ",")+`]}`)
	if err != nil || code != 201 {
		t.Fatalf("POST /v1/events = %d %s %v, want 201", code, body, err)
	}
	i := bytes.LastIndex(body, []byte(`"seq":`))
	j := bytes.IndexAny(body[i+6:], ",}")
	seq, err := strconv.ParseInt(string(body[i+6:i+6+j]), 10, 64)
	if err != nil {
		t.Fatalf("receipts %s: %v", body, err)
	}
	return seq + 1
}

// trail serve --witness-policy with two real witnesses, both needed: a
// trail witness process and an in-process witness that is stopped and
// restarted. Appends get cosigned by both and the API serves the
// cosigned checkpoint; with one witness down appends go on, /readyz says
// degraded and the lag metric grows; back, witnessing catches up. A copy
// of the data directory, grown with another history under the same
// signing key, is refused by both witnesses and never served as
// witnessed. A policy whose log lines miss the log keeps serve from
// starting. --public-tiles serves the checkpoint without a key.
func TestServeWitnessPolicy(t *testing.T) {
	data, vkey := initLog(t)
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "append,read").stdout)
	fork := filepath.Join(t.TempDir(), "fork")
	if err := os.CopyFS(fork, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(fork, "keys", "default.key"), 0o600); err != nil {
		t.Fatal(err)
	}

	wdata := filepath.Join(t.TempDir(), "witness")
	w1key, _ := witnessInit(t, wdata, "witness.example/w1")
	w1 := startWitness(t, false, wdata, vkey)
	w2 := witnesstest.New(t, "", vkey)
	text := fmt.Sprintf("log %s\nwitness w1 %s %s\nwitness w2 %s %s\ngroup both all w1 w2\nquorum both\n", vkey, w1key, w1.url, w2.VerifierKey, w2.URL)
	pfile := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(pfile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}

	// A policy for another log: serve refuses to start, saying why.
	_, otherKey, err := note.GenerateKey(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.txt")
	if err := os.WriteFile(other, []byte(strings.Replace(text, vkey, otherKey, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "serve", "--data", data, "--addr", "127.0.0.1:0", "--witness-policy", other); r.code == 0 || !strings.Contains(r.stderr, `log "default"`) || !strings.Contains(r.stderr, vkey) {
		t.Errorf("trail serve with a policy for another log: exit %d, stderr %q; want a failure naming log default and its key", r.code, r.stderr)
	}
	if r := run(t, "", "serve", "--data", data, "--addr", "127.0.0.1:0", "--witness-policy", filepath.Join(t.TempDir(), "missing.txt")); r.code != 2 {
		t.Errorf("trail serve --witness-policy MISSING: exit %d, want 2 (usage)", r.code)
	}

	s := serve(t, data, "--witness-policy", pfile, "--public-tiles")
	size := postEvents(t, s.url, key, 30, "user.login")
	within(t, 15*time.Second, "the served checkpoint meets the policy", func() (bool, string) {
		code, wit, cp := get(t, s.url+"/v1/checkpoint", key)
		return code == 200 && wit == "met" && sizeOf(t, cp) == size, fmt.Sprintf("%d %s %q", code, wit, cp)
	})
	_, _, cp := get(t, s.url+"/v1/checkpoint", key)
	if r := p.Check(cp); !r.Met || !slices.Equal(r.Cosigners, []string{"w1", "w2"}) {
		t.Errorf("the served checkpoint: %v, want cosigned by w1 and w2", r)
	}
	if code, wit, pub := get(t, s.url+"/tlog/default/checkpoint", ""); code != 200 || wit != "met" || !bytes.Equal(pub, cp) {
		t.Errorf("GET /tlog/default/checkpoint without a key = %d %s %q, want the cosigned checkpoint (--public-tiles)", code, wit, pub)
	}
	if code, _, _ := get(t, s.url+"/tlog/default/tile/entries/000.p/1", ""); code != 401 {
		t.Errorf("an entry bundle without a key = %d, want 401", code)
	}
	if code, _, body := get(t, s.url+"/readyz", ""); code != 200 || string(body) != "ready\n" {
		t.Errorf("/readyz = %d %q, want ready", code, body)
	}

	// w2 down: degraded, lagging, ingest goes on.
	w2.Stop()
	size2 := postEvents(t, s.url, key, 5, "user.logout")
	within(t, 15*time.Second, "/readyz says degraded", func() (bool, string) {
		code, _, body := get(t, s.url+"/readyz", "")
		return code == 200 && strings.HasPrefix(string(body), "degraded: ") && strings.Contains(string(body), "witness w2"), fmt.Sprintf("%d %q", code, body)
	})
	_, _, m := get(t, s.url+"/metrics", "")
	if want := fmt.Sprintf(`trail_witness_lag_events{log="default"} %d`, size2-size); !strings.Contains(string(m), want+"\n") {
		t.Errorf("/metrics lacks %q", want)
	}
	size3 := postEvents(t, s.url, key, 1, "user.logout")
	if _, wit, cp := get(t, s.url+"/v1/checkpoint", key); wit != "met" || sizeOf(t, cp) != size {
		t.Errorf("with w2 down /v1/checkpoint = %s size %d, want the last witnessed, size %d", wit, sizeOf(t, cp), size)
	}

	// w2 back on its state: caught up.
	w2.Restart()
	within(t, 40*time.Second, "witnessing catches up", func() (bool, string) {
		_, wit, cp := get(t, s.url+"/v1/checkpoint", key)
		return wit == "met" && sizeOf(t, cp) == size3, fmt.Sprintf("%s %q", wit, cp)
	})
	within(t, 10*time.Second, "/readyz is ready again", func() (bool, string) {
		code, _, body := get(t, s.url+"/readyz", "")
		return code == 200 && string(body) == "ready\n", fmt.Sprintf("%d %q", code, body)
	})
	s.stop(t)

	// The fork: same key, another history, shorter and then longer than
	// what the witnesses cosigned.
	f := serve(t, fork, "--witness-policy", pfile)
	postEvents(t, f.url, key, 3, "forked.event")
	fsize := postEvents(t, f.url, key, int(size3)+10, "forked.event")
	within(t, 15*time.Second, "both witnesses refuse the fork", func() (bool, string) {
		_, _, body := get(t, f.url+"/readyz", "")
		return strings.Count(string(body), "422") == 2, string(body)
	})
	code, wit, fcp := get(t, f.url+"/v1/checkpoint", key)
	if code != 200 || wit != "unmet" || sizeOf(t, fcp) != fsize || p.Check(fcp).Met {
		t.Errorf("the fork's /v1/checkpoint = %d %s %q (%v), want its signed checkpoint of size %d, unmet", code, wit, fcp, p.Check(fcp), fsize)
	}
	f.stop(t)
}

// Two trail serve nodes on one PostgreSQL store, both with the witness
// policy, witness the log at once while both take appends: both serve the
// same cosigned checkpoint of the final size. With one node killed, the
// other goes on alone.
func TestClusterWitnessing(t *testing.T) {
	store, keyFile := pgStore(t)
	c := &cluster{t: t, store: store, keyFile: keyFile}
	c.initLog()
	w1 := witnesstest.New(t, "", c.vkey)
	w2 := witnesstest.New(t, "", c.vkey)
	text := fmt.Sprintf("log %s\nwitness w1 %s %s\nwitness w2 %s %s\ngroup both all w1 w2\nquorum both\n", c.vkey, w1.VerifierKey, w1.URL, w2.VerifierKey, w2.URL)
	pfile := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(pfile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*served
	for range 2 {
		s := c.serveNode("127.0.0.1:0", "--migrate", "--witness-policy", pfile)
		if s == nil {
			t.FailNow()
		}
		nodes = append(nodes, s)
	}
	var size int64
	for i := range 12 {
		size = max(size, postEvents(t, nodes[i%2].url, c.key, 4, "cluster.event"))
		time.Sleep(30 * time.Millisecond)
	}
	var cps [2][]byte
	for i, s := range nodes {
		within(t, 20*time.Second, fmt.Sprintf("node %d serves the final size witnessed", i), func() (bool, string) {
			_, wit, cp := get(t, s.url+"/v1/checkpoint", c.key)
			cps[i] = cp
			return wit == "met" && sizeOf(t, cp) == size, fmt.Sprintf("%s %q", wit, cp)
		})
	}
	if !bytes.Equal(cps[0], cps[1]) || !p.Check(cps[0]).Met {
		t.Errorf("the nodes serve\n%s\nand\n%s\nwant one cosigned checkpoint meeting the policy", cps[0], cps[1])
	}

	nodes[0].kill(t)
	size = postEvents(t, nodes[1].url, c.key, 3, "cluster.event")
	within(t, 20*time.Second, "the node left witnesses alone", func() (bool, string) {
		_, wit, cp := get(t, nodes[1].url+"/v1/checkpoint", c.key)
		return wit == "met" && sizeOf(t, cp) == size && p.Check(cp).Met, fmt.Sprintf("%s %q", wit, cp)
	})
	nodes[1].stop(t)
}
