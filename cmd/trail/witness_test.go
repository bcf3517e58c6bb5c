package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	whttp "github.com/transparency-dev/witness/client/http"
	"github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/policy"
)

// witnessInit runs trail witness init and returns the verifier key it
// printed on its last line.
func witnessInit(t *testing.T, data, name string) (vkey string, out string) {
	t.Helper()
	r := ok(t, "", "witness", "init", "--data", data, "--name", name)
	ls := lines(r.stdout)
	return ls[len(ls)-1], r.stdout
}

// startWitness starts trail witness on a free port for the logs vkeys and
// waits until it listens.
// With serve, it runs trail witness serve, the same command.
func startWitness(t *testing.T, serve bool, data string, vkeys ...string) *served {
	t.Helper()
	args := []string{"witness", "--data", data, "--addr", "127.0.0.1:0"}
	if serve {
		args = append([]string{"witness", "serve"}, args[1:]...)
	}
	for _, k := range vkeys {
		args = append(args, "--log", k)
	}
	return startProcess(t, args...)
}

func TestWitnessInit(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "w")
	vkey, out := witnessInit(t, data, "witness.example/w1")
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatalf("the last line of trail witness init, %q, is not a cosignature/v1 verifier key: %v\n%s", vkey, err, out)
	}
	if raw, _ := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2]); len(raw) != 33 || raw[0] != 0x04 {
		t.Errorf("verifier key %q is not of type 0x04 (Ed25519 cosignature/v1)", vkey)
	}
	if v.Name() != "witness.example/w1" {
		t.Errorf("verifier key name = %q, want witness.example/w1", v.Name())
	}
	if want := "witness witness.example/w1 " + vkey + " http://"; !strings.Contains(out, want) {
		t.Errorf("trail witness init printed no policy line %q:\n%s", want, out)
	}
	fi, err := os.Stat(filepath.Join(data, "witness.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("witness.key: %v, %v; want mode 0600", fi, err)
	}
	key, _ := os.ReadFile(filepath.Join(data, "witness.key"))
	r := run(t, "", "witness", "init", "--data", data, "--name", "witness.example/w2")
	if r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("second init: exit %d, stderr %q; want 1 saying the key exists", r.code, r.stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(data, "witness.key")); string(again) != string(key) {
		t.Error("a second init changed the key")
	}
	for _, args := range [][]string{
		{"witness", "init", "--data", data}, // no --name
		{"witness", "init", "--data", t.TempDir(), "--name", "bad name+x"},
		{"witness", "init", "--data", data, "--log", vkey},            // serve's flag
		{"witness", "--data", data},                                   // no --log
		{"witness", "--data", data, "--log", "nonsense"},              // a bad key
		{"witness", "--data", data, "--name", "x", "--log", v.Name()}, // init's flag
		{"witness", "frobnicate", "--data", data},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("trail %s: exit %d, want 2; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	_, logKey, err := note.GenerateKey(nil, "example.com/x")
	if err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "witness", "--data", filepath.Join(t.TempDir(), "none"), "--addr", "127.0.0.1:0", "--log", logKey); r.code != 1 || !strings.Contains(r.stderr, "trail witness init") {
		t.Errorf("witness without init: exit %d, stderr %q; want 1 saying to run trail witness init", r.code, r.stderr)
	}
}

// witnessPost sends an add-checkpoint request and returns the status,
// Content-Type and body of the answer.
func witnessPost(t *testing.T, witnessURL string, old int64, proof [][]byte, cp []byte) (int, string, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	resp, err := http.Post(witnessURL+"/add-checkpoint", "text/plain", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// checkpointOf returns the latest checkpoint of the default log of data,
// as trail checkpoint prints it, and its size.
func checkpointOf(t *testing.T, data string) ([]byte, int64) {
	t.Helper()
	cp := ok(t, "", "checkpoint", "--data", data).stdout
	ls := strings.SplitN(cp, "\n", 3)
	size, err := strconv.ParseInt(ls[1], 10, 64)
	if err != nil {
		t.Fatalf("trail checkpoint printed %q", cp)
	}
	return []byte(cp), size
}

// consistency proves with the library that the default log of data at
// size from is a prefix of it at size to.
func consistency(t *testing.T, data string, from, to int64) [][]byte {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Open(ctx, data, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Log(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.ProveConsistency(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, h := range p {
		out = append(out, h[:])
	}
	return out
}

// generated returns n events as NDJSON, their actors named after prefix.
func generated(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"actor":{"id":"%s-%d"},"action":"user.login"}`+"\n", prefix, i)
	}
	return b.String()
}

// A trail witness process cosigns a Trail log's checkpoints as it grows,
// refuses a fork of it (same key, another tree) and a rollback with the
// statuses of tlog-witness, and still does after kill -9 and a restart.
func TestWitnessCosignsTrailLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataA, vkey := initLog(t)
	wdata := filepath.Join(t.TempDir(), "witness")
	wkey, initOut := witnessInit(t, wdata, "witness.example/w1")
	w := startWitness(t, false, wdata, vkey)
	if !strings.HasPrefix(w.url, "http://127.0.0.1:") {
		t.Errorf("the witness listens on %s, want loopback", w.url)
	}
	if !strings.Contains(w.banner, wkey) {
		t.Errorf("the witness did not print its verifier key:\n%s", w.banner)
	}
	u, _ := url.Parse(w.url)
	client := whttp.NewWitness(u, http.DefaultClient)
	wv, err := fnote.NewVerifierForCosignatureV1(wkey)
	if err != nil {
		t.Fatal(err)
	}
	cosigned := func(cp, sigs []byte) {
		t.Helper()
		n, err := note.Open(append(append([]byte{}, cp...), sigs...), note.VerifierList(wv))
		if err != nil || len(n.Sigs) != 1 {
			t.Fatalf("cosignature %q on\n%s\ndoes not verify with %s: %v", sigs, cp, wkey, err)
		}
	}

	appendAll(t, dataA)
	cp300, size := checkpointOf(t, dataA)
	if size != 300 {
		t.Fatalf("size %d, want 300", size)
	}
	sigs, _, err := client.Update(ctx, 0, cp300, nil)
	if err != nil {
		t.Fatalf("Update(0, size 300) = %v", err)
	}
	cosigned(cp300, sigs)
	ok(t, generated("a", 300), "append", "--data", dataA)
	cp600, _ := checkpointOf(t, dataA)
	sigs, _, err = client.Update(ctx, 300, cp600, consistency(t, dataA, 300, 600))
	if err != nil {
		t.Fatalf("Update(300, size 600) = %v", err)
	}
	cosigned(cp600, sigs)

	// The policy line init printed, with the witness's URL, makes a
	// tlog-policy that the cosigned checkpoint meets and the log's own
	// checkpoint does not.
	policyLine := regexp.MustCompile(`(?m)^\s*(witness \S+ \S+) http://HOST:PORT$`).FindStringSubmatch(initOut)
	if policyLine == nil {
		t.Fatalf("trail witness init printed no policy line:\n%s", initOut)
	}
	pol, err := policy.Parse([]byte("log " + vkey + "\n" + policyLine[1] + " " + w.url + "\nquorum witness.example/w1\n"))
	if err != nil {
		t.Fatalf("the policy line of trail witness init: %v", err)
	}
	if r := pol.Check(append(append([]byte{}, cp600...), sigs...)); !r.Met {
		t.Errorf("policy check of the cosigned checkpoint: %v, want met", r)
	}
	if r := pol.Check(cp600); r.Met {
		t.Errorf("policy check of the log's checkpoint alone: %v, want not met", r)
	}

	// The operator forks the log: the same signing key over another tree.
	dataB := filepath.Join(t.TempDir(), "b")
	ok(t, "", "init", "--data", dataB, "--log", "seed")
	key, err := os.ReadFile(filepath.Join(dataA, "keys", "default.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataB, "keys", "default.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, vkeyB := initLogAt(t, dataB); vkeyB != vkey {
		t.Fatalf("the fork's verifier key is %s, want the log's %s", vkeyB, vkey)
	}
	ok(t, generated("b", 100), "append", "--data", dataB)
	fork100, _ := checkpointOf(t, dataB)
	ok(t, generated("b", 500), "append", "--data", dataB)
	fork600, _ := checkpointOf(t, dataB)

	sameOrigin, _ := initLog(t) // another key for the log's origin
	ok(t, generated("c", 3), "append", "--data", sameOrigin)
	sameOriginCP, _ := checkpointOf(t, sameOrigin)
	other := filepath.Join(t.TempDir(), "other") // a log the witness does not know
	ok(t, "", "init", "--data", other, "--origin", "example.com/other")
	ok(t, generated("d", 3), "append", "--data", other)
	otherCP, _ := checkpointOf(t, other)

	refused := func(witnessSize int64) {
		t.Helper()
		for _, tc := range []struct {
			name       string
			old        int64
			cp         []byte
			wantStatus int
		}{
			{"the fork at the witness's size", witnessSize, fork600, 422},
			{"the fork from old size 0", 0, fork600, 409},
			{"the fork rolled back to 100", 100, fork100, 409},
			{"a rollback to 300", 300, cp300, 409},
			{"a rollback from the witness's size", witnessSize, cp300, 400},
			{"an unknown log", 0, otherCP, 404},
			{"another key for the log's origin", 0, sameOriginCP, 403},
		} {
			status, ctype, body := witnessPost(t, w.url, tc.old, nil, tc.cp)
			if status != tc.wantStatus {
				t.Errorf("%s: status %d %q, want %d", tc.name, status, body, tc.wantStatus)
				continue
			}
			if status == 409 && (body != fmt.Sprintf("%d\n", witnessSize) || ctype != "text/x.tlog.size") {
				t.Errorf("%s: 409 %q (%s), want %q (text/x.tlog.size)", tc.name, body, ctype, fmt.Sprintf("%d\n", witnessSize))
			}
		}
	}
	refused(600)
	if _, size, err := client.Update(ctx, 0, cp600, nil); !errors.Is(err, witness.ErrCheckpointStale) || size != 600 {
		t.Errorf("Update(0, size 600) = %d, %v; want 600, ErrCheckpointStale", size, err)
	}

	// kill -9, and a new process on the same directory.
	w.kill(t)
	http.DefaultClient.CloseIdleConnections() // those to the killed witness
	w = startWitness(t, true, wdata, vkey)
	refused(600)
	ok(t, generated("a", 300), "append", "--data", dataA)
	cp900, _ := checkpointOf(t, dataA)
	u, _ = url.Parse(w.url)
	client = whttp.NewWitness(u, http.DefaultClient)
	if _, size, err := client.Update(ctx, 0, cp900, nil); !errors.Is(err, witness.ErrCheckpointStale) || size != 600 {
		t.Fatalf("after kill -9, Update(0, size 900) = %d, %v; want 600, ErrCheckpointStale", size, err)
	}
	sigs, _, err = client.Update(ctx, 600, cp900, consistency(t, dataA, 600, 900))
	if err != nil {
		t.Fatalf("after kill -9, Update(600, size 900) = %v", err)
	}
	cosigned(cp900, sigs)
	if status, _, body := witnessPost(t, w.url, 900, nil, fork600); status != 400 {
		t.Errorf("the fork of size 600 from 900: %d %q, want 400", status, body)
	}

	// SIGTERM stops it with exit status 0.
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = w.cmd.Wait()
	close(w.done)
	if err != nil {
		t.Fatalf("trail witness after SIGTERM: %v; stderr:\n%s", err, w.stderr)
	}
	if !strings.Contains(w.stderr.String(), `"msg":"cosigned"`) {
		t.Errorf("the witness logged no cosigned submission:\n%s", w.stderr)
	}
	if !strings.Contains(w.stderr.String(), `"status":422`) {
		t.Errorf("the witness logged no refused fork:\n%s", w.stderr)
	}
	for _, line := range lines(w.stderr.String()) {
		if !json.Valid([]byte(line)) {
			t.Errorf("the witness logged a line that is not JSON: %q", line)
		}
	}
}
