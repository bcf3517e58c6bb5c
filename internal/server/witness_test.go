package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// newWitnessedEnv is newEnv whose server witnesses log acme with two real
// witnesses, quorum both: the server is a second DB on the environment's
// data directory, opened with the policy.
func newWitnessedEnv(t *testing.T, opts server.Options) (*env, *policy.Policy, [2]*witnesstest.Witness) {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t, opts)
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	g := mustLog(t, e.db, "globex")
	ws := [2]*witnesstest.Witness{witnesstest.New(t, "", l.VerifierKey(), g.VerifierKey()), witnesstest.New(t, "", l.VerifierKey(), g.VerifierKey())}
	text := fmt.Sprintf("log %s\nwitness w1 %s %s\nwitness w2 %s %s\ngroup both all w1 w2\nquorum both\n",
		l.VerifierKey(), ws[0].VerifierKey, ws[0].URL, ws[1].VerifierKey, ws[1].URL)
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trail.Open(ctx, e.loc, trail.Options{WitnessPolicy: p}); err == nil || !strings.Contains(err.Error(), `log "globex"`) {
		t.Fatalf("Open with a policy whose log lines miss globex = %v, want an error naming it", err)
	}
	p, err = policy.Parse([]byte(text + "log " + g.VerifierKey() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := trail.Open(ctx, e.loc, trail.Options{WitnessPolicy: p, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	opts.NoReadAudit = true
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	srv := httptest.NewServer(server.New(db, opts))
	t.Cleanup(func() {
		srv.Close()
		db.Close()
	})
	e.db, e.url = db, srv.URL
	return e, p, ws
}

func mustLog(t *testing.T, db *trail.DB, name string) *trail.Log {
	t.Helper()
	l, err := db.Log(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkpointSize returns the tree size a checkpoint note states.
func checkpointSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	lines := strings.SplitN(string(signed), "\n", 3)
	if len(lines) < 3 {
		t.Fatalf("not a checkpoint: %q", signed)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q: %v", lines[1], err)
	}
	return n
}

// metric returns the value of the Prometheus sample whose line starts
// with prefix (name and labels), or -1.
func metric(t *testing.T, e *env, prefix string) float64 {
	t.Helper()
	r := e.ok(200, "GET", "/metrics", "", "", nil, nil)
	for _, line := range strings.Split(string(r.body), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return -1
}

// The server serves the checkpoints that meet its witness policy: cosigned
// by both witnesses, from /v1/checkpoint, /v1/tlog/checkpoint and in event
// proofs, saying so; the newest signed one with ?witnessed=false. With a
// witness down, appends go on, /readyz says degraded (200), the lag
// metrics grow and new events are proved against the signed checkpoint,
// saying it does not meet the policy; with the witness back, it catches
// up and /readyz is ready again.
func TestWitnessedCheckpoints(t *testing.T) {
	e, p, ws := newWitnessedEnv(t, server.Options{})
	rs := e.appendN("acme-append", 20)
	size := e.start["acme"] + 20

	var r response
	within(t, 10*time.Second, "a checkpoint meeting the policy is served", func() (bool, string) {
		r = e.do("GET", "/v1/checkpoint", "acme-read", "", nil)
		return r.status == 200 && r.header.Get("Trail-Witnessed") == "met" && checkpointSize(t, r.body) == size, fmt.Sprintf("%d %s %q", r.status, r.header.Get("Trail-Witnessed"), r.body)
	})
	if res := p.Check(r.body); !res.Met || !slices.Equal(res.Cosigners, []string{"w1", "w2"}) {
		t.Errorf("GET /v1/checkpoint: %v, want met, cosigned by w1 and w2", res)
	}
	e.openCheckpoint(mustLog(t, e.db, "acme").VerifierKey(), mustLog(t, e.db, "acme").Origin(), r.body) // the log's own signature
	tr := e.ok(200, "GET", "/v1/tlog/checkpoint", "acme-append", "", nil, nil)
	if !bytes.Equal(tr.body, r.body) || tr.header.Get("Trail-Witnessed") != "met" {
		t.Errorf("GET /v1/tlog/checkpoint = %s %q, want the same cosigned checkpoint as /v1/checkpoint", tr.header.Get("Trail-Witnessed"), tr.body)
	}
	self := e.ok(200, "GET", "/v1/checkpoint?witnessed=false", "acme-read", "", nil, nil)
	if res := p.Check(self.body); res.Met || len(res.Cosigners) != 0 || self.header.Get("Trail-Witnessed") != "unmet" || checkpointSize(t, self.body) != size {
		t.Errorf("GET /v1/checkpoint?witnessed=false = %s %q (%v), want the signed checkpoint of size %d, no cosignature", self.header.Get("Trail-Witnessed"), self.body, res, size)
	}
	e.fails(400, "invalid_parameter", "witnessed", "GET", "/v1/checkpoint?witnessed=maybe", "acme-read", "", nil)
	// The policy, for any key of the log.
	pr := e.ok(200, "GET", "/v1/witness-policy", "acme-append", "", nil, nil)
	if got, err := policy.Parse(pr.body); err != nil || got.String() != p.String() {
		t.Errorf("GET /v1/witness-policy = %q, %v; want the server's policy", pr.body, err)
	}

	// An event proved against the cosigned checkpoint.
	checkProof := func(id, want string) int64 {
		t.Helper()
		var ep struct {
			Event json.RawMessage
			Proof struct {
				Seq      int64
				TreeSize int64 `json:"tree_size"`
				Hashes   []string
			}
			Checkpoint string
			Witnessed  string
		}
		r := e.ok(200, "GET", "/v1/events/"+id, "acme-read", "", nil, &ep)
		if ep.Witnessed != want || r.header.Get("Trail-Witnessed") != want {
			t.Errorf("GET /v1/events/%s: witnessed %q, header %q; want %q", id, ep.Witnessed, r.header.Get("Trail-Witnessed"), want)
		}
		if met := p.Check([]byte(ep.Checkpoint)).Met; met != (want == "met") {
			t.Errorf("GET /v1/events/%s: its checkpoint meets the policy: %v, want %v", id, met, want == "met")
		}
		c := e.openCheckpoint(mustLog(t, e.db, "acme").VerifierKey(), mustLog(t, e.db, "acme").Origin(), []byte(ep.Checkpoint))
		if c.Size != ep.Proof.TreeSize {
			t.Errorf("proof of tree size %d, checkpoint of size %d", ep.Proof.TreeSize, c.Size)
		}
		if err := tlog.CheckRecord(decodeHashes(t, ep.Proof.Hashes), c.Size, c.Hash, ep.Proof.Seq, tlog.RecordHash(ep.Event)); err != nil {
			t.Errorf("GET /v1/events/%s: the proof does not check: %v", id, err)
		}
		return c.Size
	}
	if n := checkProof(rs.Events[3].ID, "met"); n != size {
		t.Errorf("event proved in a tree of size %d, want the witnessed %d", n, size)
	}
	e.ok(200, "GET", "/readyz", "", "", nil, nil)
	if got := metric(t, e, `trail_witness_lag_events{log="acme"}`); got != 0 {
		t.Errorf("trail_witness_lag_events = %v, want 0", got)
	}

	// A witness down: degraded, lagging, appends go on.
	ws[1].Stop()
	late := e.appendN("acme-append", 5)
	within(t, 10*time.Second, "/readyz says witnessing is degraded", func() (bool, string) {
		r := e.do("GET", "/readyz", "", "", nil)
		return r.status == 200 && strings.HasPrefix(string(r.body), "degraded: ") && strings.Contains(string(r.body), "witness w2"), fmt.Sprintf("%d %s", r.status, r.body)
	})
	if got := metric(t, e, `trail_witness_lag_events{log="acme"}`); got != 5 {
		t.Errorf("trail_witness_lag_events with w2 down = %v, want 5", got)
	}
	if got := metric(t, e, `trail_witness_submission_errors_total{log="acme",witness="w2"}`); got < 1 {
		t.Errorf("trail_witness_submission_errors_total for w2 = %v, want at least 1", got)
	}
	if got := metric(t, e, `trail_witness_up{log="acme",witness="w2"}`); got != 0 {
		t.Errorf("trail_witness_up for w2 = %v, want 0", got)
	}
	lag1 := metric(t, e, `trail_witness_lag_seconds{log="acme"}`)
	time.Sleep(1100 * time.Millisecond)
	if lag2 := metric(t, e, `trail_witness_lag_seconds{log="acme"}`); lag1 <= 0 || lag2 <= lag1 {
		t.Errorf("trail_witness_lag_seconds = %v then %v a second later, want it growing", lag1, lag2)
	}
	e.appendN("acme-append", 1) // ingest continues
	if c := e.ok(200, "GET", "/v1/checkpoint", "acme-read", "", nil, nil); checkpointSize(t, c.body) != size {
		t.Errorf("GET /v1/checkpoint with w2 down: size %d, want the last witnessed, %d", checkpointSize(t, c.body), size)
	}
	checkProof(late.Events[0].ID, "unmet")
	// The proof is against the latest checkpoint, which w1 cosigned: it
	// carries w1's cosignature, which does not meet the policy alone.
	within(t, 10*time.Second, "the latest checkpoint carries the cosignature w1 gave it", func() (bool, string) {
		var ep struct{ Checkpoint string }
		e.ok(200, "GET", "/v1/events/"+late.Events[0].ID, "acme-read", "", nil, &ep)
		res := p.Check([]byte(ep.Checkpoint))
		return !res.Met && slices.Equal(res.Cosigners, []string{"w1"}), fmt.Sprintf("%v %q", res, ep.Checkpoint)
	})
	checkProof(late.Events[0].ID, "unmet")

	// Back: caught up, ready.
	ws[1].Restart()
	within(t, 40*time.Second, "witnessing catches up", func() (bool, string) {
		r := e.do("GET", "/v1/checkpoint", "acme-read", "", nil)
		return r.header.Get("Trail-Witnessed") == "met" && checkpointSize(t, r.body) == size+6, fmt.Sprintf("%s %q", r.header.Get("Trail-Witnessed"), r.body)
	})
	checkProof(late.Events[0].ID, "met")
	within(t, 10*time.Second, "/readyz is ready again", func() (bool, string) {
		r := e.do("GET", "/readyz", "", "", nil)
		return r.status == 200 && string(r.body) == "ready\n", fmt.Sprintf("%d %s", r.status, r.body)
	})
}

// Without a policy: the signed checkpoint, saying no policy covers it;
// no policy to serve.
func TestNoWitnessPolicy(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.appendN("acme-append", 3)
	r := e.ok(200, "GET", "/v1/checkpoint", "acme-read", "", nil, nil)
	if r.header.Get("Trail-Witnessed") != "none" {
		t.Errorf("Trail-Witnessed = %q, want none", r.header.Get("Trail-Witnessed"))
	}
	if self := e.ok(200, "GET", "/v1/checkpoint?witnessed=false", "acme-read", "", nil, nil); !bytes.Equal(self.body, r.body) {
		t.Errorf("?witnessed=false = %q, want the same checkpoint %q", self.body, r.body)
	}
	e.fails(404, "no_policy", "", "GET", "/v1/witness-policy", "acme-read", "", nil)
	var ep map[string]any
	e.ok(200, "GET", "/v1/events/"+e.appendN("acme-append", 1).Events[0].ID, "acme-read", "", nil, &ep)
	if _, ok := ep["witnessed"]; ok {
		t.Errorf("GET /v1/events/{id} without a policy has a witnessed field: %v", ep)
	}
}

// The tlog-tiles layout under the log's name: with a key of the log only,
// unless --public-tiles opens the checkpoint and hash tiles to all;
// entry bundles always need a read key.
func TestPublicTiles(t *testing.T) {
	for _, public := range []bool{false, true} {
		t.Run(fmt.Sprintf("PublicTiles=%v", public), func(t *testing.T) {
			e := newEnv(t, server.Options{PublicTiles: public})
			e.appendN("acme-append", 300)
			size := e.start["acme"] + 300
			w := size - 256
			hash := fmt.Sprintf("/tlog/acme/tile/0/001.p/%d", w)
			bundle := fmt.Sprintf("/tlog/acme/tile/entries/001.p/%d", w)
			noKey := 401
			if public {
				noKey = 200
			}
			for _, path := range []string{"/tlog/acme/checkpoint", "/tlog/acme/tile/0/000", hash} {
				if r := e.do("GET", path, "", "", nil); r.status != noKey {
					t.Errorf("GET %s without a key = %d %s, want %d", path, r.status, r.body, noKey)
				}
				keyed := e.ok(200, "GET", path, "acme-append", "", nil, nil)
				if path == "/tlog/acme/tile/0/000" {
					if cc := keyed.header.Get("Cache-Control"); cc != "private, max-age=31536000, immutable" {
						t.Errorf("GET %s with a key: Cache-Control %q, want private and immutable", path, cc)
					}
					if r := e.do("GET", path, "", "", nil); public && r.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
						t.Errorf("GET %s without a key: Cache-Control %q, want public and immutable", path, r.header.Get("Cache-Control"))
					}
				}
				e.fails(404, "not_found", "", "GET", path, "globex-admin", "", nil) // another log's key
			}
			e.fails(401, "unauthorized", "", "GET", bundle, "", "", nil)
			e.fails(403, "forbidden", "", "GET", bundle, "acme-append", "", nil)
			e.fails(404, "not_found", "", "GET", bundle, "globex-admin", "", nil)
			b := e.ok(200, "GET", bundle, "acme-read", "", nil, nil)
			v := e.ok(200, "GET", strings.Replace(bundle, "/tlog/acme/", "/v1/tlog/", 1), "acme-read", "", nil, nil)
			if !bytes.Equal(b.body, v.body) {
				t.Errorf("GET %s differs from the same bundle under /v1/tlog/", bundle)
			}
			c := e.do("GET", "/tlog/acme/checkpoint", "acme-read", "", nil)
			if self := e.ok(200, "GET", "/v1/tlog/checkpoint", "acme-read", "", nil, nil); !bytes.Equal(c.body, self.body) {
				t.Errorf("GET /tlog/acme/checkpoint = %q, want /v1/tlog/checkpoint's %q", c.body, self.body)
			}
			if n := checkpointSize(t, c.body); n != size {
				t.Errorf("checkpoint size %d, want %d", n, size)
			}
			for _, path := range []string{"/tlog/nosuchlog/checkpoint", "/tlog/NOT..valid/tile/0/000"} {
				want := 401
				if public {
					want = 404
				}
				if r := e.do("GET", path, "", "", nil); r.status != want {
					t.Errorf("GET %s without a key = %d, want %d", path, r.status, want)
				}
			}
		})
	}
}

// TestPublicTilesRateLimit: requests without a key under PublicTiles are
// rate-limited per client address, as keyed ones are per key, and a key's
// requests do not spend the address's tokens.
func TestPublicTilesRateLimit(t *testing.T) {
	e := newEnv(t, server.Options{PublicTiles: true, RateLimit: 1, RateBurst: 3})
	e.appendN("acme-append", 3)
	for i := range 3 {
		if r := e.do("GET", "/tlog/acme/checkpoint", "", "", nil); r.status != 200 {
			t.Fatalf("request %d without a key = %d %s, want 200 within the burst", i+1, r.status, r.body)
		}
	}
	r := e.do("GET", "/tlog/acme/checkpoint", "", "", nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" || !bytes.Contains(r.body, []byte("rate_limited")) {
		t.Fatalf("request 4 without a key = %d %s, want 429 with Retry-After", r.status, r.body)
	}
	e.ok(200, "GET", "/tlog/acme/checkpoint", "acme-read", "", nil, nil)
}
