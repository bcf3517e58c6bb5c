package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// witnessSet is a log's real witnesses (package witnesstest: the witness
// trail witness runs, on loopback ports) and the size each last cosigned,
// as a log that submits its checkpoints to them keeps it.
type witnessSet struct {
	mu    sync.Mutex
	ws    []*witnesstest.Witness
	sizes []int64
}

func newWitnessSet(t *testing.T, n int, logVKey string) *witnessSet {
	s := &witnessSet{sizes: make([]int64, n)}
	for i := range n {
		s.ws = append(s.ws, witnesstest.New(t, fmt.Sprintf("w%d.test", i+1), logVKey))
	}
	return s
}

// policyText is a policy of the set's witnesses, named w1, w2, …, with
// the quorum line given.
func (s *witnessSet) policyText(logVKey, quorum string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log %s\n", logVKey)
	for i, w := range s.ws {
		fmt.Fprintf(&b, "witness w%d %s %s\n", i+1, w.VerifierKey, w.URL)
	}
	b.WriteString(quorum + "\n")
	return b.String()
}

func (s *witnessSet) policy(t *testing.T, logVKey, quorum string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(s.policyText(logVKey, quorum)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cosign submits the signed checkpoint to each witness (tlog-witness
// add-checkpoint, with a consistency proof from the size it last cosigned,
// read from the log at upstream) and returns it with the cosignatures of
// those that cosigned. A stopped witness, or one that refuses, adds none.
func (s *witnessSet) cosign(t *testing.T, upstream, key string, signed []byte) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	size, err := strconv.ParseInt(strings.Split(string(signed), "\n")[1], 10, 64)
	if err != nil {
		t.Errorf("checkpoint %q: %v", signed, err)
		return signed
	}
	out := append([]byte(nil), signed...)
	for i, w := range s.ws {
		for range 2 { // once more after a 409 that names the witness's size
			var proof []string
			if old := s.sizes[i]; old > 0 && old < size {
				var cp api.ConsistencyProof
				u := fmt.Sprintf("%s/v1/proof/consistency?from=%d&to=%d", upstream, old, size)
				if err := getJSON(u, key, &cp); err != nil {
					t.Logf("consistency proof for witness w%d: %v", i+1, err)
					break
				}
				for _, h := range cp.Hashes {
					proof = append(proof, base64.StdEncoding.EncodeToString(h[:]))
				}
			}
			body := fmt.Sprintf("old %d\n", min(s.sizes[i], size))
			for _, h := range proof {
				body += h + "\n"
			}
			body += "\n" + string(signed)
			resp, err := http.Post(w.URL+"/add-checkpoint", "text/plain", strings.NewReader(body))
			if err != nil {
				break // stopped
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusConflict {
				n, err := strconv.ParseInt(strings.TrimSpace(string(answer)), 10, 64)
				if err != nil {
					t.Errorf("witness w%d answered 409 %q", i+1, answer)
					break
				}
				s.sizes[i] = n
				continue
			}
			if resp.StatusCode != http.StatusOK {
				t.Logf("witness w%d refused size %d: %d %s", i+1, size, resp.StatusCode, answer)
				break
			}
			s.sizes[i] = size
			out = append(out, answer...)
			break
		}
	}
	return out
}

func getJSON(u, key string, out any) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// cosigningFront serves a Trail server at upstream, as a server that
// submits its checkpoints to witnesses would: the checkpoints it answers
// (GET /v1/checkpoint, and an event's with its proof) carry the
// cosignatures of the witnesses of s that cosign them. It returns its URL.
func cosigningFront(t *testing.T, upstream string, s *witnessSet) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		path := resp.Request.URL.Path
		isEvent := strings.HasPrefix(path, "/v1/events/")
		if resp.StatusCode != http.StatusOK || path != "/v1/checkpoint" && !isEvent {
			return nil
		}
		key := strings.TrimPrefix(resp.Request.Header.Get("Authorization"), "Bearer ")
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if isEvent {
			var ep map[string]json.RawMessage
			var cp string
			if err := json.Unmarshal(body, &ep); err != nil {
				return err
			}
			if err := json.Unmarshal(ep["checkpoint"], &cp); err != nil {
				return err
			}
			ep["checkpoint"], _ = json.Marshal(string(s.cosign(t, upstream, key, []byte(cp))))
			body, _ = json.Marshal(ep)
		} else {
			body = s.cosign(t, upstream, key, body)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

func newFrontClient(t *testing.T, front, key string, p *policy.Policy) *client.Client {
	t.Helper()
	c, err := client.New(front, key, client.Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Verify with a witness policy: a checkpoint the quorum cosigned verifies
// and names its cosigners; one short of it fails with ErrNotWitnessed,
// saying who cosigned and who is missing, after its events verified.
func TestVerifyWitnessPolicy(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ws := newWitnessSet(t, 2, f.vkey)
	front := cosigningFront(t, f.srv.URL, ws)
	p := ws.policy(t, f.vkey, "group both all w1 w2\nquorum both")
	c := newFrontClient(t, front, f.key, p)
	if _, err := c.Append(ctx, ev("a", "user.login"), ev("b", "user.login")); err != nil {
		t.Fatal(err)
	}

	size := f.log.Size() // the export Verify reads is audited: the log grows after its checkpoint
	got, err := c.VerifyLog(ctx, f.vkey, nil, nil)
	if err != nil {
		t.Fatalf("VerifyLog with both witnesses = %v", err)
	}
	if got.Checkpoint.Size != size || got.Witnesses == nil || !got.Witnesses.Met ||
		strings.Join(got.Witnesses.Cosigners, ",") != "w1,w2" || len(got.Witnesses.Missing) != 0 {
		t.Fatalf("VerifyLog = size %d, witnesses %+v; want size %d cosigned by w1, w2", got.Checkpoint.Size, got.Witnesses, size)
	}
	if !bytes.Contains(got.Signed, []byte("\n— w1.test ")) || !bytes.Contains(got.Signed, []byte("\n— w2.test ")) {
		t.Errorf("VerifyLog().Signed has not both cosignatures:\n%s", got.Signed)
	}

	// w2 is down: the next checkpoint has w1's cosignature only.
	ws.ws[1].Stop()
	if _, err := c.Append(ctx, ev("c", "user.update")); err != nil {
		t.Fatal(err)
	}
	size = f.log.Size()
	got, err = c.VerifyLog(ctx, f.vkey, nil, nil)
	if !errors.Is(err, client.ErrNotWitnessed) {
		t.Fatalf("VerifyLog with w2 down = %v, want ErrNotWitnessed", err)
	}
	var we *client.WitnessError
	if !errors.As(err, &we) || we.Size != size {
		t.Fatalf("VerifyLog error %v is not a *WitnessError of size %d", err, size)
	}
	for _, want := range []string{"not witnessed", "1 of 2 witnesses cosigned", "quorum 2 of w1, w2", "cosigned by w1", "missing w2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("VerifyLog error %q does not say %q", err, want)
		}
	}
	if got.Witnesses == nil || got.Witnesses.Met || got.Checkpoint.Size != size {
		t.Errorf("VerifyLog after ErrNotWitnessed = %+v, want the checkpoint and its witnesses", got)
	}
	if _, err := c.Verify(ctx, f.vkey, nil, nil); !errors.Is(err, client.ErrNotWitnessed) {
		t.Errorf("Verify with w2 down = %v, want ErrNotWitnessed", err)
	}
	// Any one of them is enough for a policy that says so.
	anyC := newFrontClient(t, front, f.key, ws.policy(t, f.vkey, "group one any w1 w2\nquorum one"))
	if got, err := anyC.VerifyLog(ctx, f.vkey, nil, nil); err != nil || strings.Join(got.Witnesses.Cosigners, ",") != "w1" {
		t.Errorf("VerifyLog with quorum any = %+v, %v; want cosigned by w1", got.Witnesses, err)
	}
	// Without a policy the log's signature is enough.
	plain := newFrontClient(t, front, f.key, nil)
	if got, err := plain.VerifyLog(ctx, f.vkey, nil, nil); err != nil || got.Witnesses != nil {
		t.Errorf("VerifyLog without a policy = %+v, %v; want verified, no witnesses", got, err)
	}

	// w2 is back: it cosigns the newest checkpoint, from the size it had.
	ws.ws[1].Restart()
	if got, err := c.VerifyLog(ctx, f.vkey, nil, nil); err != nil || !got.Witnesses.Met {
		t.Errorf("VerifyLog once w2 is back = %+v, %v; want met", got.Witnesses, err)
	}

	// A policy of another log is refused before any event is read.
	_, otherV, err := newKeyPair("other.example")
	if err != nil {
		t.Fatal(err)
	}
	wrongLog := newFrontClient(t, front, f.key, ws.policy(t, otherV, "quorum none"))
	if _, err := wrongLog.Verify(ctx, f.vkey, nil, nil); err == nil || !strings.Contains(err.Error(), "do not name this log's key") {
		t.Errorf("Verify with another log's policy = %v, want an error naming the log lines", err)
	}
}

// Get with a witness policy: an event whose checkpoint the quorum cosigned
// is verified with its cosigners; one whose checkpoint is short of it is
// refused.
func TestGetWitnessPolicy(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ws := newWitnessSet(t, 2, f.vkey)
	front := cosigningFront(t, f.srv.URL, ws)
	c := newFrontClient(t, front, f.key, ws.policy(t, f.vkey, "group g 2 w1 w2\nquorum g"))
	rs, err := c.Append(ctx, ev("a", "user.login"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, rs[0].ID, f.vkey)
	if err != nil || got.Witnesses == nil || strings.Join(got.Witnesses.Cosigners, ",") != "w1,w2" {
		t.Fatalf("Get = %+v, %v; want cosigned by w1, w2", got.Witnesses, err)
	}
	ws.ws[0].Stop()
	rs, err = c.Append(ctx, ev("b", "user.login"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, rs[0].ID, f.vkey); !errors.Is(err, client.ErrNotWitnessed) || !strings.Contains(err.Error(), "missing w1") {
		t.Fatalf("Get with w1 down = %v, want ErrNotWitnessed missing w1", err)
	}
}

// The monitor with a witness policy saves only checkpoints that meet it,
// and a forked history, which the witnesses refuse to cosign, is flagged
// both as a fork (against the saved checkpoint) and as not witnessed
// (without one).
func TestMonitorWitnessPolicy(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ws := newWitnessSet(t, 2, f.vkey)
	front := cosigningFront(t, f.srv.URL, ws)
	p := ws.policy(t, f.vkey, "group g all w1 w2\nquorum g")
	c := newFrontClient(t, front, f.key, p)
	m, state := newMonitor(t, c, f.vkey)
	if _, err := c.Append(ctx, ev("a", "user.login")); err != nil {
		t.Fatal(err)
	}
	got, err := m.Latest(ctx)
	if err != nil || !got.Witnesses.Met || got.Checkpoint.Size != f.log.Size() {
		t.Fatalf("Latest = %+v, %v; want met at size %d", got.Witnesses, err, f.log.Size())
	}
	saved, err := os.ReadFile(state)
	if err != nil || !bytes.Equal(saved, got.Signed) {
		t.Fatalf("saved state = %q, %v; want the cosigned checkpoint", saved, err)
	}

	ws.ws[1].Stop()
	if _, err := c.Append(ctx, ev("b", "user.login")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Check(ctx); !errors.Is(err, client.ErrNotWitnessed) {
		t.Fatalf("Check with w2 down = %v, want ErrNotWitnessed", err)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, saved) {
		t.Error("a checkpoint short of its quorum was saved")
	}
	ws.ws[1].Restart()
	if cp, err := m.Check(ctx); err != nil || cp.Size != f.log.Size() {
		t.Fatalf("Check once w2 is back = %d, %v; want size %d", cp.Size, err, f.log.Size())
	}
	saved, _ = os.ReadFile(state)

	// A history re-signed with the log's key over other events: the
	// witnesses refuse it.
	forkURL, forkKey := forkedServer(t, f.loc, int(f.log.Size())+3)
	forkFront := cosigningFront(t, forkURL, ws)
	fc := newFrontClient(t, forkFront, forkKey, p)
	fm, err := fc.NewMonitor(f.vkey, state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fm.Check(ctx); !errors.Is(err, client.ErrFork) {
		t.Fatalf("Check of the fork against the saved checkpoint = %v, want ErrFork", err)
	}
	fresh, err := fc.NewMonitor(f.vkey, filepath.Join(t.TempDir(), "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Check(ctx)
	if !errors.Is(err, client.ErrNotWitnessed) || !strings.Contains(err.Error(), "cosigned by none; missing w1, w2") {
		t.Fatalf("Check of the fork with no saved checkpoint = %v, want ErrNotWitnessed with no cosigner", err)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, saved) {
		t.Error("the saved checkpoint was replaced after a fork")
	}
}

// Against a real server whose checkpoints are witnessed
// (trail.Options.WitnessPolicy, two real witnesses, both needed), the
// client with the same policy verifies the log, its events and the
// monitor's checkpoints with both cosigners; an event appended while a
// witness is down is refused as not witnessed until the witness is back
// and cosigns a checkpoint that holds it.
func TestWitnessingServer(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ws := newWitnessSet(t, 2, f.vkey)
	p := ws.policy(t, f.vkey, "group both all w1 w2\nquorum both")
	db, err := trail.Open(ctx, f.loc, trail.Options{WitnessPolicy: p})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(db, server.Options{}))
	t.Cleanup(func() {
		srv.Close()
		db.Close()
	})
	c := newFrontClient(t, srv.URL, f.key, p)
	// witnessedGet waits until the event's proof is against a checkpoint
	// that meets the policy.
	witnessedGet := func(id string) client.Verified {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := c.Get(ctx, id, f.vkey)
			if err == nil {
				return got
			}
			if !errors.Is(err, client.ErrNotWitnessed) || time.Now().After(deadline) {
				t.Fatalf("Get(%s) = %v, want it witnessed within 30s", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rs, err := c.Append(ctx, ev("a", "user.login"), ev("b", "user.login"))
	if err != nil {
		t.Fatal(err)
	}
	got := witnessedGet(rs[1].ID)
	if !got.Witnesses.Met || strings.Join(got.Witnesses.Cosigners, ",") != "w1,w2" || got.Checkpoint.Size <= rs[1].Seq {
		t.Fatalf("Get = %+v at size %d; want cosigned by w1, w2, holding seq %d", got.Witnesses, got.Checkpoint.Size, rs[1].Seq)
	}
	vl, err := c.VerifyLog(ctx, f.vkey, nil, nil)
	if err != nil || !vl.Witnesses.Met || vl.Checkpoint.Size <= rs[1].Seq {
		t.Fatalf("VerifyLog = %+v at size %d, %v; want witnessed, holding seq %d", vl.Witnesses, vl.Checkpoint.Size, err, rs[1].Seq)
	}
	m, state := newMonitor(t, c, f.vkey)
	if got, err := m.Latest(ctx); err != nil || !got.Witnesses.Met {
		t.Fatalf("Monitor.Latest = %+v, %v; want witnessed", got.Witnesses, err)
	}
	saved, _ := os.ReadFile(state)

	// w2 down: the server still serves its newest witnessed checkpoint,
	// which does not hold the new event.
	ws.ws[1].Stop()
	late, err := c.Append(ctx, ev("c", "user.update"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, late[0].ID, f.vkey); !errors.Is(err, client.ErrNotWitnessed) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Get of an event no witnessed checkpoint holds = %v, want ErrNotWitnessed", err)
	}
	if got, err := m.Latest(ctx); err != nil || got.Checkpoint.Size > late[0].Seq {
		t.Fatalf("Monitor.Latest with w2 down = size %d, %v; want the older witnessed checkpoint", got.Checkpoint.Size, err)
	}
	if b, _ := os.ReadFile(state); len(b) == 0 || sizeOfNote(t, b) < sizeOfNote(t, saved) {
		t.Errorf("the monitor's state went back from size %d", sizeOfNote(t, saved))
	}
	// Back: it cosigns a checkpoint that holds the event.
	ws.ws[1].Restart()
	got = witnessedGet(late[0].ID)
	if strings.Join(got.Witnesses.Cosigners, ",") != "w1,w2" {
		t.Errorf("Get once w2 is back = %+v", got.Witnesses)
	}
}

func sizeOfNote(t *testing.T, signed []byte) int64 {
	t.Helper()
	ls := strings.SplitN(string(signed), "\n", 3)
	if len(ls) < 3 {
		t.Fatalf("not a checkpoint: %q", signed)
	}
	n, err := strconv.ParseInt(ls[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
