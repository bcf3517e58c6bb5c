package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trail-audit/trail/internal/browsertest"
)

// servedCheckpoint is GET /v1/checkpoint (with ?witnessed=false when
// signedOnly): the checkpoint, its size and the Trail-Witnessed header.
func servedCheckpoint(t *testing.T, url, key string, signedOnly bool) ([]byte, int64, string) {
	t.Helper()
	u := url + "/v1/checkpoint"
	if signedOnly {
		u += "?witnessed=false"
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s %v", u, resp.StatusCode, b, err)
	}
	ls := strings.SplitN(string(b), "\n", 3)
	size, err := strconv.ParseInt(ls[1], 10, 64)
	if err != nil {
		t.Fatalf("GET %s: not a checkpoint: %q", u, b)
	}
	return b, size, resp.Header.Get("Trail-Witnessed")
}

// waitWitnessed waits until the server's witnessed checkpoint covers at
// least size events and returns it.
func waitWitnessed(t *testing.T, url, key string, size int64) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, got, h := servedCheckpoint(t, url, key, false)
		if h == "met" && got >= size {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d events meeting the witness policy within 30s: the server answers size %d, Trail-Witnessed: %s", size, got, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trail serve --witness-policy with two trail witness processes, both
// needed, seen by trail verify --witness-policy and by the viewer, which
// checks the cosignatures in the browser: a witnessed checkpoint is
// verified with both cosigners; an event appended while a witness is down
// is shown as not witnessed, never as verified, until the witness is back;
// a client policy asking for a witness the server does not use fails; a
// fork (the same key, another history) is refused by the witnesses and
// flagged by the viewer and trail verify.
func TestWitnessedVerifyAndViewer(t *testing.T) {
	data, vkey := initLog(t)
	read := lastLine(ok(t, "", "--data", data, "keys", "create", "--scope", "read", "--name", "auditor").stdout)
	ok(t, generated("early", 10), "--data", data, "append")
	// A copy of the data directory, to fork later: the same signing key,
	// another history from here on.
	fork := filepath.Join(t.TempDir(), "fork")
	if err := os.CopyFS(fork, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(fork, "keys", "default.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, ws := witnessProcesses(t, 2, vkey, "group both all w1 w2\nquorum both")
	s := serve(t, data, "--rate-limit", "0", "--witness-policy", pol)
	defer s.stop(t)
	_, size, _ := servedCheckpoint(t, s.url, read, true)
	waitWitnessed(t, s.url, read, size)

	remote := []string{"--server", s.url, "--key", read, "verify", "--verifier-key", vkey, "--witness-policy", pol}
	r := ok(t, "", remote...)
	for _, want := range []string{`(?m)^Log at .* verified: `, `witnesses: quorum 2 of w1, w2 met, 2 of 2 cosigned`,
		`(?m)^\s+w1\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, `(?m)^\s+w2\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("verify of a witnessed log printed\n%s\nwithout %q", r.stdout, want)
		}
	}
	var got verifyJSON
	r = ok(t, "", append(remote, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Verified || got.Witnesses == nil || !got.Witnesses.Met || len(got.Witnesses.Cosigners) != 2 || len(got.Witnesses.Missing) != 0 ||
		got.Witnesses.Cosigners[0].Name != "w1" || time.Since(got.Witnesses.Cosigners[0].Time) > time.Minute {
		t.Errorf("verify --json of a witnessed log = %s", r.stdout)
	}

	// Locally, beside the server: the events verify, and the newest
	// cosigned checkpoint stored meets the policy and matches them.
	r = ok(t, "", "--data", data, "verify", "--verifier-key", vkey, "--witness-policy", pol)
	if !regexp.MustCompile(`witnesses: quorum 2 of w1, w2 met, 2 of 2 cosigned the checkpoint of \d+ events`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\s+w2\s+\d{4}-`).MatchString(r.stdout) {
		t.Errorf("local verify of a witnessed log printed\n%s", r.stdout)
	}

	// An auditor's policy asking for a third witness the server does not
	// submit to.
	w3key, _ := witnessInit(t, filepath.Join(t.TempDir(), "w3"), "witness.example/w3")
	polText, err := os.ReadFile(pol)
	if err != nil {
		t.Fatal(err)
	}
	strict := writePolicy(t, strings.Replace(string(polText), "group both all w1 w2", "witness w3 "+w3key+"\ngroup both all w1 w2 w3", 1))
	r = run(t, "", append(slices.Clone(remote[:len(remote)-1]), strict)...)
	if r.code != 1 || !strings.Contains(r.stderr, "not witnessed: 2 of 3 witnesses cosigned") || !strings.Contains(r.stderr, "missing w3") ||
		!regexp.MustCompile(`(?m)^\s+w3\s+missing$`).MatchString(r.stdout) {
		t.Errorf("verify with a stricter policy = exit %d\nstdout:\n%s\nstderr:\n%s\nwant 1, w3 missing", r.code, r.stdout, r.stderr)
	}

	// The viewer: an event of the witnessed checkpoint, checked in the
	// browser with its cosignatures.
	shots := os.Getenv("TRAIL_ARTIFACTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "trail-viewer-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: browsertest.New(t, 3*time.Minute), base: s.url, shots: shots}
	b.signIn(read)
	status := func() string {
		return eval[string](b, `document.getElementById("verify-status").className + " " + document.getElementById("verify-status").textContent`)
	}
	openEvent := func(actor string) {
		b.t.Helper()
		b.open("/?actor="+actor, "#rows")
		b.do(chromedp.Click(chromedp.CSS(`#rows tr:first-child td.time a`)))
		b.waitFor("the event page, checked", `document.documentElement.dataset.ready === "true" && location.pathname.startsWith("/events/")`)
	}
	openEvent("early-3")
	st := status()
	if !strings.Contains(st, "ok") || !strings.Contains(st, "Verified in tree of size") || !strings.Contains(st, "and witnessed: 2 of 2 cosignatures (quorum 2 of w1, w2)") {
		t.Fatalf("the page of a witnessed event says %q; want it verified and witnessed by 2 of 2", st)
	}
	details := eval[string](b, `document.getElementById("verify-details").textContent`)
	for _, want := range []string{"Witness quorum2 of w1, w2: met, 2 of 2 cosignatures", "Witness w1cosigned 20", "Witness w2cosigned 20"} {
		if !strings.Contains(details, want) {
			t.Errorf("the witnessed event's details %q do not say %q", details, want)
		}
	}
	if eval[bool](b, `document.getElementById("verify").classList.contains("verified")`) != true {
		t.Error("the witnessed event's box is not marked verified")
	}
	b.shot("detail-witnessed")
	witnessedPath := eval[string](b, "location.pathname")
	// The policy is pinned in the browser: a server that later serves
	// another one (here, as if it had weakened it to no witness) is
	// caught, and the event is not shown as verified.
	pinKey := `"trail.witness-policy:" + location.host + ":default"`
	code, served, err := request(t, "GET", s.url+"/v1/witness-policy", read, "")
	if err != nil || code != 200 {
		t.Fatalf("GET /v1/witness-policy = %d %s %v", code, served, err)
	}
	if pinned := eval[string](b, `localStorage.getItem(`+pinKey+`) ?? ""`); pinned != string(served) {
		t.Fatalf("the browser pinned the policy %q, want the one GET /v1/witness-policy serves, %q", pinned, served)
	}
	eval[bool](b, `localStorage.setItem(`+pinKey+`, "quorum none\n"), true`)
	b.open(witnessedPath, "#verify")
	if st := status(); !strings.Contains(st, "fail") || !strings.Contains(st, "witness policy changed since this browser first saw it") {
		t.Errorf("with another policy pinned, the event's page says %q; want the change flagged", st)
	}
	eval[bool](b, `localStorage.setItem(`+pinKey+`, document.getElementById("verify").dataset.witnessPolicy), true`)

	// w2 down: an event appended now is in no checkpoint both cosigned.
	ws[1].kill(t)
	ok(t, "", "--data", data, "append", "--actor", "late-1", "--action", "user.login")
	// The server serves another process's append within about half a
	// second (it polls the log's size); the page must not open before.
	within(t, 10*time.Second, "the server serves the event appended beside it", func() (bool, string) {
		code, body, err := request(t, "GET", s.url+"/v1/events?actor=late-1", read, "")
		return err == nil && code == 200 && strings.Contains(string(body), `"late-1"`), fmt.Sprintf("%d %s %v", code, body, err)
	})
	openEvent("late-1")
	st = status()
	if !regexp.MustCompile(`^status fail ✗ Not witnessed: \d of 2 cosignatures \(quorum 2 of w1, w2; missing (w1, )?w2\)`).MatchString(st) || strings.Contains(st, "Verified") {
		t.Fatalf("the page of an event no quorum cosigned says %q; want not witnessed, never verified", st)
	}
	if eval[bool](b, `document.getElementById("verify").classList.contains("verified")`) {
		t.Error("the box of an event no quorum cosigned is marked verified")
	}
	b.shot("detail-not-witnessed")
	// trail verify still verifies the checkpoint both cosigned, and says
	// that newer events are not witnessed.
	r = ok(t, "", remote...)
	if !strings.Contains(r.stdout, "met, 2 of 2 cosigned") || !regexp.MustCompile(`(?m)^  \d+ newer events? (is|are) not witnessed yet: the log's newest signed checkpoint holds \d+\.$`).MatchString(r.stdout) {
		t.Errorf("verify with w2 down printed\n%s\nwant the witnessed checkpoint and the newer events not witnessed", r.stdout)
	}
	if r := ok(t, "", append(remote, "--json")...); !regexp.MustCompile(`"unwitnessed":[1-9]`).MatchString(r.stdout) {
		t.Errorf("verify --json with w2 down = %s, want unwitnessed events counted", r.stdout)
	}
	latePath := eval[string](b, "location.pathname")

	// trail get --witness-policy: the early event is in a checkpoint both
	// cosigned, the late one in none.
	getRemote := func(actor string) result {
		t.Helper()
		var found struct{ ID string }
		out := ok(t, "", "--server", s.url, "--key", read, "search", "--actor", actor, "--limit", "1", "--json").stdout
		if err := json.Unmarshal([]byte(out), &found); err != nil || found.ID == "" {
			t.Fatalf("search --actor %s printed %q: %v", actor, out, err)
		}
		return run(t, "", "--server", s.url, "--key", read, "get", found.ID, "--verifier-key", vkey, "--witness-policy", pol)
	}
	if r := getRemote("early-3"); r.code != 0 || !strings.Contains(r.stdout, "cosigned by its witnesses") ||
		!strings.Contains(r.stdout, "witnesses: quorum 2 of w1, w2 met, 2 of 2 cosigned") || !regexp.MustCompile(`(?m)^\s+w2\s+\d{4}-`).MatchString(r.stdout) {
		t.Errorf("get --witness-policy of a witnessed event = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := getRemote("late-1"); r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") || !strings.Contains(r.stderr, "not witnessed") || !strings.Contains(r.stderr, "missing") {
		t.Errorf("get --witness-policy of an event no witnessed checkpoint holds = exit %d\n%s%s; want 1, not witnessed", r.code, r.stdout, r.stderr)
	}
	// The event witnessed before still is.
	b.open(witnessedPath, "#verify")
	if st := status(); !strings.Contains(st, "and witnessed: 2 of 2") {
		t.Errorf("with w2 down, the page of an event witnessed before says %q", st)
	}

	// w2 back on its state and address: witnessing catches up and the
	// late event is witnessed too.
	ws[1].start(t)
	_, size, _ = servedCheckpoint(t, s.url, read, true)
	waitWitnessed(t, s.url, read, size)
	b.open(latePath, "#verify")
	if st := status(); !strings.Contains(st, "ok") || !strings.Contains(st, "and witnessed: 2 of 2") {
		t.Errorf("once w2 is back, the late event's page says %q; want it witnessed", st)
	}
	b.shot("detail-witnessed-late")

	// The fork, served with the same policy: both witnesses refuse its
	// history, the viewer shows its events as not witnessed, and trail
	// verify fails, as a fork against a checkpoint of the real log.
	cosigned, size, _ := servedCheckpoint(t, s.url, read, false)
	saved := filepath.Join(t.TempDir(), "cosigned.txt")
	if err := os.WriteFile(saved, cosigned, 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, generated("forked", int(size)+5), "--data", fork, "append")
	fs := serve(t, fork, "--rate-limit", "0", "--witness-policy", pol)
	defer fs.stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := request(t, "GET", fs.url+"/readyz", "", "")
		if err == nil && code == 200 && strings.Contains(string(body), "witness w1") && strings.Contains(string(body), "witness w2") && strings.Count(string(body), "422") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witnesses did not both refuse the fork within 30s: /readyz = %d %s %v", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.base = fs.url
	b.signIn(read)
	openEvent("forked-3")
	if st := status(); !strings.HasPrefix(st, "status fail ✗ Not witnessed: 0 of 2 cosignatures") {
		t.Errorf("the page of a forked event says %q; want not witnessed", st)
	}
	b.shot("detail-fork")
	forkVerify := []string{"--server", fs.url, "--key", read, "verify", "--verifier-key", vkey, "--witness-policy", pol}
	if r := run(t, "", forkVerify...); r.code != 1 || !strings.Contains(r.stderr, "not witnessed: 0 of 2 witnesses cosigned") {
		t.Errorf("verify of the fork = exit %d, %q; want 1, not witnessed", r.code, r.stderr)
	}
	if r := run(t, "", append(forkVerify, "--against", saved)...); r.code != 1 || !strings.Contains(r.stderr, "FORK") {
		t.Errorf("verify of the fork against a cosigned checkpoint of the log = exit %d, %q; want 1, a fork", r.code, r.stderr)
	}
}
