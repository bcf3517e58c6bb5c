package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gowebpki/jcs"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/browsertest"
	"github.com/trail-audit/trail/internal/canon"
)

// verifyCSP is the policy the viewer's pages are served with.
const verifyCSP = "default-src 'none'; script-src 'self'"

// verifyTestPage loads verifyTestLoader, which imports static/verify.js as
// window.trail and records any CSP violation in window.cspViolations.
const (
	verifyTestPage   = `<!doctype html><meta charset=utf-8><title>verify.js</title><script src="/verify_test.js"></script>`
	verifyTestLoader = `window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));
window.trailReady = import("/static/verify.js").then(
  (m) => { window.trail = m; return "ready"; },
  (e) => "import failed: " + e);
`
)

// openVerifyPage serves the test page and the embedded assets, and opens the
// page in a headless Chromium with verify.js loaded as window.trail.
func openVerifyPage(t *testing.T) context.Context {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", verifyCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, verifyTestPage)
	})
	mux.HandleFunc("GET /verify_test.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		io.WriteString(w, verifyTestLoader)
	})
	static := http.FileServerFS(Static)
	mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".js") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		static.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/static/verify.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(got, "text/javascript") {
		t.Fatalf("GET /static/verify.js = %d %q, want 200 text/javascript", resp.StatusCode, got)
	}

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if got := evalInVerifyPage[string](t, ctx, `window.trailReady`); got != "ready" {
		t.Fatalf("loading verify.js: %s", got)
	}
	return ctx
}

// evalInVerifyPage evaluates expr in the page, awaiting it if it is a
// promise. A script exception fails the test.
func evalInVerifyPage[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.200s: %v", expr, err)
	}
	return v
}

// checkNoCSPViolations fails the test if the page broke its CSP.
func checkNoCSPViolations(t *testing.T, ctx context.Context) {
	t.Helper()
	if v := evalInVerifyPage[[]string](t, ctx, `window.cspViolations`); len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
}

// verifyInput is the argument of verifyEvent. Its fields are any so that
// tests can pass values of the wrong type.
type verifyInput struct {
	Event       any `json:"event"`
	Proof       any `json:"proof"`
	Checkpoint  any `json:"checkpoint"`
	VerifierKey any `json:"verifierKey"`
}

// proofJSON is the proof as GET /v1/events/{id} returns it.
type proofJSON struct {
	Seq      int64    `json:"seq"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

// verifyResult is what verifyEvent resolves to.
type verifyResult struct {
	OK       bool   `json:"ok"`
	Seq      int64  `json:"seq"`
	TreeSize int64  `json:"treeSize"`
	Root     string `json:"root"`
	Origin   string `json:"origin"`
	Signer   string `json:"signer"`
	KeyHash  string `json:"keyHash"`
	Step     string `json:"step"`
	Reason   string `json:"reason"`
}

// verifyInBrowser runs verifyEvent on each input, in the page.
func verifyInBrowser(t *testing.T, ctx context.Context, ins []verifyInput) []verifyResult {
	t.Helper()
	js, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	got := evalInVerifyPage[[]verifyResult](t, ctx, fmt.Sprintf(`Promise.all(%s.map((in_) => window.trail.verifyEvent(in_)))`, js))
	if len(got) != len(ins) {
		t.Fatalf("verifyEvent gave %d results for %d inputs", len(got), len(ins))
	}
	return got
}

// verifyTimeBase is the time of the test events, in the past so that the
// validator accepts them.
var verifyTimeBase = time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.FixedZone("CET", 3600))

// verifyTrickyEvents returns events whose canonical form exercises RFC 8785:
// escapes, non-ASCII text, numbers, key order, empty and nested values.
func verifyTrickyEvents() []event.Event {
	return []event.Event{{
		Actor: event.Actor{
			ID:    "u-é",
			Type:  event.ActorUser,
			Name:  "Zoë \"Q\" \\ 日本 😀 \u2028\u2029 \x7f \u0085 </script> &amp;",
			Email: "zoe@例え.jp",
			Role:  "admin",
		},
		Action:    "user.login",
		Targets:   []event.Target{{Type: "session", ID: "s/\"1\"", Name: "Ünïcode ☃ \U0001F600"}},
		Outcome:   event.Denied,
		Reason:    "line one\nline two\ttab\r\nend \\ \"quoted\"",
		Source:    event.Source{IP: "2001:DB8::1", UserAgent: "Mozilla/5.0 (😀)"},
		RequestID: "req-\"1\"",
		TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
		Time:      verifyTimeBase,
	}, {
		Actor:  event.Actor{ID: "svc"},
		Action: "billing.invoice.create",
		Metadata: json.RawMessage(`{"n":[0,1e+21,1.5e+21,1e-7,0.000001,0.1,-1.5,100,5e-324,1.7976931348623157e+308,123456789012345680,9007199254740991,-9007199254740991,0.000025,1e+300],` +
			`"s":"tab\there \"q\" \\ \u2028 \u00e9 \ud83d\ude00 \/","\ue000":1,"😀":2,"é":3,"e":4,"":"empty key",` +
			`"10":"ten","9":"nine","__proto__":{"polluted":true},` +
			`"nested":{"a":{},"b":[],"c":[{},[],null,true,false,""]}}`),
	}, {
		Actor:   event.Actor{ID: "admin-1", Type: event.ActorService, Name: "日本語の名前"},
		Action:  "plan.update",
		Targets: []event.Target{{Type: "account", ID: "a1"}, {Type: "user", ID: "u2", Name: "\U0001F468\u200D\U0001F469\u200D\U0001F467"}},
		Outcome: event.Failure,
		Changes: &event.Changes{
			Before: json.RawMessage(`{"plan":"free","seats":5,"tags":[]}`),
			After:  json.RawMessage(`{"tags":["a","b"],"seats":100,"plan":"team","owner":null, "limits" : { "z":1, "a":0.5 }}`),
		},
		Source: event.Source{UserAgent: "ua only"},
	}, {
		Actor:    event.Actor{ID: "system", Type: event.ActorSystem},
		Action:   "job.run",
		Changes:  &event.Changes{After: json.RawMessage(`"only after \u2029"`)},
		Metadata: json.RawMessage(`{}`),
	}, {
		Actor:    event.Actor{ID: "anon", Type: event.ActorAnonymous},
		Action:   "doc.read",
		Outcome:  event.Errored,
		Changes:  &event.Changes{Before: json.RawMessage(`[1,[2,[3,{"deep":{"deeper":"\r\n"}}]]]`)},
		Metadata: json.RawMessage(`{"ctl":"\t\n\r","esc":"\u00e9\ud83d\ude00\/","big":{"\uffff":"bmp end","\ud800\udc00":"first astral"}}`),
		Source:   event.Source{IP: "192.0.2.7"},
		Time:     verifyTimeBase.Add(time.Second).Truncate(time.Second),
	}}
}

// verifyPlainEvent returns a simple event numbered i.
func verifyPlainEvent(i int) event.Event {
	return event.Event{
		Actor:    event.Actor{ID: fmt.Sprintf("user-%d", i%17), Type: event.ActorUser},
		Action:   "doc.update",
		Targets:  []event.Target{{Type: "doc", ID: strconv.Itoa(i)}},
		Metadata: json.RawMessage(fmt.Sprintf(`{"i":%d,"half":%g}`, i, float64(i)/2)),
		Time:     verifyTimeBase.Add(time.Duration(i) * time.Millisecond),
	}
}

// verifyLog is a log filled in batches, with the checkpoint signed after
// each batch.
type verifyLog struct {
	log         *trail.Log
	checkpoints map[int64][]byte // by tree size
}

// newVerifyLog creates the log name in db and appends batches to it.
func newVerifyLog(t *testing.T, db *trail.DB, name string, batches ...[]event.Event) *verifyLog {
	t.Helper()
	ctx := t.Context()
	l, err := db.CreateLog(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	vl := &verifyLog{log: l, checkpoints: map[int64][]byte{}}
	for _, b := range batches {
		if _, err := l.AppendBatch(ctx, b); err != nil {
			t.Fatalf("AppendBatch: %v", err)
		}
		signed, err := l.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.OpenCheckpoint(signed)
		if err != nil {
			t.Fatal(err)
		}
		if c.Size != l.Size() {
			t.Fatalf("checkpoint size = %d, want %d", c.Size, l.Size())
		}
		vl.checkpoints[c.Size] = signed
	}
	return vl
}

func newVerifyDB(t *testing.T) *trail.DB {
	t.Helper()
	db, err := trail.Init(t.Context(), t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// canonical returns the stored event at seq in canonical form.
func (vl *verifyLog) canonical(t *testing.T, seq int64) []byte {
	t.Helper()
	e, err := vl.log.GetSeq(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return canon.Append(nil, e)
}

// input returns what GET /v1/events/{id} gives for seq, proved against the
// checkpoint of the given size, with the log's verifier key.
func (vl *verifyLog) input(t *testing.T, seq, size int64) verifyInput {
	t.Helper()
	signed, ok := vl.checkpoints[size]
	if !ok {
		t.Fatalf("no checkpoint of size %d", size)
	}
	p, err := vl.log.ProveInclusion(t.Context(), seq, size)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([]string, len(p))
	for i, h := range p {
		hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return verifyInput{
		Event:       json.RawMessage(vl.canonical(t, seq)),
		Proof:       proofJSON{Seq: seq, TreeSize: size, Hashes: hashes},
		Checkpoint:  string(signed),
		VerifierKey: vl.log.VerifierKey(),
	}
}

// verifierKeyHash returns the hex key hash in a verifier key.
func verifierKeyHash(vkey string) string {
	_, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return hash
}

// bigVerifyLog returns a log whose checkpoints have sizes 1, 2, 7 and 1029,
// holding the tricky events first.
func bigVerifyLog(t *testing.T) *verifyLog {
	tricky := verifyTrickyEvents()
	var rest []event.Event
	for i := range 1029 - len(tricky) {
		rest = append(rest, verifyPlainEvent(i))
	}
	// Batches of 1, 1, 5 and 1022 events.
	return newVerifyLog(t, newVerifyDB(t), "demo", tricky[:1], tricky[1:2], slices.Concat(tricky[2:], rest[:2]), rest[2:])
}

func TestVerifyCanonicalizeMatchesGo(t *testing.T) {
	vl := bigVerifyLog(t)
	ctx := openVerifyPage(t)

	// The events as the API sends them: encoding/json escapes <, >, & and
	// U+2028, so the text differs from the canonical form.
	var sent []string
	var want []string
	for seq := range vl.log.Size() {
		c := vl.canonical(t, seq)
		api, err := json.Marshal(json.RawMessage(c))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, string(api))
		want = append(want, string(c))
	}
	js, err := json.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	got := evalInVerifyPage[[]string](t, ctx, fmt.Sprintf(`%s.map((s) => window.trail.canonicalize(JSON.parse(s)))`, js))
	if len(got) != len(want) {
		t.Fatalf("canonicalize gave %d results, want %d", len(got), len(want))
	}
	for seq := range want {
		if got[seq] != want[seq] {
			t.Errorf("canonicalize(event %d) =\n%s\nwant (Go's AppendCanonical)\n%s", seq, got[seq], want[seq])
		}
	}
	checkNoCSPViolations(t, ctx)
}

func TestVerifyCanonicalizeMatchesJCS(t *testing.T) {
	ctx := openVerifyPage(t)
	for _, in := range []string{
		`{"b":1,"a":2,"c":{"z":[],"y":{}}}`,
		` { "a" : [ 1.0 , 1E2 , 1e+2 , 0.000001 , 1e-7 , 100000000000000000000 , 1e21 , -0.0 , 0.30000000000000004 ] } `,
		`{"\u00e9":"\u00e9","e\u0301":"\/","\ud83d\ude00":"😀","\ue000":"","\u007f":"\u001f\b\f"}`,
		`[null,true,false,"\u2028\u2029","\"\\",{"":""},[[[]]]]`,
		`{"10":1,"9":2,"1":3,"a":4,"A":5,"_":6,"__proto__":7}`,
		`"just a string"`,
		`-1.5e-10`,
	} {
		want, err := jcs.Transform([]byte(in))
		if err != nil {
			t.Fatalf("jcs.Transform(%s) error = %v", in, err)
		}
		js, _ := json.Marshal(in)
		got := evalInVerifyPage[string](t, ctx, fmt.Sprintf(`window.trail.canonicalize(JSON.parse(%s))`, js))
		if got != string(want) {
			t.Errorf("canonicalize(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestVerifyEventAccepts(t *testing.T) {
	vl := bigVerifyLog(t)
	ctx := openVerifyPage(t)
	vkey := vl.log.VerifierKey()

	type want struct {
		seq, size int64
	}
	var wants []want
	var ins []verifyInput
	for _, size := range []int64{1, 2, 7, 1029} {
		for _, seq := range []int64{0, 1, size / 2, size - 2, size - 1, 511, 512, 1023, 1024} {
			if seq < 0 || seq >= size {
				continue
			}
			in := vl.input(t, seq, size)
			if seq%2 == 1 {
				// The event as JSON text rather than parsed.
				in.Event = string(in.Event.(json.RawMessage))
			}
			ins = append(ins, in)
			wants = append(wants, want{seq, size})
		}
	}
	results := verifyInBrowser(t, ctx, ins)
	for i, got := range results {
		w := wants[i]
		c, err := vl.log.OpenCheckpoint(vl.checkpoints[w.size])
		if err != nil {
			t.Fatal(err)
		}
		wantRes := verifyResult{
			OK:       true,
			Seq:      w.seq,
			TreeSize: w.size,
			Root:     base64.StdEncoding.EncodeToString(c.Hash[:]),
			Origin:   vl.log.Origin(),
			Signer:   vl.log.Origin(),
			KeyHash:  verifierKeyHash(vkey),
		}
		if got != wantRes {
			t.Errorf("verifyEvent(seq %d, size %d) = %+v, want %+v", w.seq, w.size, got, wantRes)
		}
	}
	checkNoCSPViolations(t, ctx)
}

// TestVerifyEventOtherSignatures checks that signatures by other keys are
// ignored, and that the signer need not be named as the origin.
func TestVerifyEventOtherSignatures(t *testing.T) {
	vl := newVerifyLog(t, newVerifyDB(t), "demo", verifyTrickyEvents())
	ctx := openVerifyPage(t)
	base := vl.input(t, 2, 5)
	signed := base.Checkpoint.(string)
	body, sigs, _ := strings.Cut(signed, "\n\n")
	body += "\n"

	// A witness cosigns the same body.
	wskey, wvkey, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := note.NewSigner(wskey)
	if err != nil {
		t.Fatal(err)
	}
	wsigned, err := note.Sign(&note.Note{Text: body}, ws)
	if err != nil {
		t.Fatal(err)
	}
	_, wsig, _ := strings.Cut(string(wsigned), "\n\n")
	// A signature under the log's key name with another key hash.
	junk := make([]byte, 68)
	rand.Read(junk)
	sameName := "— " + vl.log.Origin() + " " + base64.StdEncoding.EncodeToString(junk) + "\n"

	cosigned := base
	cosigned.Checkpoint = body + "\n" + wsig + sameName + sigs
	byWitness := base
	byWitness.Checkpoint = string(wsigned)
	byWitness.VerifierKey = wvkey

	got := verifyInBrowser(t, ctx, []verifyInput{cosigned, byWitness})
	if !got[0].OK || got[0].Signer != vl.log.Origin() {
		t.Errorf("verifyEvent(cosigned checkpoint) = %+v, want ok, signed by %s", got[0], vl.log.Origin())
	}
	if !got[1].OK || got[1].Signer != "witness.example/w1" || got[1].Origin != vl.log.Origin() || got[1].KeyHash != verifierKeyHash(wvkey) {
		t.Errorf("verifyEvent(checkpoint signed by witness) = %+v, want ok, signer witness.example/w1, origin %s", got[1], vl.log.Origin())
	}
}

func TestVerifyEventRejects(t *testing.T) {
	db := newVerifyDB(t)
	var events []event.Event
	for i := range 5 {
		events = append(events, verifyPlainEvent(i))
	}
	vl := newVerifyLog(t, db, "demo", events, verifyTrickyEvents()[:2])
	// A log of the same name in another data directory: the same key name,
	// another key.
	other := newVerifyLog(t, newVerifyDB(t), "demo", events, verifyTrickyEvents()[:2])
	ctx := openVerifyPage(t)

	const seq, size = 3, 7
	base := vl.input(t, seq, size)
	vkey := vl.log.VerifierKey()
	signer := vl.log.Origin() + "+" + verifierKeyHash(vkey)
	signed := base.Checkpoint.(string)
	proof := base.Proof.(proofJSON)
	c, err := vl.log.OpenCheckpoint([]byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	root := base64.StdEncoding.EncodeToString(c.Hash[:])
	otherRoot, err := vl.log.TreeHash(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}

	// editEvent returns the event with edit applied to its parsed form.
	editEvent := func(edit func(map[string]any)) json.RawMessage {
		var m map[string]any
		if err := json.Unmarshal(base.Event.(json.RawMessage), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	editProof := func(edit func(*proofJSON)) proofJSON {
		p := proof
		p.Hashes = append([]string(nil), proof.Hashes...)
		edit(&p)
		return p
	}
	flipByte := func(b64 string, i int) string {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		b[i] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	body, sigLine, _ := strings.Cut(signed, "\n\n")
	// sigLine is "— name base64\n".
	sigLine = strings.TrimSuffix(sigLine, "\n")
	sigB64 := sigLine[strings.LastIndexByte(sigLine, ' ')+1:]
	withSig := func(b64 string) string { return body + "\n\n" + strings.TrimSuffix(sigLine, sigB64) + b64 + "\n" }
	sigBytes, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatal(err)
	}

	// A signed note that is not a checkpoint, and its key.
	fskey, fvkey, err := note.GenerateKey(rand.Reader, "demo")
	if err != nil {
		t.Fatal(err)
	}
	fsigner, err := note.NewSigner(fskey)
	if err != nil {
		t.Fatal(err)
	}
	notCheckpoint, err := note.Sign(&note.Note{Text: "demo\nnot a size\n" + root + "\n"}, fsigner)
	if err != nil {
		t.Fatal(err)
	}

	// Verifier keys with one part wrong.
	keyName, keyRest, _ := strings.Cut(vkey, "+")
	keyHash, key64, _ := strings.Cut(keyRest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := strconv.ParseUint(keyHash, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	wrongHash := fmt.Sprintf("%08x", uint32(hash)+1)
	withKey := func(k []byte) string {
		return keyName + "+" + keyHash + "+" + base64.StdEncoding.EncodeToString(k)
	}

	tests := []struct {
		name       string
		edit       func(in *verifyInput)
		wantStep   string
		wantReason string // part of the reason, if not empty
	}{
		{"event action changed", func(in *verifyInput) {
			in.Event = editEvent(func(m map[string]any) { m["action"] = "user.logout" })
		}, "leaf", "the event or the proof was altered"},
		{"event target changed", func(in *verifyInput) {
			in.Event = editEvent(func(m map[string]any) { m["targets"].([]any)[0].(map[string]any)["id"] = "x" })
		}, "leaf", "does not lead to the checkpoint's root"},
		{"event field added", func(in *verifyInput) {
			in.Event = editEvent(func(m map[string]any) { m["reason"] = "added" })
		}, "leaf", ""},
		{"event text changed", func(in *verifyInput) {
			in.Event = strings.Replace(string(base.Event.(json.RawMessage)), "doc.update", "doc.updatf", 1)
		}, "leaf", ""},
		{"event seq changed", func(in *verifyInput) {
			in.Event = editEvent(func(m map[string]any) { m["seq"] = 4 })
		}, "proof", "the proof is for event 3"},
		{"event without seq", func(in *verifyInput) {
			in.Event = editEvent(func(m map[string]any) { delete(m, "seq") })
		}, "leaf", ""},
		{"event not JSON", func(in *verifyInput) { in.Event = `{"action":` }, "leaf", "not valid JSON"},
		{"event null", func(in *verifyInput) { in.Event = nil }, "leaf", ""},
		{"event an array", func(in *verifyInput) { in.Event = []int{1} }, "leaf", ""},
		{"event with a number out of range", func(in *verifyInput) {
			in.Event = strings.Replace(string(base.Event.(json.RawMessage)), `"seq":3`, `"seq":3,"x":1e999`, 1)
		}, "leaf", "canonicalized"},

		{"proof hash altered", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes[1] = flipByte(p.Hashes[1], 31) })
		}, "leaf", "the event or the proof was altered"},
		{"proof hashes swapped", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes[0], p.Hashes[1] = p.Hashes[1], p.Hashes[0] })
		}, "leaf", ""},
		{"proof hash dropped", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes = p.Hashes[:len(p.Hashes)-1] })
		}, "proof", "needs 3"},
		{"proof hash added", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes = append(p.Hashes, root) })
		}, "proof", ""},
		{"proof seq changed", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Seq = 2 })
		}, "proof", "the proof is for event 2"},
		{"proof seq past the tree", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Seq = 7 })
		}, "proof", "not in a tree of 7"},
		{"proof seq negative", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Seq = -1 })
		}, "proof", ""},
		{"proof for another tree size", func(in *verifyInput) {
			in.Proof = vl.input(t, seq, 5).Proof
		}, "proof", "a tree of 5 events, but the checkpoint is for 7"},
		{"proof tree_size changed", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.TreeSize = 8 })
		}, "proof", ""},
		{"proof hash not base64", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes[0] = "not base64!" })
		}, "proof", "hash 0"},
		{"proof hash short", func(in *verifyInput) {
			in.Proof = editProof(func(p *proofJSON) { p.Hashes[2] = base64.StdEncoding.EncodeToString(make([]byte, 31)) })
		}, "proof", "hash 2"},
		{"proof missing", func(in *verifyInput) { in.Proof = nil }, "proof", ""},
		{"proof fields missing", func(in *verifyInput) { in.Proof = map[string]any{"hashes": proof.Hashes} }, "proof", ""},
		{"proof numbers as strings", func(in *verifyInput) {
			in.Proof = map[string]any{"seq": "3", "tree_size": "7", "hashes": proof.Hashes}
		}, "proof", ""},
		{"proof hashes not a list", func(in *verifyInput) {
			in.Proof = map[string]any{"seq": 3, "tree_size": 7, "hashes": "x"}
		}, "proof", ""},
		{"proof hash not a string", func(in *verifyInput) {
			in.Proof = map[string]any{"seq": 3, "tree_size": 7, "hashes": []any{1, 2, 3}}
		}, "proof", ""},

		{"checkpoint root altered", func(in *verifyInput) {
			in.Checkpoint = strings.Replace(signed, "\n"+root+"\n", "\n"+base64.StdEncoding.EncodeToString(otherRoot[:])+"\n", 1)
		}, "signature", "does not match the checkpoint"},
		{"checkpoint size altered", func(in *verifyInput) {
			in.Checkpoint = strings.Replace(signed, "\n7\n", "\n8\n", 1)
		}, "signature", ""},
		{"checkpoint origin altered", func(in *verifyInput) {
			in.Checkpoint = "x" + signed
		}, "signature", ""},
		{"signature bytes altered", func(in *verifyInput) {
			in.Checkpoint = withSig(flipByte(sigB64, 20))
		}, "signature", signer},
		{"signature truncated", func(in *verifyInput) {
			in.Checkpoint = withSig(base64.StdEncoding.EncodeToString(sigBytes[:len(sigBytes)-1]))
		}, "signature", ""},
		{"signature key hash altered", func(in *verifyInput) {
			in.Checkpoint = withSig(flipByte(sigB64, 0))
		}, "signature", "the checkpoint is not signed by " + signer},
		{"signed by another log's key", func(in *verifyInput) {
			in.Checkpoint = string(other.checkpoints[size])
		}, "signature", "the checkpoint is not signed by " + signer},
		{"signature line removed", func(in *verifyInput) {
			in.Checkpoint = body + "\n\n"
		}, "checkpoint", ""},
		{"signature line without dash", func(in *verifyInput) {
			in.Checkpoint = body + "\n\n" + strings.TrimPrefix(sigLine, "— ") + "\n"
		}, "checkpoint", ""},
		{"signature not base64", func(in *verifyInput) {
			in.Checkpoint = withSig("@@@@")
		}, "checkpoint", ""},
		{"checkpoint without final newline", func(in *verifyInput) {
			in.Checkpoint = strings.TrimSuffix(signed, "\n")
		}, "checkpoint", ""},
		{"checkpoint with a control character", func(in *verifyInput) {
			in.Checkpoint = strings.Replace(signed, "\n7\n", "\n7\x01\n", 1)
		}, "checkpoint", ""},
		{"checkpoint garbage", func(in *verifyInput) { in.Checkpoint = "hello, world" }, "checkpoint", ""},
		{"checkpoint empty", func(in *verifyInput) { in.Checkpoint = "" }, "checkpoint", ""},
		{"checkpoint not text", func(in *verifyInput) { in.Checkpoint = 42 }, "checkpoint", ""},
		{"checkpoint body not a checkpoint", func(in *verifyInput) {
			in.Checkpoint = string(notCheckpoint)
			in.VerifierKey = fvkey
		}, "checkpoint", "tree size"},

		{"verifier key empty", func(in *verifyInput) { in.VerifierKey = "" }, "key", ""},
		{"verifier key missing", func(in *verifyInput) { in.VerifierKey = nil }, "key", ""},
		{"verifier key name only", func(in *verifyInput) { in.VerifierKey = keyName }, "key", ""},
		{"verifier key hash not hex", func(in *verifyInput) {
			in.VerifierKey = keyName + "+zzzzzzzz+" + key64
		}, "key", ""},
		{"verifier key hash altered", func(in *verifyInput) {
			in.VerifierKey = keyName + "+" + wrongHash + "+" + key64
		}, "key", "does not match"},
		{"verifier key not base64", func(in *verifyInput) {
			in.VerifierKey = keyName + "+" + keyHash + "+!!!!"
		}, "key", ""},
		{"verifier key altered", func(in *verifyInput) {
			k := append([]byte(nil), key...)
			k[5] ^= 1
			in.VerifierKey = withKey(k)
		}, "key", ""},
		{"verifier key of another algorithm", func(in *verifyInput) {
			k := append([]byte(nil), key...)
			k[0] = 2
			in.VerifierKey = withKey(k)
		}, "key", "not an Ed25519 key"},
		{"verifier key short", func(in *verifyInput) { in.VerifierKey = withKey(key[:32]) }, "key", ""},
		{"verifier key of another log", func(in *verifyInput) { in.VerifierKey = other.log.VerifierKey() }, "signature", "not signed by"},
	}

	ins := make([]verifyInput, len(tests))
	for i, tt := range tests {
		ins[i] = base
		tt.edit(&ins[i])
	}
	results := verifyInBrowser(t, ctx, append(ins, base))
	if got := results[len(tests)]; !got.OK {
		t.Fatalf("verifyEvent(unaltered input) = %+v, want ok", got)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := results[i]
			if got.OK || got.Step != tt.wantStep || got.Reason == "" || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("verifyEvent() = %+v, want step %q and a reason with %q", got, tt.wantStep, tt.wantReason)
			}
		})
	}

	// Arguments of the wrong shape altogether.
	for _, arg := range []string{``, `null`, `42`, `"text"`, `{}`, `[]`} {
		got := evalInVerifyPage[verifyResult](t, ctx, fmt.Sprintf(`window.trail.verifyEvent(%s)`, arg))
		if got.OK || got.Step != "key" || got.Reason == "" {
			t.Errorf("verifyEvent(%s) = %+v, want step key", arg, got)
		}
	}
	checkNoCSPViolations(t, ctx)
}
