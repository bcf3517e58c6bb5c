package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReceiptFiles writes receipts with trail get --proof-file, from a
// data directory and from a server, and checks them offline with trail
// verify --receipt: good ones pass, an altered one or the wrong key fails
// with exit status 1, and a receipt without a pinned key is a usage error.
func TestReceiptFiles(t *testing.T) {
	data, vkey := initLog(t)
	rs := appendAll(t, data)
	dir := t.TempDir()
	local := filepath.Join(dir, "local.txt")
	ok(t, "", "get", "--data", data, "--proof-file", local, rs[7][1])

	r := ok(t, "", "verify", "--receipt", local, "--verifier-key", vkey)
	if !strings.Contains(r.stdout, "Receipt verified: the event at seq 7") || !strings.Contains(r.stdout, rs[7][1]) {
		t.Fatalf("verify --receipt printed:\n%s", r.stdout)
	}
	r = ok(t, "", "verify", "--receipt", local, "--verifier-key", vkey, "--json")
	var res struct {
		Verified bool
		Seq      int64
		Event    json.RawMessage
		TreeSize int64 `json:"tree_size"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Verified || res.Seq != 7 || res.TreeSize != 300 || !bytes.Contains(res.Event, []byte(rs[7][1])) {
		t.Fatalf("verify --receipt --json = %s (%v)", r.stdout, err)
	}
	// From stdin too.
	b, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, string(b), "verify", "--receipt", "-", "--verifier-key", vkey)

	// Altered: the event's action changed in the receipt's extra data
	// cannot be told from the base64 text, so a hash line is changed.
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "index ") {
			// Another base64 digit, so that the line still decodes.
			h := []byte(lines[i+1])
			if h[0] == 'A' {
				h[0] = 'B'
			} else {
				h[0] = 'A'
			}
			lines[i+1] = string(h)
			break
		}
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "verify", "--receipt", bad, "--verifier-key", vkey)
	if r.code != 1 || !strings.Contains(r.stderr, "does not reach the checkpoint's root") {
		t.Fatalf("verify --receipt of an altered receipt: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	_, otherKey := initLog(t)
	if r = run(t, "", "verify", "--receipt", local, "--verifier-key", otherKey); r.code != 1 {
		t.Fatalf("verify --receipt with another log's key: exit %d\n%s", r.code, r.stderr)
	}
	if r = run(t, "", "verify", "--receipt", local); r.code != 2 || !strings.Contains(r.stderr, "--verifier-key") {
		t.Fatalf("verify --receipt without a key: exit %d\n%s", r.code, r.stderr)
	}

	// From a server: the same receipt, checked the same way.
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "read", "--name", "auditor").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	remote := filepath.Join(dir, "remote.txt")
	ok(t, "", "--server", s.url, "--key", key, "get", "--verifier-key", vkey, "--proof-file", remote, rs[9][1])
	r = ok(t, "", "verify", "--receipt", remote, "--verifier-key", vkey)
	if !strings.Contains(r.stdout, "seq 9") {
		t.Fatalf("verify --receipt of the server's receipt printed:\n%s", r.stdout)
	}
}
