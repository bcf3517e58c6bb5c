package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runWith runs trail with args and the environment env (Trail's own
// variables of this process left out), like run.
func runWith(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(trailBin, args...)
	cmd.Env = shellEnv(env...)
	return runCmd(t, cmd)
}

// append --server works with a key that may only append, from flags and
// from stdin.
func TestRemoteAppendKey(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	key := lastLine(ok(t, "", "--data", data, "keys", "create", "--log", "acme", "--scope", "append").stdout)
	s := serve(t, data, "--rate-limit", "0")
	defer s.stop(t)

	r := ok(t, "", "append", "--server", s.url, "--key", key, "--actor", "ana", "--action", "user.login", "--json")
	if !strings.Contains(r.stdout, `"seq":1`) { // after the key's trail.key.create
		t.Errorf("append --server with an append key = %s, want seq 1", r.stdout)
	}
	r = ok(t, events(t), "--server", s.url, "--key", key, "append")
	if n := len(lines(r.stdout)); n != len(lines(events(t))) {
		t.Errorf("append --server with an append key printed %d receipts for %d events", n, len(lines(events(t))))
	}
}

// checkpoint and logs read the server of --server or $TRAIL_SERVER, not
// the data directory, which may hold other logs.
func TestRemoteCheckpointAndLogs(t *testing.T) {
	local := filepath.Join(t.TempDir(), "local")
	ok(t, "", "--data", local, "init")
	ok(t, events(t), "--data", local, "append")
	remote := filepath.Join(t.TempDir(), "remote")
	ok(t, "", "--data", remote, "init", "--log", "acme")
	ok(t, `{"actor":{"id":"a"},"action":"user.login"}`+"\n", "--data", remote, "--log", "acme", "append")
	key := lastLine(ok(t, "", "--data", remote, "keys", "create", "--log", "acme", "--scope", "read").stdout)
	var vkey string
	{
		var l struct {
			Name        string
			VerifierKey string `json:"verifier_key"`
		}
		json.Unmarshal([]byte(ok(t, "", "--data", remote, "logs", "--json").stdout), &l)
		vkey = l.VerifierKey
	}
	otherKey := verifierKeyRE.FindStringSubmatch(ok(t, "", "--data", remote, "init", "--log", "other").stdout)[1]
	s := serve(t, remote, "--rate-limit", "0")
	defer s.stop(t)
	want := ok(t, "", "--data", remote, "--log", "acme", "checkpoint").stdout

	env := []string{"TRAIL_DATA=" + local, "TRAIL_SERVER=" + s.url, "TRAIL_KEY=" + key}
	for _, args := range [][]string{
		{"checkpoint"},
		{"checkpoint", "--verifier-key", vkey},
		{"--server", s.url, "--key", key, "--data", local, "checkpoint"},
	} {
		r := runWith(t, env, args...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("trail %s with TRAIL_SERVER set: exit %d, stdout\n%s\nstderr %s\nwant the server's checkpoint\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
	}
	if r := runWith(t, env, "checkpoint", "--verifier-key", otherKey); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "verification FAILED") {
		t.Errorf("trail checkpoint --verifier-key of another log: exit %d, stdout %q, stderr %q; want 1, nothing printed, FAILED", r.code, r.stdout, r.stderr)
	}

	// An event and the read key's trail.key.create.
	size := 2
	for _, scope := range []string{"read", "append"} {
		env := env
		if scope == "append" {
			// A log's public facts are open to any key of it. Making
			// the key appends its trail.key.create beside the server,
			// which serves it within about half a second.
			appendKey := lastLine(ok(t, "", "--data", remote, "keys", "create", "--log", "acme", "--scope", "append").stdout)
			size++
			want = ok(t, "", "--data", remote, "--log", "acme", "checkpoint").stdout
			env = []string{"TRAIL_DATA=" + local, "TRAIL_SERVER=" + s.url, "TRAIL_KEY=" + appendKey}
			for start := time.Now(); ; {
				r := runWith(t, env, "checkpoint")
				if r.code == 0 && r.stdout == want {
					break
				}
				if time.Since(start) > 2*time.Second {
					t.Errorf("trail checkpoint with an append key: exit %d, stdout %q, stderr %q; want the server's checkpoint\n%s", r.code, r.stdout, r.stderr, want)
					break
				}
			}
		}
		r := runWith(t, env, "logs", "--json")
		var info struct {
			Origin      string
			Size        int64
			VerifierKey string `json:"verifier_key"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); r.code != 0 || err != nil || info.Size != int64(size) || info.VerifierKey != vkey || !strings.HasPrefix(vkey, info.Origin+"+") {
			t.Errorf("trail logs --json with TRAIL_SERVER set and a %s key: exit %d, %q (%v), stderr %q; want acme's origin, size %d and verifier key %s", scope, r.code, r.stdout, err, r.stderr, size, vkey)
		}
		r = runWith(t, env, "logs")
		if r.code != 0 || !strings.Contains(r.stdout, vkey) || strings.Contains(r.stdout, "default") {
			t.Errorf("trail logs with TRAIL_SERVER set and a %s key: exit %d, stdout %q, stderr %q; want only acme's verifier key %s", scope, r.code, r.stdout, r.stderr, vkey)
		}
	}
}
