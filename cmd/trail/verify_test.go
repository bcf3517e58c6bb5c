package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// verify --against a file that is not a signed checkpoint is a usage
// error; a signed checkpoint that does not verify, or is of another log,
// is a verification failure. Locally and against a server.
func TestVerifyAgainstNotACheckpoint(t *testing.T) {
	t.Parallel()
	data, vkey := initLog(t)
	appendAll(t, data)
	saved := ok(t, "", "--data", data, "checkpoint").stdout
	other := ok(t, "", "--data", data, "init", "--log", "other")
	otherKey := verifierKeyRE.FindStringSubmatch(other.stdout)[1]
	ok(t, "", "--data", data, "--log", "other", "append", "--actor", "a", "--action", "user.login")
	otherCP := ok(t, "", "--data", data, "--log", "other", "checkpoint").stdout
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "default", "--scope", "read").stdout)

	body, sig, _ := strings.Cut(saved, "\n\n")
	cpLines := strings.Split(body, "\n")
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notCheckpoints := map[string]string{
		"empty":        file("empty.txt", ""),
		"text":         file("notes.txt", "remember to save a checkpoint\n"),
		"unsigned":     file("unsigned.txt", body+"\n"),
		"not a tree":   file("bad-size.txt", cpLines[0]+"\nthree hundred\n"+cpLines[2]+"\n\n"+sig),
		"truncated":    file("truncated.txt", saved[:len(saved)-20]),
		"the verifier": file("vkey.txt", vkey+"\n"),
	}
	// The root hash changed, still 32 bytes of base64: the signature no
	// longer matches.
	root := []byte(cpLines[2])
	if root[0] == 'A' {
		root[0] = 'B'
	} else {
		root[0] = 'A'
	}
	forged := file("forged.txt", cpLines[0]+"\n"+cpLines[1]+"\n"+string(root)+"\n\n"+sig)
	ofOther := file("other.txt", otherCP)

	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)
	for _, where := range []struct {
		name string
		args []string
	}{
		{"local", []string{"--data", data, "verify", "--verifier-key", vkey}},
		{"remote", []string{"--server", s.url, "--key", key, "verify", "--verifier-key", vkey}},
	} {
		for name, path := range notCheckpoints {
			r := run(t, "", append(where.args, "--against", path)...)
			if r.code != 2 || !strings.Contains(r.stderr, "not a signed checkpoint") || strings.Contains(r.stderr, "FAILED") {
				t.Errorf("%s verify --against a file of %s: exit %d, stderr %q; want 2 and not a signed checkpoint", where.name, name, r.code, r.stderr)
			}
		}
		r := run(t, "", append(where.args, "--against", forged)...)
		if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
			t.Errorf("%s verify --against a checkpoint with another root: exit %d, stderr %q; want 1 and verification FAILED", where.name, r.code, r.stderr)
		}
		r = run(t, "", append(where.args, "--against", ofOther)...)
		if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") || !strings.Contains(r.stderr, "another log") {
			t.Errorf("%s verify --against another log's checkpoint: exit %d, stderr %q; want 1, verification FAILED, another log", where.name, r.code, r.stderr)
		}
		r = run(t, saved, append(where.args, "--against", "-")...)
		if r.code != 0 {
			t.Errorf("%s verify --against - (the saved checkpoint on stdin): exit %d, stderr %q; want 0", where.name, r.code, r.stderr)
		}
	}
	// The other log's checkpoint verifies with the other log's key, but
	// not as this log's.
	r := run(t, "", "--data", data, "verify", "--verifier-key", otherKey, "--against", ofOther)
	if r.code != 1 || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("verify of log default with the other log's key: exit %d, stderr %q; want 1 and FAILED", r.code, r.stderr)
	}
}

// A damaged event fails verify naming its seq, on a data directory and
// through a server, whose export stops at it.
func TestVerifyDamagedEvent(t *testing.T) {
	backends.Run(t, testVerifyDamagedEvent)
}

func testVerifyDamagedEvent(t *testing.T, b backends.Backend) {
	loc := b.New(t)
	st := storeOn(t, b, loc)
	vkey := initLogOn(t, st)
	rs := appendAllOn(t, st)
	key := lastLine(ok(t, "", at(st, "keys", "create", "--log", "default", "--scope", "read")...).stdout)
	seq, err := strconv.ParseInt(rs[5][0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	tp := b.Tamper(t, loc)
	if err := tp.BreakEvent(context.Background(), "default", seq); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	s := serveOn(t, st, "--rate-limit", "0")
	defer s.stop(t)
	for _, where := range []struct {
		name string
		args []string
	}{
		{"local", at(st, "verify", "--verifier-key", vkey, "--json")},
		{"remote", []string{"--server", s.url, "--key", key, "verify", "--verifier-key", vkey, "--json"}},
	} {
		r := run(t, "", where.args...)
		var res struct {
			Verified bool
			Seq      *int64
			Problem  string
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 || res.Verified || res.Seq == nil || *res.Seq != seq || !strings.Contains(res.Problem, "cannot be read") {
			t.Errorf("%s trail verify --json of a log with event %d damaged: exit %d, stdout %q (%v); want 1, not verified, seq %d, cannot be read",
				where.name, seq, r.code, r.stdout, err, seq)
		}
	}
}
