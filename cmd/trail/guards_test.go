package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Files a command writes (export --out, get --proof-file) are never the
// data directory's own, through a symbolic link either; a value that
// reads as a flag is refused; --out - is stdout.
func TestOutputGuards(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	appendAll(t, data)
	db, err := os.ReadFile(filepath.Join(data, "trail.db"))
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "keys")
	if err := os.Symlink(filepath.Join(data, "keys"), link); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"export", "--out", filepath.Join(data, "trail.db")},
		{"export", "--out", filepath.Join(data, "new.ndjson")},
		{"get", "--seq", "0", "--proof-file", filepath.Join(link, "default.key")},
		{"get", "--seq", "0", "--proof-file", data},
	} {
		r := run(t, "", append([]string{"--data", data}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "inside the data directory") {
			t.Errorf("trail %s: exit %d, stderr %q; want 2, saying it is inside the data directory", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(data, "trail.db")); !bytes.Equal(after, db) {
		t.Error("trail.db changed")
	}
	ok(t, "", "--data", data, "verify")

	dir := t.TempDir()
	cmd := exec.Command(trailBin, "--data", data, "export", "--out", "--json")
	cmd.Dir = dir
	if r := runCmd(t, cmd); r.code != 2 || !strings.Contains(r.stderr, "reads as a flag") {
		t.Errorf("trail export --out --json: exit %d, stderr %q; want 2, saying it reads as a flag", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("trail export --out --json wrote %v", entries)
	}
	if r := ok(t, "", "--data", data, "export", "--out", "-"); len(lines(r.stdout)) != 300 {
		t.Errorf("trail export --out - printed %d lines, want the 300 events", len(lines(r.stdout)))
	}
}

// A new key that cannot be written to stdout is revoked, and the command
// fails; any command whose output does not arrive fails.
func TestKeyNotWritten(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(trailBin, "--data", data, "keys", "create", "--log", "default", "--scope", "read")
	cmd.Stdout, cmd.Stderr = full, &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "revoked") {
		t.Errorf("trail keys create > /dev/full: %v, stderr %q; want a failure saying the key was revoked", err, stderr.String())
	}
	var keys []struct {
		Scopes    []string `json:"scopes"`
		RevokedAt string   `json:"revoked_at"`
	}
	r := ok(t, "", "--data", data, "keys", "list", "--json")
	for _, line := range lines(r.stdout) {
		var k struct {
			Scopes    []string `json:"scopes"`
			RevokedAt string   `json:"revoked_at"`
		}
		if err := json.Unmarshal([]byte(line), &k); err != nil {
			t.Fatalf("keys list --json line %q: %v", line, err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 || keys[0].RevokedAt == "" {
		t.Errorf("keys after the failed create: %+v, want one, revoked", keys)
	}

	stderr.Reset()
	cmd = exec.Command(trailBin, "--data", data, "logs")
	cmd.Stdout, cmd.Stderr = full, &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "no space left") {
		t.Errorf("trail logs > /dev/full: %v, stderr %q; want a failure saying why", err, stderr.String())
	}
}

// serve and witness refuse an empty or malformed --addr rather than
// listen on every interface.
func TestListenAddr(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	w := filepath.Join(t.TempDir(), "w")
	ok(t, "", "witness", "init", "--data", w, "--name", "example.com/w")
	for _, args := range [][]string{
		{"--data", data, "serve", "--addr", ""},
		{"--data", data, "serve", "--addr", "8080"},
		{"--data", data, "serve", "--metrics-addr", "metrics"},
		{"witness", "--data", w, "--log", vkey, "--addr", ""},
	} {
		// A server that listens after all is stopped, not waited for.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r := runCmd(t, exec.CommandContext(ctx, trailBin, args...))
		cancel()
		if r.code != 2 || !strings.Contains(r.stderr, "want HOST:PORT") {
			t.Errorf("trail %q: exit %d, stderr %q; want 2 and HOST:PORT", args, r.code, r.stderr)
		}
	}
}

// Secrets given in the wrong place are never repeated: a signing key
// given as a verifier key (or a file of one), a secret file given as a
// policy, an API key given to revoke (which revokes it) or as the server,
// a server URL's password. Files that flags name are read up to a limit.
func TestSecretsNotEchoed(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	keyFile := filepath.Join(data, "keys", "default.key")
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	skey := strings.TrimSpace(string(b))
	secret := skey[strings.LastIndex(skey, "+")+1:]
	apiKey := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "read").stdout)
	apiSecret := apiKey[strings.LastIndex(apiKey, "_")+1:]
	for _, c := range []struct {
		args   []string
		code   int
		secret string
	}{
		{[]string{"--data", data, "verify", "--verifier-key", skey}, 2, secret},
		{[]string{"--data", data, "verify", "--verifier-key", keyFile}, 2, secret},
		{[]string{"--data", data, "checkpoint", "--verifier-key", skey}, 2, secret},
		{[]string{"--data", data, "verify", "--witness-policy", keyFile}, 2, secret},
		{[]string{"search", "--server", "ftp://u:SrvSecret@127.0.0.1:1/", "--key", apiKey}, 2, "SrvSecret"},
		{[]string{"search", "--server", apiKey, "--key", apiKey}, 2, apiSecret},
		{[]string{"witness", "--data", t.TempDir(), "--log", skey}, 2, secret},
	} {
		r := run(t, "", c.args...)
		if r.code != c.code || strings.Contains(r.stderr+r.stdout, c.secret) {
			t.Errorf("trail %v: exit %d, output %q; want %d, without the secret", c.args, r.code, r.stderr+r.stdout, c.code)
		}
	}
	r := ok(t, "", "--data", data, "keys", "revoke", apiKey)
	if strings.Contains(r.stdout+r.stderr, apiSecret) {
		t.Errorf("trail keys revoke KEY printed the key: %q", r.stdout+r.stderr)
	}
	if r := ok(t, "", "--data", data, "keys", "list", "--json"); !strings.Contains(r.stdout, `"revoked_at":"2`) {
		t.Errorf("trail keys revoke KEY did not revoke it: %s", r.stdout)
	}

	// A device that never ends is not read to its end.
	if r := run(t, "", "--data", data, "verify", "--against", "/dev/zero"); r.code != 2 || !strings.Contains(r.stderr, "over 1048576 bytes") {
		t.Errorf("trail verify --against /dev/zero: exit %d, stderr %q; want 2, saying it is too large", r.code, r.stderr)
	}
}

// Commands that work on a store only refuse to run when a server is
// named and no store is, rather than make ./trail-data; with a store
// named as well they work on it.
func TestStoreOnlyWithServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--server", "http://127.0.0.1:1", "init"},
		{"--server", "http://127.0.0.1:1", "keys", "create", "--log", "default", "--scope", "read"},
		{"--server", "http://127.0.0.1:1", "keys", "list"},
		{"demo", "--server", "http://127.0.0.1:1", "--events", "5"},
		{"--server", "http://127.0.0.1:1", "migrate"},
	} {
		cmd := exec.Command(trailBin, args...)
		cmd.Dir = dir
		if r := runCmd(t, cmd); r.code != 2 || !strings.Contains(r.stderr, "works on a store, not on a server") {
			t.Errorf("trail %q: exit %d, stderr %q; want 2, saying it works on a store", args, r.code, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the commands left %v", entries)
	}
	ok(t, "", "--server", "http://127.0.0.1:1", "--data", filepath.Join(dir, "data"), "init")
}

// A range that ends before it starts, and a log to copy named twice, are
// mistakes, refused rather than answered with nothing or done twice.
func TestRefusedRanges(t *testing.T) {
	t.Parallel()
	data, _ := initLog(t)
	appendAll(t, data)
	for _, args := range [][]string{
		{"--data", data, "search", "--since", "1h", "--until", "2h"},
		{"--data", data, "export", "--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"},
	} {
		if r := run(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "before since") {
			t.Errorf("trail %q: exit %d, stderr %q; want 2, saying until is before since", args, r.code, r.stderr)
		}
	}
	if r := run(t, "", "--data", "", "search"); r.code != 2 || !strings.Contains(r.stderr, "--data: empty") {
		t.Errorf("trail --data '' search: exit %d, stderr %q; want 2, saying --data is empty", r.code, r.stderr)
	}
	to := filepath.Join(t.TempDir(), "copy")
	if r := run(t, "", "copy", "--from", data, "--to", to, "--log", "default", "--log", "default"); r.code != 2 || !strings.Contains(r.stderr, "given twice") {
		t.Errorf("trail copy --log default --log default: exit %d, stderr %q; want 2, saying it is given twice", r.code, r.stderr)
	}
}
