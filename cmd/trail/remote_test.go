package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// search and verify work against a server (--server, --key), and verify
// trusts only the pinned verifier key.
func TestRemoteSearchAndVerify(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	ok(t, events(t), "--data", data, "--log", "acme", "append")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read", "--name", "auditor").stdout)
	ok(t, "", "--data", data, "init", "--log", "other")
	vkeys := map[string]string{}
	for _, line := range lines(ok(t, "", "--data", data, "logs", "--json").stdout) {
		var l struct{ Name, Verifier_Key string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		vkeys[l.Name] = l.Verifier_Key
	}
	cp := filepath.Join(t.TempDir(), "cp.txt")
	if err := os.WriteFile(cp, []byte(ok(t, "", "--data", data, "--log", "acme", "checkpoint").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)

	r := ok(t, "", "--server", s.url, "--key", key, "search", "--action", "user.login", "--limit", "5", "--json")
	got := lines(r.stdout)
	if len(got) != 5 {
		t.Fatalf("remote search printed %d events, want 5:\n%s", len(got), r.stdout)
	}
	for _, l := range got {
		if !strings.Contains(l, `"log":"acme"`) || !strings.Contains(l, `"action":"user.login"`) {
			t.Errorf("remote search line %s: want acme's user.login events", l)
		}
	}
	var first struct{ ID string }
	json.Unmarshal([]byte(got[0]), &first)
	r = ok(t, "", "--server", s.url, "--key", key, "get", first.ID, "--verifier-key", vkeys["acme"])
	if !strings.Contains(r.stdout, "Verified") || !strings.Contains(r.stdout, first.ID) {
		t.Errorf("remote get printed %q, want the event verified", r.stdout)
	}
	if r := run(t, "", "--server", s.url, "--key", key, "get", first.ID, "--verifier-key", vkeys["other"]); r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("remote get with another log's key = exit %d, %q; want 1 and FAILED", r.code, r.stderr)
	}
	local := ok(t, "", "--data", data, "--log", "acme", "export", "--format", "csv", "--action", "user.login")
	remote := ok(t, "", "--server", s.url, "--key", key, "export", "--format", "csv", "--action", "user.login")
	if remote.stdout != local.stdout || len(lines(remote.stdout)) < 2 {
		t.Errorf("remote CSV export differs from the local one (%d and %d lines)", len(lines(remote.stdout)), len(lines(local.stdout)))
	}
	r = ok(t, "", "--server", s.url, "--key", key, "verify", "--verifier-key", vkeys["acme"], "--against", cp)
	if !strings.Contains(r.stdout, "verified") || !strings.Contains(r.stdout, "consistent with the checkpoint of size ") {
		t.Errorf("remote verify --against printed %q, want it verified and consistent with the checkpoint", r.stdout)
	}
	r = ok(t, "", "--server", s.url, "--key", key, "verify", "--verifier-key", vkeys["acme"], "--against", cp, "--json")
	if !strings.Contains(r.stdout, `"against":{"size":`) {
		t.Errorf("remote verify --against --json printed %q, want the checkpoint it is consistent with", r.stdout)
	}
	if r := run(t, "", "--server", s.url, "--key", key, "verify", "--verifier-key", vkeys["acme"], "--against", cp+".missing"); r.code != 2 || !strings.Contains(r.stderr, "--against") {
		t.Errorf("remote verify --against a missing file: exit %d, stderr %q; want 2 naming --against", r.code, r.stderr)
	}
	if r := run(t, "", "--server", s.url, "--key", key, "verify", "--verifier-key", vkeys["other"]); r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("remote verify with another log's key = exit %d, %q; want 1 and FAILED", r.code, r.stderr)
	}
	if r := run(t, "", "--server", s.url, "--key", key, "verify"); r.code != 2 {
		t.Errorf("remote verify without a pinned key = exit %d, want 2", r.code)
	}
	if r := run(t, "", "--server", s.url, "search"); r.code != 2 || !strings.Contains(r.stderr, "--key") {
		t.Errorf("--server without a key = exit %d, %q; want 2 naming --key", r.code, r.stderr)
	}

	// The key picks the log: --log may name it, not another.
	if r := ok(t, "", "--server", s.url, "--key", key, "logs", "--json"); !strings.Contains(r.stdout, `"name":"acme"`) {
		t.Errorf("remote trail logs --json = %s, want the log's name", r.stdout)
	}
	ok(t, "", "--server", s.url, "--key", key, "--log", "acme", "search", "--limit", "1")
	ok(t, "", "--server", s.url, "--key", key, "search", "--log", "acme", "--limit", "1")
	for _, args := range [][]string{{"--log", "other", "search"}, {"search", "--log", "nosuchlog"}} {
		r := run(t, "", append([]string{"--server", s.url, "--key", key}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, `reaches the log "acme"`) {
			t.Errorf("remote trail %s: exit %d, stderr %q; want 2 saying the key reaches acme", strings.Join(args, " "), r.code, r.stderr)
		}
	}

	// A filter the server refuses is a usage error naming the flag, as
	// the same filter is on the data directory.
	for _, args := range [][]string{
		{"search", "--ip", "nope"},
		{"search", "--q", "!!!"},
		{"search", "--cursor", "x"},
		{"export", "--ip", "nope"},
		{"tail", "--ip", "nope"},
	} {
		flag := args[1]
		r := run(t, "", append([]string{"--server", s.url, "--key", key}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "trail "+args[0]+": "+flag+": ") {
			t.Errorf("remote trail %s: exit %d, stderr %q; want 2 naming %s", strings.Join(args, " "), r.code, r.stderr, flag)
		}
	}
	if r := run(t, "", "--server", s.url, "--key", key, "get", "--seq", "9223372036854775807", "--verifier-key", vkeys["acme"]); r.code != 1 || !strings.Contains(r.stderr, "no event at seq 9223372036854775807") {
		t.Errorf("remote trail get --seq MaxInt64: exit %d, stderr %q; want 1, no such event", r.code, r.stderr)
	}
}

// append works against a server too, all lines checked before any is sent.
func TestRemoteAppend(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append,read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)

	evs := events(t)
	r := ok(t, evs, "--server", s.url, "--key", key, "append", "--json")
	if n := len(lines(r.stdout)); n != len(lines(evs)) {
		t.Fatalf("remote append printed %d receipts for %d events", n, len(lines(evs)))
	}
	r = ok(t, "", "append", "--server", s.url, "--key", key, "--actor", "ana", "--action", "user.delete", "--target", "user:u_7", "--json")
	// The log starts with the key's trail.key.create.
	if !strings.Contains(r.stdout, fmt.Sprintf(`"seq":%d`, 1+len(lines(evs)))) {
		t.Errorf("remote append from flags = %s, want seq %d", r.stdout, 1+len(lines(evs)))
	}
	bad := evs + `{"actor":{"id":"x"},"action":"Not Valid"}` + "\n"
	if r := run(t, bad, "--server", s.url, "--key", key, "append"); r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("line %d", len(lines(evs))+1)) {
		t.Errorf("remote append with a bad last line = exit %d, %q; want an error naming the line", r.code, r.stderr)
	}
	// Nothing of the rejected input was stored: the log holds the key's
	// creation, the first input and the one event from flags.
	r = ok(t, "", "--data", data, "logs", "--json")
	if want := fmt.Sprintf(`"size":%d`, 1+len(lines(evs))+1); !strings.Contains(r.stdout, want) {
		t.Errorf("logs = %s, want %s", r.stdout, want)
	}
	// Events too large together for one request go in several.
	var big strings.Builder
	for i := range 200 {
		fmt.Fprintf(&big, `{"actor":{"id":"b%d"},"action":"user.login","reason":"%s","metadata":{"a":"%s"}}`+"\n", i, strings.Repeat("x", 4000), strings.Repeat("y", 4000))
	}
	if r := run(t, big.String(), "--server", s.url, "--key", key, "append", "--json"); r.code != 0 || len(lines(r.stdout)) != 200 {
		t.Errorf("remote append of 200 events of 8 KB = exit %d, %d receipts, %q; want 200 receipts", r.code, len(lines(r.stdout)), r.stderr)
	}
}

func lastLine(s string) string {
	l := lines(s)
	return strings.TrimSpace(l[len(l)-1])
}

// tail -f prints new matching events as the server stores them.
func TestRemoteTail(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append,read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)

	cmd := exec.Command(trailBin, "tail", "-f", "--server", s.url, "--key", key, "--action", "user.delete", "--json")
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// And one printing table rows.
	rows := exec.Command(trailBin, "tail", "-f", "--server", s.url, "--key", key, "--action", "user.delete")
	var rowsOut syncBuffer
	rows.Stdout = &rowsOut
	if err := rows.Start(); err != nil {
		t.Fatal(err)
	}
	defer rows.Process.Kill()
	// The tails have chosen where they start once their own trail.tail
	// records are in the log (reads are audited before they are served).
	for i := 0; ; i++ {
		r := ok(t, "", "--data", data, "--log", "acme", "search", "--action", "trail.tail", "--json")
		if len(lines(r.stdout)) == 2 {
			break
		}
		if i == 100 {
			t.Fatal("the tail did not start within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok(t, `{"actor":{"id":"a"},"action":"user.login"}`+"\n"+`{"actor":{"id":"b"},"action":"user.delete"}`+"\n", "--server", s.url, "--key", key, "append")
	ok(t, "", "--server", s.url, "--key", key, "append", "--actor", "c", "--action", "user.delete")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (strings.Count(out.String(), "\n") < 2 || strings.Count(rowsOut.String(), "\n") < 3) {
		time.Sleep(50 * time.Millisecond)
	}
	got := lines(out.String())
	if len(got) != 2 || !strings.Contains(got[0], `"id":"b"`) || !strings.Contains(got[1], `"id":"c"`) {
		t.Fatalf("tail -f printed %q, want the two user.delete events, b then c", out.String())
	}
	table := lines(rowsOut.String())
	if len(table) != 3 || !strings.HasPrefix(table[0], "TIME  SEQ  ACTOR  ACTION") ||
		!strings.Contains(table[1], "  b  user.delete") || !strings.Contains(table[2], "  c  user.delete") {
		t.Errorf("tail -f without --json printed %q, want a header, then rows of b and c", rowsOut.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("tail after an interrupt: %v, want exit 0", err)
	}
	if r := run(t, "", "--data", data, "tail", "-f"); r.code != 2 {
		t.Errorf("tail without a server = exit %d, want 2", r.code)
	}
}

// cutBody gives the first n bytes of an answer, then fails as a lost
// connection does.
type cutBody struct {
	r io.ReadCloser
	n int
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	p = p[:min(len(p), c.n)]
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

// A remote export the connection cuts off mid-line says so, exits 1 and
// leaves whole lines only; it is no usage error of a flag no one gave.
func TestRemoteExportCutOff(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ok(t, "", "--data", data, "init", "--log", "acme")
	ok(t, events(t), "--data", data, "--log", "acme", "append")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	target, _ := url.Parse(s.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path == "/v1/export" {
			resp.Body = &cutBody{r: resp.Body, n: 1500}
		}
		return nil
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	ps := httptest.NewServer(proxy)
	defer ps.Close()

	r := run(t, "", "--server", ps.URL, "--key", key, "export")
	if r.code != 1 || !strings.Contains(r.stderr, "broke off") || strings.Contains(r.stderr, "--") || strings.Contains(r.stderr, "usage") {
		t.Errorf("cut-off export = exit %d, %q; want 1 and an error saying the export broke off", r.code, r.stderr)
	}
	for _, l := range lines(r.stdout) {
		if !json.Valid([]byte(l)) {
			t.Errorf("cut-off export left a partial line on stdout: %q", l)
		}
	}
}

// A tail of a server that cannot be reached says so on stderr, and keeps
// trying, rather than look like a quiet log.
func TestRemoteTailUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cmd := exec.Command(trailBin, "tail", "-f", "--server", "http://"+addr, "--key", "trail_nokey")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(stderr.String(), "trying again") {
		time.Sleep(50 * time.Millisecond)
	}
	if s := stderr.String(); !strings.Contains(s, "connection refused") || !strings.Contains(s, "trying again") {
		t.Errorf("tail of an unreachable server wrote %q to stderr, want that it cannot connect and tries again", s)
	}
}
