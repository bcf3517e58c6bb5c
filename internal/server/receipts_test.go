package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/witnessd/witnesstest"
	"github.com/trail-audit/trail/policy"
)

// receiptEnv is a server whose log acme is witnessed by two real
// witnesses under a quorum of both, with an append key and a read key.
type receiptEnv struct {
	url, vkey       string
	appendKey, read string
	w1, w2          *witnesstest.Witness
	pol             *policy.Policy
	db              *trail.DB
}

func newReceiptEnv(t *testing.T, wait time.Duration) *receiptEnv {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	e := &receiptEnv{vkey: l.VerifierKey()}
	if e.appendKey, _, err = db.CreateKey(ctx, testAdmin, "acme", "app", trail.ScopeAppend); err != nil {
		t.Fatal(err)
	}
	if e.read, _, err = db.CreateKey(ctx, testAdmin, "acme", "auditor", trail.ScopeRead); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e.w1, e.w2 = witnesstest.New(t, "", e.vkey), witnesstest.New(t, "", e.vkey)
	e.pol, err = policy.Parse(fmt.Appendf(nil, "log %s\nwitness w1 %s %s\nwitness w2 %s %s\ngroup both all w1 w2\nquorum both\n",
		e.vkey, e.w1.VerifierKey, e.w1.URL, e.w2.VerifierKey, e.w2.URL))
	if err != nil {
		t.Fatal(err)
	}
	if e.db, err = trail.Open(ctx, dir, trail.Options{WitnessPolicy: e.pol}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(e.db, server.Options{NoReadAudit: true, ReceiptWait: wait}))
	t.Cleanup(func() {
		srv.Close()
		e.db.Close()
	})
	e.url = srv.URL
	return e
}

// post appends body with the key and the query, and returns the status,
// header and receipts.
func (e *receiptEnv) post(t *testing.T, query string, header http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/v1/events"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.appendKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *receiptEnv) get(t *testing.T, path string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.read)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type receiptsAnswer struct {
	Events []struct {
		ID    string
		Seq   int64
		Proof string
	}
	ProofsPending bool `json:"proofs_pending"`
}

// TestAppendReceipts appends with ?receipts=wait to a log witnessed by
// two real witnesses: each event's receipt is checked offline against the
// log's key and the policy, which both witnesses' cosignatures meet.
// With one witness down the events are stored and the receipts pending,
// until the witness is back.
func TestAppendReceipts(t *testing.T) {
	e := newReceiptEnv(t, 2*time.Second)
	batch := `{"events":[` + ev("u1", "user.login") + `,` + ev("u2", "user.delete") + `,` + ev("u3", "user.login") + `]}`
	for _, c := range []struct {
		name   string
		query  string
		header http.Header
	}{
		{"query", "?receipts=wait", nil},
		{"header", "", http.Header{"Trail-Receipts": {"wait"}}},
	} {
		status, h, body := e.post(t, c.query, c.header, batch)
		var rs receiptsAnswer
		if status != 201 || json.Unmarshal(body, &rs) != nil || len(rs.Events) != 3 || rs.ProofsPending || h.Get("Trail-Receipts") != "" {
			t.Fatalf("%s: append = %d %s %s", c.name, status, h.Get("Trail-Receipts"), body)
		}
		for _, r := range rs.Events {
			got, err := client.CheckReceipt([]byte(r.Proof), e.vkey, e.pol)
			if err != nil {
				t.Fatalf("%s: receipt of seq %d: %v\n%s", c.name, r.Seq, err, r.Proof)
			}
			if got.Event.ID != r.ID || got.Event.Seq != r.Seq {
				t.Fatalf("%s: receipt of %s (seq %d) proves %s (seq %d)", c.name, r.ID, r.Seq, got.Event.ID, got.Event.Seq)
			}
		}
		// GET /v1/events/{id}/receipt gives the same kind of receipt.
		status, _, body = e.get(t, "/v1/events/"+rs.Events[1].ID+"/receipt")
		if status != 200 {
			t.Fatalf("%s: GET receipt = %d %s", c.name, status, body)
		}
		if got, err := client.CheckReceipt(body, e.vkey, e.pol); err != nil || got.Event.ID != rs.Events[1].ID {
			t.Fatalf("%s: GET receipt: %v", c.name, err)
		}
	}
	// Without receipts asked, none is sent.
	status, _, body := e.post(t, "", nil, ev("u4", "user.login"))
	if status != 201 || bytes.Contains(body, []byte(`"proof"`)) {
		t.Fatalf("append without receipts = %d %s", status, body)
	}
	for _, bad := range []struct{ query, header, field string }{
		{"?receipts=now", "", "receipts"},
		{"", "soon", "Trail-Receipts"},
	} {
		h := http.Header{}
		if bad.header != "" {
			h.Set("Trail-Receipts", bad.header)
		}
		status, _, body := e.post(t, bad.query, h, ev("u5", "user.login"))
		if status != 400 || !bytes.Contains(body, []byte(`"field":"`+bad.field+`"`)) {
			t.Fatalf("receipts %q/%q = %d %s, want 400 naming %s", bad.query, bad.header, status, body, bad.field)
		}
	}

	// A witness down: the quorum cannot be met. The events are stored,
	// and the answer says the receipts are pending.
	e.w2.Stop()
	status, h, body := e.post(t, "?receipts=wait", nil, ev("u6", "user.login"))
	var rs receiptsAnswer
	if status != 201 || json.Unmarshal(body, &rs) != nil || !rs.ProofsPending || h.Get("Trail-Receipts") != "pending" || rs.Events[0].Proof != "" {
		t.Fatalf("append with a witness down = %d %s %s", status, h.Get("Trail-Receipts"), body)
	}
	ctx := context.Background()
	l, err := e.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.GetSeq(ctx, rs.Events[0].Seq); err != nil || got.ID != rs.Events[0].ID {
		t.Fatalf("the event of the pending receipt is not stored: %v", err)
	}
	path := "/v1/events/" + rs.Events[0].ID + "/receipt"
	if status, h, body := e.get(t, path); status != 409 || !bytes.Contains(body, []byte("not_witnessed")) || h.Get("Retry-After") == "" {
		t.Fatalf("GET receipt of an event not witnessed = %d %s", status, body)
	}
	// The witness back, the receipt comes.
	e.w2.Restart()
	status, _, body = e.get(t, path+"?wait=30s")
	if status != 200 {
		t.Fatalf("GET receipt once the witness is back = %d %s", status, body)
	}
	if _, err := client.CheckReceipt(body, e.vkey, e.pol); err != nil {
		t.Fatalf("receipt once the witness is back: %v", err)
	}
	if status, _, body := e.get(t, path+"?wait=31s"); status != 400 || !bytes.Contains(body, []byte(`"field":"wait"`)) {
		t.Fatalf("GET receipt ?wait=31s = %d %s", status, body)
	}
}

// TestAppendReceiptsUnwitnessed: a log no policy covers gets receipts
// against its latest signed checkpoint at once.
func TestAppendReceiptsUnwitnessed(t *testing.T) {
	e := newEnv(t, server.Options{})
	var rs receiptsAnswer
	e.ok(201, "POST", "/v1/events?receipts=wait", "acme-append", "application/json", []byte(ev("u1", "user.login")), &rs)
	vkey := logKey(t, e.db, "acme")
	got, err := client.CheckReceipt([]byte(rs.Events[0].Proof), vkey, nil)
	if err != nil || got.Event.ID != rs.Events[0].ID {
		t.Fatalf("receipt: %v\n%s", err, rs.Events[0].Proof)
	}
	// The wrong key refuses it.
	if _, err := client.CheckReceipt([]byte(rs.Events[0].Proof), logKey(t, e.db, "globex"), nil); !errors.Is(err, client.ErrNotVerified) {
		t.Fatalf("receipt checked with another log's key: %v", err)
	}
}

// logKey returns the verifier key of the named log of db.
func logKey(t *testing.T, db *trail.DB, name string) string {
	t.Helper()
	l, err := db.Log(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return l.VerifierKey()
}
