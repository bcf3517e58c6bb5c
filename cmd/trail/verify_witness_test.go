package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// witnessProc is a trail witness process started by witnessProcesses.
type witnessProc struct {
	*served
	data, addr, vkey string
}

// witnessProcesses initializes and starts n trail witness processes for
// the log vkey and returns a policy file naming them w1, w2, … with the
// quorum line given, and the processes.
func witnessProcesses(t *testing.T, n int, vkey, quorum string) (string, []*witnessProc) {
	t.Helper()
	var text strings.Builder
	fmt.Fprintf(&text, "# the log\nlog %s\n", vkey)
	var ws []*witnessProc
	for i := range n {
		data := filepath.Join(t.TempDir(), fmt.Sprintf("witness%d", i+1))
		wkey, _ := witnessInit(t, data, fmt.Sprintf("witness.example/w%d", i+1))
		w := &witnessProc{data: data, addr: "127.0.0.1:0", vkey: vkey}
		w.start(t)
		ws = append(ws, w)
		fmt.Fprintf(&text, "witness w%d %s %s\n", i+1, wkey, w.url)
	}
	text.WriteString(quorum + "\n")
	return writePolicy(t, text.String()), ws
}

// start starts the witness on its address (a free port the first time,
// the same one after), on its state, and waits until it listens.
func (w *witnessProc) start(t *testing.T) {
	t.Helper()
	w.served = startProcess(t, "witness", "--data", w.data, "--addr", w.addr, "--log", w.vkey)
	w.addr = strings.TrimPrefix(w.served.url, "http://")
}

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// verifyJSON is what trail verify --json prints about witnesses.
type verifyJSON struct {
	Verified  bool
	Events    int64
	Problem   string
	Witnesses *struct {
		Quorum    string
		Met       bool
		Cosigners []struct {
			Name string
			Time time.Time
		}
		Missing []string
	}
}

// trail verify --witness-policy refuses a policy file it cannot use, naming
// the file and the line, before it reads anything of the server.
func TestVerifyWitnessPolicyFileErrors(t *testing.T) {
	data, vkey := initLog(t)
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--scope", "read").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	remote := []string{"--server", s.url, "--key", key, "verify", "--verifier-key", vkey}
	for _, tc := range []struct {
		name, policy, want string
	}{
		{"unknown keyword", "log " + vkey + "\nwitnesses w1 x\nquorum none\n", `policy line 2: unknown keyword "witnesses"`},
		{"log key as a witness key", "witness w1 " + vkey + "\nquorum w1\n", `policy line 1: witness w1 key`},
		{"no quorum", "log " + vkey + "\n", "no quorum line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writePolicy(t, tc.policy)
			r := run(t, "", append(remote, "--witness-policy", f)...)
			if r.code != 2 || !strings.Contains(r.stderr, "--witness-policy "+f+": ") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("verify with a bad policy = exit %d, %q; want 2 naming %s and %q", r.code, r.stderr, f, tc.want)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "none.txt")
	if r := run(t, "", append(remote, "--witness-policy", missing)...); r.code != 2 || !strings.Contains(r.stderr, "none.txt") {
		t.Errorf("verify with a missing policy file = exit %d, %q; want 2 naming it", r.code, r.stderr)
	}
	f := writePolicy(t, "quorum none\n")
	if r := ok(t, "", "--data", data, "verify", "--witness-policy", f); !strings.Contains(r.stdout, "witnesses: quorum none met, 0 of 0 cosigned the checkpoint of ") {
		t.Errorf("local verify with quorum none printed %q", r.stdout)
	}
	_, otherKey, err := note.GenerateKey(rand.Reader, "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	other := writePolicy(t, "log "+otherKey+"\nquorum none\n")
	if r := run(t, "", "--data", data, "verify", "--witness-policy", other); r.code == 0 || !strings.Contains(r.stderr, "--witness-policy") {
		t.Errorf("local verify with another log's policy = exit %d, %q; want a failure naming --witness-policy", r.code, r.stderr)
	}
	// quorum none asks for no witness: the log's signature is enough.
	r := ok(t, "", append(remote, "--witness-policy", f)...)
	if !strings.Contains(r.stdout, "verified") || !strings.Contains(r.stdout, "witnesses: quorum none met, 0 of 0 cosigned") {
		t.Errorf("verify with quorum none printed %q", r.stdout)
	}
}

// A checkpoint no witness of the policy cosigned (a server that submits
// its checkpoints to none of them) fails trail verify --witness-policy with
// exit 1, once its events verified, naming the witnesses missing.
func TestVerifyNotWitnessed(t *testing.T) {
	data, vkey := initLog(t)
	ok(t, generated("u", 20), "--data", data, "append")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--scope", "read").stdout)
	pol, _ := witnessProcesses(t, 2, vkey, "group both all w1 w2\nquorum both")
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	remote := []string{"--server", s.url, "--key", key, "verify", "--verifier-key", vkey, "--witness-policy", pol}

	r := run(t, "", remote...)
	if r.code != 1 {
		t.Fatalf("verify of a checkpoint no witness cosigned = exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"verification FAILED", "not witnessed: 0 of 2 witnesses cosigned", "quorum 2 of w1, w2: not met", "missing w1, w2"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("verify's error %q does not say %q", r.stderr, want)
		}
	}
	for _, want := range []string{`witnesses: quorum 2 of w1, w2 NOT MET, 0 of 2 cosigned`, `(?m)^\s+w1\s+missing$`, `(?m)^\s+w2\s+missing$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("verify printed\n%s\nwithout %q", r.stdout, want)
		}
	}
	if strings.Contains(r.stdout, "verified") {
		t.Errorf("verify of a checkpoint short of its quorum printed %q", r.stdout)
	}

	r = run(t, "", append(remote, "--json")...)
	var got verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("verify --json printed %q: %v", r.stdout, err)
	}
	if r.code != 1 || got.Verified || got.Witnesses == nil || got.Witnesses.Met || len(got.Witnesses.Cosigners) != 0 ||
		strings.Join(got.Witnesses.Missing, ",") != "w1,w2" || got.Witnesses.Quorum != "2 of w1, w2" || !strings.Contains(got.Problem, "not witnessed") {
		t.Errorf("verify --json = exit %d, %s; want not verified, witnesses w1, w2 missing", r.code, r.stdout)
	}
	// Locally too: the store holds no checkpoint the witnesses cosigned.
	r = run(t, "", "--data", data, "verify", "--verifier-key", vkey, "--witness-policy", pol)
	if r.code != 1 || !strings.Contains(r.stderr, "no stored checkpoint of the log meets the witness policy") || !strings.Contains(r.stderr, "missing w1, w2") ||
		!strings.Contains(r.stdout, "NOT MET, 0 of 2 cosigned the checkpoint of ") {
		t.Errorf("local verify of a log no witness cosigned = exit %d\nstdout:\n%s\nstderr:\n%s\nwant 1, not witnessed", r.code, r.stdout, r.stderr)
	}
	// Without the policy the same log verifies.
	if r := ok(t, "", remote[:len(remote)-2]...); !strings.Contains(r.stdout, "verified") || strings.Contains(r.stdout, "witnesses") {
		t.Errorf("verify without --witness-policy printed %q", r.stdout)
	}
}
